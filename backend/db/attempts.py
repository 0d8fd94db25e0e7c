"""Attempts of a generation: one row per try to send it, with its outcome. Plain keyword-only functions."""

from __future__ import annotations

from typing import Any

from backend.db.store import Store
from backend.db.time import iso, now

#: Outcome of an attempt whose delivery nobody knows: the connection was lost after sending, or the app was
#: killed while it was on the wire.
UNKNOWN = "unknown"


async def begin(store: Store, *, generation_id: str) -> int:
    """Record the start of an attempt (before anything is sent); returns its number."""

    def run(cur: Any) -> int:
        cur.execute("UPDATE generations SET attempts = attempts + 1, updated_at = ? WHERE id = ? RETURNING attempts",
                    [now(), generation_id])
        number = cur.fetchone()[0]
        cur.execute("INSERT INTO attempts (generation_id, number, started_at) VALUES (?, ?, ?)",
                    [generation_id, number, now()])
        return number

    return await store.transaction(run)


_END = ("UPDATE attempts SET finished_at = ?, outcome = ?, http_status = ?, error_code = ?, error_message = ? "
        "WHERE generation_id = ? AND number = ?")


async def end(
    store: Store, *, generation_id: str, number: int, outcome: str, http_status: int | None = None,
    error_code: str | None = None, error_message: str | None = None,
) -> None:
    """Record how an attempt ended."""
    await store.execute(_END, [now(), outcome, http_status, error_code, error_message, generation_id, number])


def end_in(cur: Any, *, generation_id: str, number: int, outcome: str, http_status: int | None = None,
           error_code: str | None = None, error_message: str | None = None) -> None:
    """:func:`end`, inside a transaction the caller holds (``generations.conclude``)."""
    cur.execute(_END, [now(), outcome, http_status, error_code, error_message, generation_id, number])


async def counted(store: Store, *, generation_id: str) -> int:
    """Attempts that may have reached OpenRouter (being offline does not use attempts up)."""
    row = await store.fetchone(
        "SELECT count(*) AS n FROM attempts WHERE generation_id = ? AND coalesce(error_code, '') <> 'network'",
        [generation_id],
    )
    return int(row["n"]) if row else 0


async def unknown_deliveries(store: Store, *, generation_id: str) -> int:
    """Attempts of which it is unknown whether OpenRouter received them."""
    row = await store.fetchone(
        "SELECT count(*) AS n FROM attempts WHERE generation_id = ? AND outcome = ?", [generation_id, UNKNOWN]
    )
    return int(row["n"]) if row else 0


async def close_unfinished(store: Store) -> None:
    """At start-up: every attempt without an outcome was cut off by a crash; it is closed as ``unknown``."""
    await store.execute(
        "UPDATE attempts SET outcome = ?, finished_at = ?, error_code = 'crashed', "
        "error_message = 'Atelier stopped while this attempt was being sent.' WHERE outcome IS NULL",
        [UNKNOWN, now()],
    )


async def log(store: Store, *, generation_id: str) -> list[dict[str, Any]]:
    """Every attempt of a generation, oldest first, for the API record."""
    rows = await store.fetchall(
        "SELECT number, started_at, finished_at, outcome, http_status, error_code, error_message FROM attempts "
        "WHERE generation_id = ? ORDER BY number",
        [generation_id],
    )
    return [{**row, "started_at": iso(row["started_at"]), "finished_at": iso(row["finished_at"])} for row in rows]
