"""Which queued generations the outbox claims next (docs/outbox.md, "Batches").

Requests of their own go first (a Studio request never waits behind a batch); then batch items, shared fairly
between the batches that are running: the batch with the fewest items in flight first, then the one served
least recently, each batch's items oldest first. Two batches started one after the other therefore go out
interleaved, not one after the other.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta

from backend.db.generations import WAITING_PARENT, with_parent_status
from backend.db.store import Store

_NOT_HELD = "(batch_id IS NULL OR batch_id NOT IN (SELECT id FROM batches WHERE state = 'paused'))"

# Due batch items in the order they share the batch slots. An item's turn is its place in its batch's queue
# plus the batch's items in flight: a batch with two running items waits while another has none, and two idle
# batches alternate. Ties go to the batch whose last item started longest ago (never served: first).
_FAIR_BATCH_ITEMS = f"""
    WITH due AS (
        SELECT id, created_at, batch_id, row_number() OVER (PARTITION BY batch_id ORDER BY created_at, id) AS place
        FROM generations
        WHERE status = 'queued' AND (next_attempt_at IS NULL OR next_attempt_at <= ?) AND batch_id IS NOT NULL
          AND {_NOT_HELD}
    ), load AS (
        SELECT batch_id, count(*) FILTER (WHERE status = 'running') AS in_flight, max(started_at) AS served
        FROM generations WHERE batch_id IN (SELECT DISTINCT batch_id FROM due) GROUP BY batch_id
    )
    SELECT d.id, d.created_at, d.batch_id FROM due d JOIN load l ON l.batch_id = d.batch_id
    WHERE d.place <= ?
    ORDER BY d.place + l.in_flight, l.served NULLS FIRST, d.created_at, d.id
    LIMIT ?
"""  # noqa: S608 (only our own constant is put in)


async def due(store: Store, *, at: datetime, horizon: timedelta, limit: int,
              batch_slots: int | None = None) -> list[str]:
    """Queued generations due at ``at``, in the order above; at most ``batch_slots`` batch items (default
    ``limit``). Items of a paused batch are left out.

    A ``next_attempt_at`` further ahead than ``horizon`` (the longest backoff) and than the ``Retry-After``
    OpenRouter asked for cannot have been set by this clock (it was moved back, or a backup restored): it
    counts as due, so a stored time never stalls the queue.
    """
    batch_slots = limit if batch_slots is None else max(0, min(batch_slots, limit))
    rows = await store.fetchall(
        "SELECT id, created_at, batch_id, parent_id, status FROM generations WHERE status = 'queued' AND "
        "(next_attempt_at IS NULL OR next_attempt_at <= ?) AND batch_id IS NULL ORDER BY created_at LIMIT ?",
        [at, limit],
    )
    if any(r["parent_id"] for r in rows):  # turns waiting for their parent are not due: look further
        rows = await store.fetchall(
            "SELECT id, created_at, batch_id, parent_id, status FROM generations WHERE status = 'queued' AND "
            "(next_attempt_at IS NULL OR next_attempt_at <= ?) AND batch_id IS NULL ORDER BY created_at", [at])
        await with_parent_status(store, rows)
        rows = [r for r in rows if r["parent_status"] not in WAITING_PARENT][:limit]
    fair: dict[str, int] = {}
    if batch_slots:
        batch_rows = await store.fetchall(_FAIR_BATCH_ITEMS, [at, batch_slots, batch_slots])
        fair = {r["id"]: place for place, r in enumerate(batch_rows)}
        rows += batch_rows
    ahead = await store.fetchall(
        "SELECT id, created_at, batch_id, parent_id, status, next_attempt_at, error FROM generations "  # noqa: S608
        f"WHERE status = 'queued' AND next_attempt_at > ? AND {_NOT_HELD} ORDER BY created_at",
        [at + horizon],
    )
    await with_parent_status(store, ahead)
    ahead = [r for r in ahead if r["parent_status"] not in WAITING_PARENT]
    for row in ahead:
        retry_after = (json.loads(row["error"]) if row["error"] else {}).get("retry_after") or 0
        if row["next_attempt_at"] > at + max(horizon, timedelta(seconds=float(retry_after)) + timedelta(seconds=1)):
            rows.append(row)
    # Own requests oldest first; then batch items in their fair order (any others after them, oldest first).
    rows.sort(key=lambda r: (r["batch_id"] is not None, fair.get(r["id"], len(fair)), r["created_at"]))
    picked: list[str] = []
    batch_left = batch_slots
    for row in rows:
        if len(picked) >= limit:
            break
        if row["batch_id"] is not None:
            if batch_left <= 0:
                continue
            batch_left -= 1
        picked.append(row["id"])
    return picked


async def next_due_at(store: Store, *, after: datetime, horizon: timedelta) -> datetime | None:
    """When the next queued generation falls due (within ``horizon``; see :func:`due`)."""
    row = await store.fetchone(
        "SELECT min(next_attempt_at) AS t FROM generations WHERE status = 'queued' AND next_attempt_at > ? "  # noqa: S608
        f"AND next_attempt_at <= ? AND {_NOT_HELD}",
        [after, after + horizon],
    )
    return None if row is None else row["t"]


async def running_in_batches(store: Store, gen_ids: Sequence[str]) -> int:
    """How many of ``gen_ids`` (the attempts in flight) are batch items."""
    if not gen_ids:
        return 0
    row = await store.fetchone("SELECT count(*) AS n FROM generations WHERE batch_id IS NOT NULL "
                               "AND list_contains(?::VARCHAR[], id)", [list(gen_ids)])
    return int(row["n"]) if row else 0
