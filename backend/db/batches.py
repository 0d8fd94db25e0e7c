"""Rows of the ``batches`` table and the generations a batch is made of (see docs/api.md, "Batches").

A batch row holds what was asked for and its state (``active``, ``paused``, ``cancelled``); everything else
(counts, cost, whether it is finished) is read from its generations, so it can never drift from them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from backend.core.errors import NotFound
from backend.core.vocabulary import PENDING, Kind, Status
from backend.db import search as search_index
from backend.db.pages import decode_cursor, encode_cursor
from backend.db.store import Store
from backend.db.time import iso, new_id, now

_COLUMNS = ("id, name, kind, models, template_id, prompt, system, params, tags, rows_count, repeats, total, state, "
            "created_at, updated_at")


class BatchState(StrEnum):
    """What the user made of a batch (stored in ``batches.state``)."""

    ACTIVE = "active"
    PAUSED = "paused"
    CANCELLED = "cancelled"


class BatchStatus(StrEnum):
    """A batch's ``status`` in the API, read from its state and its generations (:func:`to_record`)."""

    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Item:
    """One generation of a batch, as it is written."""

    model: str
    prompt: str
    system: str | None
    variables: dict[str, Any] | None


def _not_found(batch_id: str) -> NotFound:
    return NotFound(f"There is no batch {batch_id[:64]}; it may have been deleted.")


async def insert(store: Store, *, name: str | None, kind: str, models: list[str], template_id: str | None,
                 prompt: str | None, system: str | None, params: dict[str, Any], tags: list[str], rows_count: int,
                 repeats: int, items: list[Item]) -> str:
    """Write the batch and every one of its generations (``queued``) in one transaction; returns its id.

    Items get created_at one microsecond apart, in the order given, so they go out (and are listed) in that
    order. The generations are written with one statement over column lists, not one statement per item.
    Text items are streamed, so a compare (and a batch's page) can show the answers as they arrive.
    """
    batch_id = new_id()
    ts = now()
    params_json = json.dumps(params)
    ids = [new_id() for _ in items]
    created = [ts + timedelta(microseconds=i) for i in range(len(items))]

    def write(cur: Any) -> None:
        cur.execute(
            f"INSERT INTO batches ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'active', ?, ?)",  # noqa: S608
            [batch_id, name, kind, models, template_id, prompt, system, params_json, tags, rows_count, repeats,
             len(items), ts, ts],
        )
        cur.execute(
            "INSERT INTO generations (id, kind, status, model, prompt, system, params, input_asset_ids, stream, "
            "tags, attempts, created_at, updated_at, template_id, variables, batch_id) "
            "SELECT g.id, ?, 'queued', g.model, g.prompt, g.system, ?, '[]', ?, ?, 0, g.created_at, ?, ?, "
            "g.variables, ? FROM (SELECT unnest(?::VARCHAR[]) AS id, unnest(?::VARCHAR[]) AS model, "
            "unnest(?::VARCHAR[]) AS prompt, unnest(?::VARCHAR[]) AS system, unnest(?::VARCHAR[]) AS variables, "
            "unnest(?::TIMESTAMPTZ[]) AS created_at) AS g",
            [kind, params_json, kind == Kind.TEXT, tags, ts, template_id, batch_id, ids, [i.model for i in items],
             [i.prompt for i in items], [i.system for i in items],
             [json.dumps(i.variables) if i.variables is not None else None for i in items], created],
        )
        search_index.index(cur, ids)

    await store.transaction(write)
    return batch_id


async def get(store: Store, *, batch_id: str) -> dict[str, Any]:
    row = await store.fetchone(f"SELECT {_COLUMNS} FROM batches WHERE id = ?", [batch_id])  # noqa: S608
    if row is None:
        raise _not_found(batch_id)
    return row


async def set_state(store: Store, *, batch_id: str, state: str) -> None:
    await get(store, batch_id=batch_id)
    await store.execute("UPDATE batches SET state = ?, updated_at = ? WHERE id = ?", [state, now(), batch_id])


async def cancel_queued(store: Store, *, batch_id: str) -> int:
    """Cancel every queued item of a batch in one statement; returns how many."""

    def run(cur: Any) -> int:
        ts = now()
        cur.execute("UPDATE generations SET status = 'cancelled', finished_at = ?, updated_at = ?, "
                    "next_attempt_at = NULL WHERE batch_id = ? AND status = 'queued' RETURNING id",
                    [ts, ts, batch_id])
        return len(cur.fetchall())

    return await store.transaction(run)


async def running_ids(store: Store, *, batch_id: str) -> list[str]:
    rows = await store.fetchall("SELECT id FROM generations WHERE batch_id = ? AND status = 'running'", [batch_id])
    return [r["id"] for r in rows]


async def _summaries(store: Store, batch_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Counts per status, cost so far and last finish time of each batch."""
    if not batch_ids:
        return {}
    rows = await store.fetchall(
        "SELECT batch_id, status, count(*) AS n, coalesce(sum(cost_usd), 0) AS cost, max(finished_at) AS last, "
        "min(started_at) AS first FROM generations WHERE list_contains(?::VARCHAR[], batch_id) GROUP BY 1, 2",
        [batch_ids],
    )
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = out.setdefault(row["batch_id"], {"counts": {s.value: 0 for s in Status}, "cost": 0.0,
                                                 "last": None, "first": None})
        entry["counts"][row["status"]] = int(row["n"])
        entry["cost"] += float(row["cost"])
        for key, pick in (("last", max), ("first", min)):
            if row[key] is not None:
                entry[key] = row[key] if entry[key] is None else pick(entry[key], row[key])
    return out


def _status(state: str, counts: dict[str, int]) -> BatchStatus:
    """``cancelled`` (by the user), ``finished`` (nothing left to send), ``paused`` or ``running``."""
    if state == BatchState.CANCELLED:
        return BatchStatus.CANCELLED
    if sum(counts.get(status, 0) for status in PENDING) == 0:
        return BatchStatus.FINISHED
    return BatchStatus.PAUSED if state == BatchState.PAUSED else BatchStatus.RUNNING


def to_record(row: dict[str, Any], summary: dict[str, Any] | None) -> dict[str, Any]:
    """The API shape of a batch (docs/api.md, "Batches")."""
    summary = summary or {"counts": {s.value: 0 for s in Status}, "cost": 0.0, "last": None, "first": None}
    counts = summary["counts"]
    status = _status(row["state"], counts)
    return {
        "id": row["id"],
        "name": row["name"],
        "kind": row["kind"],
        "status": status,
        "models": list(row["models"] or []),
        "template_id": row["template_id"],
        "prompt": row["prompt"],
        "system": row["system"],
        "params": json.loads(row["params"] or "{}"),
        "tags": list(row["tags"] or []),
        "rows": row["rows_count"],
        "repeat": row["repeats"],
        "total": row["total"],
        "counts": counts,
        "done": sum(n for s, n in counts.items() if s not in PENDING),
        "cost_usd": round(summary["cost"], 10),
        "created_at": iso(row["created_at"]),
        "started_at": iso(summary["first"]),
        "finished_at": iso(summary["last"]) if status in (BatchStatus.FINISHED, BatchStatus.CANCELLED) else None,
    }


async def record(store: Store, *, batch_id: str) -> dict[str, Any]:
    row = await get(store, batch_id=batch_id)
    return to_record(row, (await _summaries(store, [batch_id])).get(batch_id))


async def search(store: Store, *, limit: int = 50,
                 cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first, with counts and cost."""
    where, params = "", []
    if cursor:
        created, batch_id = decode_cursor(cursor)
        where = "WHERE (created_at < ? OR (created_at = ? AND id < ?))"
        params = [created, created, batch_id]
    rows = await store.fetchall(
        f"SELECT {_COLUMNS} FROM batches {where} ORDER BY created_at DESC, id DESC LIMIT ?",  # noqa: S608
        [*params, limit + 1],
    )
    next_cursor = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    rows = rows[:limit]
    summaries = await _summaries(store, [r["id"] for r in rows])
    return [to_record(r, summaries.get(r["id"])) for r in rows], next_cursor


async def pending_summary(store: Store) -> dict[str, dict[str, Any]]:
    """Batches with items still queued or running: ``{batch_id: record}`` (the queue groups by it)."""
    rows = await store.fetchall(
        "SELECT DISTINCT batch_id FROM generations WHERE batch_id IS NOT NULL AND status IN ('queued', 'running')")
    ids = [r["batch_id"] for r in rows]
    if not ids:
        return {}
    batches = await store.fetchall(f"SELECT {_COLUMNS} FROM batches WHERE list_contains(?::VARCHAR[], id)",  # noqa: S608
                                   [ids])
    summaries = await _summaries(store, ids)
    return {b["id"]: to_record(b, summaries.get(b["id"])) for b in batches}
