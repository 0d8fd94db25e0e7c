"""What every list shares: keyset pages (newest first by a timestamp, then the id) and ``ILIKE`` patterns.

A cursor names the last row of a page: its timestamp and id, base64-encoded; a bad one is a 422 (docs/api.md).
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from backend.core.errors import AtelierError


def encode_cursor(row: dict[str, Any], *, stamp: str = "created_at") -> str:
    """The cursor after ``row``, a list ordered by ``stamp`` (a timestamp column) and ``id``."""
    raw = f"{row[stamp].isoformat()}|{row['id']}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The timestamp and id a cursor names; 422 ``invalid_cursor`` when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, row_id = raw.split("|", 1)
        return datetime.fromisoformat(stamp), row_id
    except (ValueError, UnicodeDecodeError):
        raise AtelierError("The cursor is not valid; start again without it.", code="invalid_cursor",
                           status=422) from None


def like_pattern(q: str) -> str:
    """``q`` as a case-insensitive substring pattern for ``ILIKE ? ESCAPE '\\'`` (``%``, ``_``, ``\\`` literal)."""
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
