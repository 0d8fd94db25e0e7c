"""A batch's rows from what the user pasted or uploaded, and what the batch will cost, before it starts.

Rows are CSV (comma, semicolon or tab separated) whose header names the template's variables; a column the
template does not use is refused by name. A template with one variable also takes a plain list, one value per
line; whether its first line is a header is the user's choice (``header``: ``auto``, ``yes``, ``no``), and
``auto`` never guesses: the first line is a header when it names the variable, a value when it looks like the
other lines, and when it looks like a column name the other lines are not (``topic`` over ``A cup of tea``), the
user is asked instead of a value being eaten or a wrong header being sent as a prompt.

The cost range comes from the catalogue's prices per token (``GET /models``); OpenRouter bills what the model
really produced, so it is a range, not a promise.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from typing import Any

from frontend.forms import FormError

MAX_ROWS = 1000
MAX_ITEMS = 5000
#: Completion tokens assumed per text answer for the low and high end of the estimate (unless max_tokens is lower).
TEXT_TOKENS = (60, 800)
#: Output tokens an image answer is billed for, low and high (images are billed as completion tokens).
IMAGE_TOKENS = (1000, 1800)


#: What the user says of a list's first line: detect it, it is a header, it is a value.
HEADER_CHOICES = ("auto", "yes", "no")
#: A first line that looks like a column name (a single identifier).
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Rows:
    rows: list[dict[str, str]]
    #: The first line when it was read as a header (and not sent), else None.
    header: str | None = None


def parse_rows(text: str, variables: list[str], *, header: str = "auto") -> list[dict[str, str]]:
    """Rows of variables from CSV text. With no variables, one empty row (a plain prompt)."""
    return read_rows(text, variables, header=header).rows


def _plain_name(cell: str) -> str:
    """``{{ Subject }}`` → ``subject``: how a header cell is compared with a variable name."""
    return cell.strip().removeprefix("{{").removesuffix("}}").strip().lower()


def _first_line_is_header(lines: list[str], variable: str, header: str) -> bool:
    """For a template with one variable: the rule in the module's docstring."""
    if header in ("yes", "no"):
        return header == "yes"
    if _plain_name(_cells(lines[0])[0]) == variable.lower():
        return True
    first, rest = lines[0].strip(), [line.strip() for line in lines[1:]]
    if _NAME.fullmatch(first) and rest and not all(_NAME.fullmatch(line) for line in rest):
        raise FormError(f"Is the first line, '{first[:60]}', a column name or a value? It looks like a column name, "
                        f"but the template's variable is '{variable}'. Choose \"First line is a header\" or \"First "
                        "line is a value\" under the rows.")
    return False


def read_rows(text: str, variables: list[str], *, header: str = "auto") -> Rows:
    """:func:`parse_rows`, also saying which first line was read as a header."""
    lines = [line for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n") if line.strip()]
    if not variables:
        return Rows([{}])
    if not lines:
        raise FormError("Paste some rows (or upload a CSV file) whose first line names the variables: "
                        + ", ".join(variables) + ".")
    if header not in HEADER_CHOICES:
        header = "auto"
    if len(variables) > 1 and header == "no":
        raise FormError("With several variables the first line must name them (" + ", ".join(variables) + ").")
    skipped = None
    is_header = len(variables) > 1 or _first_line_is_header(lines, variables[0], header)
    if len(variables) == 1 and not (is_header and len(_cells(lines[0])) > 1):
        if is_header:
            skipped, lines = lines[0].strip(), lines[1:]
        rows = [{variables[0]: line.strip()} for line in lines]  # a plain list: one value per line
    else:
        skipped = lines[0].strip()
        reader = csv.reader(io.StringIO("\n".join(lines)), dialect=_dialect(lines[0]))
        names = [name.strip() for name in next(reader)]
        unknown = [name for name in names if name not in variables]
        if unknown:
            raise FormError(
                f"The CSV header has {_plural(len(unknown), 'column')} the template does not use: "
                f"{', '.join(repr(n) for n in unknown)}. The template's variables are: {', '.join(variables)}.")
        dupes = sorted({name for name in names if names.count(name) > 1})
        if dupes:
            raise FormError(f"The CSV header names {', '.join(repr(n) for n in dupes)} more than once.")
        rows = []
        for number, cells in enumerate(reader, start=2):
            if len(cells) > len(names):
                raise FormError(f"Line {number} has {len(cells)} values but the header names {len(names)}.")
            rows.append({name: (cells[i] if i < len(cells) else "") for i, name in enumerate(names)})
    if not rows:
        raise FormError("The CSV has a header but no rows under it.")
    if len(rows) > MAX_ROWS:
        raise FormError(f"{len(rows):,} rows is more than the {MAX_ROWS:,} a batch takes; split the list.")
    return Rows(rows, skipped)


def _cells(line: str) -> list[str]:
    return next(csv.reader([line], dialect=_dialect(line)))


def _dialect(header: str) -> type[csv.Dialect]:
    for delimiter in ("\t", ";", ","):
        if delimiter in header:
            class Dialect(csv.excel):
                pass
            Dialect.delimiter = delimiter
            return Dialect
    return csv.excel


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


@dataclass(frozen=True)
class Estimate:
    items: int
    low: float | None
    high: float | None
    unpriced: list[str]


def _price(pricing: dict[str, Any], name: str) -> float:
    try:
        return max(0.0, float(pricing.get(name) or 0))
    except (TypeError, ValueError):
        return 0.0


def video_cost(model: dict[str, Any], params: dict[str, Any]) -> tuple[float, float] | None:
    """One video's cost range from the model's price per second (``video.pricing_skus``, e.g.
    ``video_seconds_720p``) and its length: the chosen resolution and duration, else the cheapest and dearest
    resolution and the shortest and longest duration it offers. None when no price or no length is known."""
    video = model.get("video") or {}
    skus = video.get("pricing_skus") or (model.get("pricing") or {}).get("skus") or {}
    prices = {name: _price(skus, name) for name in skus if str(name).startswith("video_seconds")}
    resolution = str(params.get("resolution") or "").lower()
    chosen = [price for name, price in prices.items() if resolution and resolution in name.lower()]
    per_second = chosen or list(prices.values())
    durations = [d for d in video.get("supported_durations") or [] if isinstance(d, int | float)]
    if isinstance(params.get("duration"), int | float):
        durations = [params["duration"]]
    if not per_second or not durations:
        return None
    return min(durations) * min(per_second), max(durations) * max(per_second)


def estimate(*, kind: str, models: list[dict[str, Any]], prompts: list[str], repeat: int,
             max_tokens: int | None = None, params: dict[str, Any] | None = None) -> Estimate:
    """The batch's size and a cost range from the models' prices (``prompts``: each row's rendered prompt;
    ``params``: a video's duration and resolution)."""
    items = len(prompts) * len(models) * repeat
    prompt_tokens = sum(math.ceil(len(p) / 4) + 8 for p in prompts) * repeat
    low_tokens, high_tokens = IMAGE_TOKENS if kind == "image" else TEXT_TOKENS
    if max_tokens:
        low_tokens, high_tokens = min(low_tokens, max_tokens), min(high_tokens, max_tokens)
    low = high = 0.0
    unpriced = []
    for model in models:
        pricing = model.get("pricing") or {}
        if kind == "video":
            each = video_cost(model, params or {})
            if each is None:
                unpriced.append(model.get("id", "?"))
                continue
            low, high = low + each[0] * len(prompts) * repeat, high + each[1] * len(prompts) * repeat
            continue
        if not pricing:
            unpriced.append(model.get("id", "?"))
            continue
        prompt_cost = prompt_tokens * _price(pricing, "prompt")
        per_item = len(prompts) * repeat
        request_cost = per_item * _price(pricing, "request")
        low += prompt_cost + request_cost + per_item * low_tokens * _price(pricing, "completion")
        high += prompt_cost + request_cost + per_item * high_tokens * _price(pricing, "completion")
    if len(unpriced) == len(models):
        return Estimate(items, None, None, unpriced)
    return Estimate(items, low, high, unpriced)
