"""The rows exported generations refer to: their conversations (with titles), batches and templates.

An export carries exactly the rows its generations name (``conversation_id``, ``batch_id``, ``template_id``), so
a round trip into another library keeps a thread's title, a batch's grouping and a prompt's template. An import
adds those rows when the library lacks them and never overwrites one it has. See docs/data.md ("Exports").
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from backend.db.time import iso

#: table → (the generations column that refers to it, the columns an export carries and an import reads)
TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "conversations": ("conversation_id", ("id", "title", "created_at", "updated_at")),
    "templates": ("template_id", ("id", "name", "kind", "prompt", "system", "model", "params", "tags",
                                  "created_at", "updated_at")),
    "batches": ("batch_id", ("id", "name", "kind", "models", "template_id", "prompt", "system", "params", "tags",
                             "rows_count", "repeats", "total", "state", "created_at", "updated_at")),
}


def query(table: str) -> str:
    """The rows of ``table`` that the generations in the temporary table ``export_ids`` refer to."""
    reference, columns = TABLES[table]
    return (f"SELECT {', '.join(columns)} FROM {table} WHERE id IN "  # noqa: S608 (names are ours)
            f"(SELECT g.{reference} FROM generations g JOIN export_ids e ON g.id = e.id) ORDER BY id")


def iter_rows(cur: Any, table: str) -> Iterator[dict[str, Any]]:
    """``query(table)`` as JSON-ready objects (times in ISO 8601, ``params`` as an object)."""
    cur.execute(query(table))
    names = [column[0] for column in cur.description]
    for values in cur.fetchall():
        row = dict(zip(names, values, strict=True))
        for name, value in row.items():
            if isinstance(value, datetime):
                row[name] = iso(value)
        if "params" in row:
            row["params"] = json.loads(row["params"] or "{}")
        yield row
