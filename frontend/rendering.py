"""Turning model output and numbers into safe, readable HTML.

Model output is untrusted (prompt injection can make a model emit script tags or image beacons that
leak data through the URL), so markdown is rendered with raw HTML disabled, images are only kept when
they are inline ``data:`` images or our own ``/assets/<id>`` files, and the result is sanitized again
with nh3 as a second line of defence. The CSP blocks remote loads as a third.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import nh3
from jinja2 import Undefined
from markdown_it import MarkdownIt
from markupsafe import Markup, escape

_SAFE_DATA_IMAGE = re.compile(r"^data:image/(png|jpeg|jpg|gif|webp|avif);base64,[A-Za-z0-9+/=\s]+$", re.I)
_OWN_ASSET = re.compile(r"^/assets/[A-Za-z0-9_-]{1,128}$")

_ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6",
    "hr", "i", "img", "kbd", "li", "ol", "p", "pre", "s", "span", "strong", "sub", "sup", "table",
    "tbody", "td", "th", "thead", "tr", "ul",
}
_ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "code": {"class"},
    "span": {"class"},
    "th": {"style"},
    "td": {"style"},
    "ol": {"start"},
}


def is_safe_image_src(src: str) -> bool:
    """Only inline raster data URLs and our own asset URLs may be shown: nothing that leaves the machine."""
    src = src.strip()
    return bool(_SAFE_DATA_IMAGE.match(src) or _OWN_ASSET.match(src))


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    """nh3 hook: drop image sources that point anywhere else, and all inline styles (CSP forbids them)."""
    if tag == "img" and attribute == "src":
        return value if is_safe_image_src(value) else None
    if attribute == "style":
        return None
    if tag == "a" and attribute == "href" and not re.match(r"^(https?:|mailto:|#)", value.strip(), re.I):
        return None
    return value


def _build_markdown() -> MarkdownIt:
    # ``breaks``: a single line break in an answer stays a line break (models write poems and addresses so).
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False, "breaks": True})
    md.enable(["table", "strikethrough"])

    default_image = md.renderer.rules["image"]

    def render_image(tokens, idx, options, env):  # type: ignore[no-untyped-def]
        token = tokens[idx]
        src = str(token.attrGet("src") or "")
        if is_safe_image_src(src):
            return default_image(tokens, idx, options, env)
        alt = token.content or "image"
        # Show that an image was withheld, without ever emitting its URL.
        return f'<span class="md-blocked-image">[image withheld: {escape(alt)}]</span>'

    md.renderer.rules["image"] = render_image
    return md


_MARKDOWN = _build_markdown()


def render_markdown(text: str | None) -> Markup:
    """Render untrusted markdown to sanitized HTML (raw HTML shown as text, no remote images)."""
    if not text:
        return Markup("")
    html = _MARKDOWN.render(text)
    cleaned = nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        attribute_filter=_attribute_filter,
        url_schemes={"http", "https", "mailto", "data"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
    return Markup(cleaned)  # noqa: S704 - sanitized by nh3 above


# -- numbers and times ---------------------------------------------------------------------------------


def _missing(value: Any) -> bool:
    """None, empty, or a field the backend did not send (Jinja's Undefined)."""
    return value is None or isinstance(value, Undefined) or value == ""


def _decimal(value: Any) -> Decimal | None:
    if _missing(value):
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def format_cost(value: Any) -> str:
    """A USD amount as people read it: ``$0.000140`` for fractions of a cent, ``$1.23`` otherwise."""
    amount = _decimal(value)
    if amount is None:
        return "—"
    if amount == 0:
        return "$0.00"
    if abs(amount) < Decimal("0.01"):
        return f"${amount:.6f}"
    if abs(amount) < 1:
        text = f"{amount:.4f}"
        # $0.25 rather than $0.2500, but $0.0123 keeps the digits that carry the amount.
        whole, _, cents = text.partition(".")
        return f"${whole}.{cents[:2] + cents[2:].rstrip('0')}"
    return f"${amount:,.2f}"


def format_price_per_million(per_token: Any) -> str:
    """OpenRouter per-token price strings as ``$x/M``; ``free`` for zero, ``varies`` for sentinels."""
    price = _decimal(per_token)
    if price is None:
        return "—"
    if price < 0:
        return "varies"
    if price == 0:
        return "free"
    per_million = price * 1_000_000
    if per_million >= 100:
        text = f"{per_million:,.0f}"
    elif per_million >= 1:
        text = f"{per_million:.2f}"
    else:
        text = f"{per_million:.3f}"
        if text.endswith("0"):
            text = text[:-1]  # $0.60/M, but $0.075/M keeps its third digit
    return f"${text}/M"


def format_tokens(value: Any) -> str:
    """A token count with thousands separators, or ``—``."""
    if _missing(value):
        return "—"
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return "—"


def format_context(value: Any) -> str:
    """A context length as ``128k`` / ``1M`` tokens."""
    if _missing(value):
        return "—"
    try:
        tokens = int(value)
    except (TypeError, ValueError):
        return "—"
    if tokens >= 1_000_000:
        return f"{tokens / 1_000_000:g}M"
    if tokens >= 1000:
        return f"{tokens / 1000:g}k"
    return str(tokens)


def parse_time(value: Any) -> datetime | None:
    """Parse the backend's ISO-8601 timestamps (or epoch seconds); naive values are taken as UTC."""
    if _missing(value):
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def format_time(value: Any) -> str:
    """A timestamp in the user's local time zone (this server runs on their machine)."""
    moment = parse_time(value)
    if moment is None:
        return "—"
    local = moment.astimezone()
    if local.date() == datetime.now().astimezone().date():
        return local.strftime("Today %H:%M:%S")
    return local.strftime("%d %b %Y %H:%M")


def format_relative(value: Any, *, now: datetime | None = None) -> str:
    """``in 2 min`` / ``5 s ago`` relative to now."""
    moment = parse_time(value)
    if moment is None:
        return "—"
    now = now or datetime.now(UTC)
    seconds = int((moment - now).total_seconds())
    future = seconds >= 0
    seconds = abs(seconds)
    if seconds < 2:
        return "now"
    if seconds < 60:
        amount = f"{seconds} s"
    elif seconds < 3600:
        amount = f"{seconds // 60} min"
    elif seconds < 86400:
        amount = f"{seconds // 3600} h {seconds % 3600 // 60} min"
    else:
        amount = f"{seconds // 86400} d"
    return f"in {amount}" if future else f"{amount} ago"


def format_duration(start: Any, end: Any) -> str:
    """Elapsed time between two timestamps: ``1.4 s``, ``2 min 5 s``."""
    begin, finish = parse_time(start), parse_time(end)
    if begin is None or finish is None:
        return "—"
    seconds = max((finish - begin).total_seconds(), 0.0)
    if seconds < 0.05:
        return "under 0.1 s"  # never "0.0 s": something did take time
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {int(seconds % 60)} s"
