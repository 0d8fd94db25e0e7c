"""Small named values the app keeps between runs (the ``meta`` table)."""

from __future__ import annotations

from backend.db.store import Store


async def get(store: Store, *, key: str) -> str | None:
    row = await store.fetchone("SELECT value FROM meta WHERE key = ?", [key])
    return None if row is None else row["value"]


async def put(store: Store, *, key: str, value: str) -> None:
    await store.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, value])
