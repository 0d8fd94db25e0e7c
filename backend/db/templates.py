"""Rows of the ``templates`` table: plain keyword-only functions (see docs/api.md, "Templates")."""

from __future__ import annotations

import json
from typing import Any

from backend.core.errors import NotFound
from backend.db.pages import decode_cursor, encode_cursor, like_pattern
from backend.db.store import Store
from backend.db.time import new_id, now

_COLUMNS = "id, name, kind, prompt, system, model, params, tags, created_at, updated_at"
_FIELDS = ("name", "kind", "prompt", "system", "model", "params", "tags")


def _not_found(template_id: str) -> NotFound:
    return NotFound(f"There is no template {template_id}; it may have been deleted.")


def _row(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["params"] = json.loads(row["params"] or "{}")
    out["tags"] = list(row["tags"] or [])
    return out


async def insert(store: Store, *, name: str, kind: str, prompt: str, system: str | None, model: str | None,
                 params: dict[str, Any], tags: list[str]) -> dict[str, Any]:
    """Store a new template and return its row."""
    template_id, ts = new_id(), now()
    await store.execute(
        f"INSERT INTO templates ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
        [template_id, name, kind, prompt, system, model, json.dumps(params), tags, ts, ts],
    )
    return await get(store, template_id=template_id)


async def get(store: Store, *, template_id: str) -> dict[str, Any]:
    """The template's row; :class:`NotFound` when there is none."""
    row = await store.fetchone(f"SELECT {_COLUMNS} FROM templates WHERE id = ?", [template_id])  # noqa: S608
    if row is None:
        raise _not_found(template_id)
    return _row(row)


async def replace(store: Store, *, template_id: str, name: str, kind: str, prompt: str, system: str | None,
                  model: str | None, params: dict[str, Any], tags: list[str]) -> dict[str, Any]:
    """Replace every field of an existing template (PUT)."""

    def write(cur: Any) -> bool:
        cur.execute(
            "UPDATE templates SET name = ?, kind = ?, prompt = ?, system = ?, model = ?, params = ?, tags = ?, "
            "updated_at = ? WHERE id = ? RETURNING id",
            [name, kind, prompt, system, model, json.dumps(params), tags, now(), template_id],
        )
        return cur.fetchone() is not None

    if not await store.transaction(write):
        raise _not_found(template_id)
    return await get(store, template_id=template_id)


async def delete(store: Store, *, template_id: str) -> None:
    """Delete a template; generations made from it keep their rendered prompt and ``template_id``."""

    def write(cur: Any) -> bool:
        cur.execute("DELETE FROM templates WHERE id = ? RETURNING id", [template_id])
        return cur.fetchone() is not None

    if not await store.transaction(write):
        raise _not_found(template_id)


async def search(store: Store, *, q: str | None = None, kind: str | None = None, limit: int = 50,
                 cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first; ``q`` matches the name, prompt and tags (case-insensitive)."""
    where: list[str] = []
    params: list[Any] = []
    if q:
        pattern = like_pattern(q)
        where.append("(name ILIKE ? ESCAPE '\\' OR prompt ILIKE ? ESCAPE '\\' "
                     "OR array_to_string(tags, ' ') ILIKE ? ESCAPE '\\')")
        params += [pattern, pattern, pattern]
    if kind:
        where.append("kind = ?")
        params.append(kind)
    if cursor:
        created, template_id = decode_cursor(cursor)
        where.append("(created_at < ? OR (created_at = ? AND id < ?))")
        params += [created, created, template_id]
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    rows = await store.fetchall(
        f"SELECT {_COLUMNS} FROM templates {clause} ORDER BY created_at DESC, id DESC LIMIT ?",  # noqa: S608
        [*params, limit + 1],
    )
    next_cursor = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return [_row(row) for row in rows[:limit]], next_cursor
