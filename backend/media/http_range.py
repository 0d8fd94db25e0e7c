"""Parsing of a single HTTP ``Range: bytes=…`` request header (RFC 9110 §14).

Used by the assets router to answer ``206 Partial Content`` (video seeking) or ``416 Range Not Satisfiable``.
Only one range is served: a multi-range request is answered with the full body, which RFC 9110 allows
(a server may ignore ``Range``), and spares us ``multipart/byteranges``.
"""

from __future__ import annotations

import re
from typing import Literal

# ASCII digits only: int() would also accept "+5", " 5", "5_0" and non-ASCII digits.
_RANGE_SPEC = re.compile(r"([0-9]*)[ \t]*-[ \t]*([0-9]*)")
_UNIT = re.compile(r"[ \t]*bytes[ \t]*=(.*)", re.IGNORECASE | re.DOTALL)

Unsatisfiable = Literal["unsatisfiable"]


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | Unsatisfiable:
    """Resolve a ``Range`` header against a body of ``size`` bytes.

    Returns ``(start, end)`` with ``end`` inclusive (as in ``Content-Range: bytes start-end/size``),
    ``None`` when the whole body should be sent (no header, another unit, a malformed header, or several
    ranges), or ``"unsatisfiable"`` when the range lies outside the body (answer 416 with
    ``Content-Range: bytes */size``).
    """
    if size < 0:
        raise ValueError("size must be >= 0")
    if not header:
        return None
    unit = _UNIT.fullmatch(header)
    if unit is None:
        return None  # another unit, or garbage: ignore the header
    specs = [part.strip(" \t") for part in unit.group(1).split(",")]
    specs = [part for part in specs if part]  # RFC list syntax allows empty elements
    if len(specs) != 1:
        return None  # none, or several ranges: send the full body
    match = _RANGE_SPEC.fullmatch(specs[0])
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if first:
        start = int(first)
        end = int(last) if last else size - 1
        if last and end < start:
            return None  # syntactically invalid: ignore
        if start >= size:
            return "unsatisfiable"
        return start, min(end, size - 1)
    if not last:
        return None  # "bytes=-": invalid
    suffix = int(last)
    if suffix == 0 or size == 0:
        return "unsatisfiable"
    return max(size - suffix, 0), size - 1


def content_range(start: int, end: int, size: int) -> str:
    """The ``Content-Range`` value for a 206 response."""
    return f"bytes {start}-{end}/{size}"


def unsatisfiable_content_range(size: int) -> str:
    """The ``Content-Range`` value for a 416 response."""
    return f"bytes */{size}"
