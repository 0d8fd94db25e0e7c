"""Rows of ``collections`` and ``collection_items``: plain keyword-only functions (see docs/api.md,
"Collections"). A generation may sit in any number of collections; deleting a collection keeps its items."""

from __future__ import annotations

from typing import Any

from backend.core.errors import NotFound
from backend.db.generations import existing_ids
from backend.db.pages import decode_cursor, encode_cursor, like_pattern
from backend.db.store import Store
from backend.db.time import new_id, now

_SELECT = (
    "SELECT c.id, c.name, c.created_at, c.updated_at, "
    "(SELECT count(*) FROM collection_items i WHERE i.collection_id = c.id) AS items FROM collections c"
)


def not_found(collection_id: str) -> NotFound:
    return NotFound(f"There is no collection {collection_id}; it may have been deleted.")


async def insert(store: Store, *, name: str) -> dict[str, Any]:
    collection_id, ts = new_id(), now()
    await store.execute("INSERT INTO collections (id, name, created_at, updated_at) VALUES (?, ?, ?, ?)",
                        [collection_id, name, ts, ts])
    return await get(store, collection_id=collection_id)


async def get(store: Store, *, collection_id: str) -> dict[str, Any]:
    row = await store.fetchone(f"{_SELECT} WHERE c.id = ?", [collection_id])  # noqa: S608
    if row is None:
        raise not_found(collection_id)
    return row


async def rename(store: Store, *, collection_id: str, name: str) -> dict[str, Any]:
    def write(cur: Any) -> bool:
        cur.execute("UPDATE collections SET name = ?, updated_at = ? WHERE id = ? RETURNING id",
                    [name, now(), collection_id])
        return cur.fetchone() is not None

    if not await store.transaction(write):
        raise not_found(collection_id)
    return await get(store, collection_id=collection_id)


async def delete(store: Store, *, collection_id: str) -> None:
    """Delete the collection (its generations stay in the library)."""

    def write(cur: Any) -> bool:
        cur.execute("DELETE FROM collection_items WHERE collection_id = ?", [collection_id])
        cur.execute("DELETE FROM collections WHERE id = ? RETURNING id", [collection_id])
        return cur.fetchone() is not None

    if not await store.transaction(write):
        raise not_found(collection_id)


async def search(store: Store, *, q: str | None = None, limit: int = 50,
                 cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first; ``q`` matches the name (case-insensitive)."""
    where: list[str] = []
    params: list[Any] = []
    if q:
        where.append("c.name ILIKE ? ESCAPE '\\'")
        params.append(like_pattern(q))
    if cursor:
        created, collection_id = decode_cursor(cursor)
        where.append("(c.created_at < ? OR (c.created_at = ? AND c.id < ?))")
        params += [created, created, collection_id]
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    rows = await store.fetchall(
        f"{_SELECT} {clause} ORDER BY c.created_at DESC, c.id DESC LIMIT ?", [*params, limit + 1]  # noqa: S608
    )
    next_cursor = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return rows[:limit], next_cursor


def add_items(cur: Any, *, collection_id: str, generation_ids: list[str]) -> list[str]:
    """Inside a transaction: put the existing generations among ``generation_ids`` into the collection (once
    each). Returns the ids that do not exist."""
    existing = existing_ids(cur, generation_ids)
    if existing:
        cur.execute(
            "INSERT INTO collection_items (collection_id, generation_id, added_at) "
            "SELECT ?, unnest(?::VARCHAR[]), ? ON CONFLICT DO NOTHING",
            [collection_id, existing, now()],
        )
        cur.execute("UPDATE collections SET updated_at = ? WHERE id = ?", [now(), collection_id])
    return [gen_id for gen_id in generation_ids if gen_id not in set(existing)]


def remove_items(cur: Any, *, collection_id: str, generation_ids: list[str]) -> list[str]:
    """Inside a transaction: take ``generation_ids`` out of the collection. Returns the ids that do not exist."""
    existing = existing_ids(cur, generation_ids)
    cur.execute("DELETE FROM collection_items WHERE collection_id = ? AND list_contains(?::VARCHAR[], generation_id)",
                [collection_id, existing])
    cur.execute("UPDATE collections SET updated_at = ? WHERE id = ?", [now(), collection_id])
    return [gen_id for gen_id in generation_ids if gen_id not in set(existing)]


def exists(cur: Any, *, collection_id: str) -> bool:
    cur.execute("SELECT 1 FROM collections WHERE id = ?", [collection_id])
    return cur.fetchone() is not None
