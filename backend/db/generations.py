"""Generations and their assets in DuckDB: plain functions with keyword-only arguments.

A generation row is written before anything is sent to OpenRouter; every later change goes through
:func:`update`. Records returned to the API are built by :func:`to_record`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from backend.core.errors import NotFound, action_for
from backend.core.vocabulary import PENDING, RETRYABLE, TERMINAL, Status
from backend.db import assets as assets_db
from backend.db import attempts as attempts_db
from backend.db import search as search_index
from backend.db.group_commit import group_for
from backend.db.store import Store
from backend.db.time import iso, new_id, now

#: Every column of a generation row, in the order records are read.
COLUMNS = (
    "id, kind, status, model, prompt, system, params, input_asset_ids, stream, title, tags, favorite, output_text, "
    "reasoning_text, prompt_tokens, completion_tokens, cost_usd, upstream_id, upstream_model, job_id, polling_url, "
    "attempts, error, next_attempt_at, created_at, started_at, finished_at, updated_at, conversation_id, parent_id, "
    "context_dropped_turns, template_id, variables, batch_id"
)

_COLUMN_NAMES = [name.strip() for name in COLUMNS.split(",")]

# Columns the search index covers: a write that changes one of them re-indexes the row (backend/db/search.py).
SEARCHED = frozenset({"prompt", "output_text", "title"})


#: A queued turn waits while its parent is still in one of these.
WAITING_PARENT = PENDING
#: A queued turn whose parent ended in one of these fails with ``parent_failed``.
PARENT_FAILED = frozenset({Status.FAILED, Status.CANCELLED})


async def insert(
    store: Store,
    *,
    kind: str,
    model: str,
    prompt: str,
    system: str | None,
    params: dict[str, Any],
    input_asset_ids: list[str],
    stream: bool,
    tags: list[str],
    title: str | None = None,
    start_now: bool = False,
    conversation_id: str | None = None,
    parent_id: str | None = None,
    new_conversation: bool = False,
    template_id: str | None = None,
    variables: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Persist a new generation: ``queued``, or — with ``start_now`` — ``running`` with its first attempt
    already recorded (one transaction: the request path waits for it). Returns the values written (the
    columns an attempt needs), so the first attempt does not read them back.

    A turn of a conversation (``conversation_id``) creates that conversation in the same transaction when
    ``new_conversation``, and otherwise marks it active now (docs/api.md, "Conversations")."""
    gen_id = new_id()
    ts = now()

    if conversation_id is not None and new_conversation and parent_id is not None:
        # The parent (an image being refined) becomes the new conversation's root. The group commit below takes
        # inserts only, so this update is its own write, made before the turn exists.
        await store.transaction(lambda cur: cur.execute(
            "UPDATE generations SET conversation_id = ? WHERE id = ? AND conversation_id IS NULL",
            [conversation_id, parent_id]))
    rows: list[tuple[str, list[Any]]] = [(
        "INSERT INTO generations (id, kind, status, model, prompt, system, params, input_asset_ids, stream, "
        "title, tags, attempts, created_at, updated_at, started_at, conversation_id, parent_id, template_id, "
        "variables) VALUES",
        [gen_id, kind, Status.RUNNING if start_now else Status.QUEUED, model, prompt, system, json.dumps(params),
         json.dumps(input_asset_ids), stream, title, tags, 1 if start_now else 0, ts, ts,
         ts if start_now else None, conversation_id, parent_id, template_id,
         json.dumps(variables) if variables is not None else None],
    )]
    if conversation_id is not None:
        # The conversation exists once its first turn does (OR IGNORE: a later turn, or two refines of one
        # image at once); its activity is its newest turn (db/conversations.py), so nothing else is written.
        rows.append(("INSERT OR IGNORE INTO conversations (id, title, created_at, updated_at) VALUES",
                     [conversation_id, None, ts, ts]))
    if start_now:
        rows.append(("INSERT INTO attempts (generation_id, number, started_at) VALUES", [gen_id, 1, ts]))
    # Group commit: requests arriving together share one transaction and one journal sync; this returns once
    # the row is committed (docs/performance.md, "Group commit"). A request that goes out now does not wait for
    # its prompt to be added to the search index (a transaction of its own, right after).
    await group_for(store).insert(rows, searchable=not start_now)
    # Exactly the row as stored (every column of COLUMNS), so callers can build the record without a read.
    row: dict[str, Any] = {name: None for name in _COLUMN_NAMES}
    row.update(id=gen_id, kind=kind, status=Status.RUNNING if start_now else Status.QUEUED, model=model, prompt=prompt,
               system=system, params=json.dumps(params), input_asset_ids=json.dumps(input_asset_ids),
               stream=stream, title=title, tags=tags, favorite=False, attempts=1 if start_now else 0,
               created_at=ts, updated_at=ts, started_at=ts if start_now else None,
               conversation_id=conversation_id, parent_id=parent_id, template_id=template_id,
               variables=json.dumps(variables) if variables is not None else None)
    return row


async def get_row(store: Store, gen_id: str) -> dict[str, Any]:
    row = await store.fetchone(f"SELECT {COLUMNS} FROM generations WHERE id = ?", [gen_id])  # noqa: S608
    if row is None:
        raise NotFound(f"No generation with id '{gen_id}'.")
    await with_parent_status(store, [row])
    return row


async def parent_failed(store: Store, row: dict[str, Any]) -> bool:
    """Whether the turn ``row`` answers failed or was cancelled (it cannot be retried before its parent)."""
    if not row.get("parent_id"):
        return False
    parent = await store.fetchone("SELECT status FROM generations WHERE id = ?", [row["parent_id"]])
    return parent is not None and parent["status"] in PARENT_FAILED


async def with_parent_status(store: Store, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add ``parent_status`` to queued turns (a turn waits for its parent: ``waiting_for`` in the record). One
    lookup by primary key for the few that need it, never a join over the library."""
    wanted = list({r["parent_id"] for r in rows if r["status"] == Status.QUEUED and r.get("parent_id")})
    statuses: dict[str, str] = {}
    if wanted:
        placeholders = ", ".join("?" for _ in wanted)
        found = await store.fetchall(
            f"SELECT id, status FROM generations WHERE id IN ({placeholders})", wanted)  # noqa: S608
        statuses = {r["id"]: r["status"] for r in found}
    for row in rows:
        row["parent_status"] = statuses.get(row.get("parent_id") or "")
    return rows


async def update(store: Store, gen_id: str, *, index: bool = True, **changes: Any) -> None:
    """Set columns on one generation (JSON columns are encoded here). ``index=False`` skips the search index:
    streamed text is flushed every 250 ms and indexed once, when the generation ends (:func:`transition`)."""
    if not changes:
        return
    for key in ("error", "params", "input_asset_ids"):
        if key in changes and changes[key] is not None and not isinstance(changes[key], str):
            changes[key] = json.dumps(changes[key])
    changes["updated_at"] = now()
    assignments = ", ".join(f"{name} = ?" for name in changes)
    if not (index and SEARCHED.intersection(changes)):
        await store.execute(f"UPDATE generations SET {assignments} WHERE id = ?", [*changes.values(), gen_id])  # noqa: S608
        return

    def run(cur: Any) -> None:
        cur.execute(f"UPDATE generations SET {assignments} WHERE id = ?", [*changes.values(), gen_id])  # noqa: S608
        search_index.index(cur, [gen_id])

    await store.transaction(run)


async def claim(store: Store, gen_id: str, *, from_statuses: tuple[str, ...] = (Status.QUEUED,)) -> bool:
    """Atomically move a generation to ``running``; False when another path got it first."""
    placeholders = ", ".join("?" for _ in from_statuses)

    def run(cur: Any) -> bool:
        cur.execute(
            f"UPDATE generations SET status = 'running', started_at = ?, updated_at = ?, next_attempt_at = NULL "  # noqa: S608
            f"WHERE id = ? AND status IN ({placeholders}) RETURNING id",
            [now(), now(), gen_id, *from_statuses],
        )
        return cur.fetchone() is not None

    return await store.transaction(run)


async def transition(store: Store, gen_id: str, *, status: str, from_statuses: Sequence[str] = (Status.RUNNING,),
                     **changes: Any) -> bool:
    """Move a generation to ``status`` (setting ``changes`` too) only if it is in one of ``from_statuses``.

    Every status change an attempt makes goes through here (or :func:`move` inside a transaction), so an
    attempt that ends after the user cancelled the generation can never bring it back. False when the
    generation was elsewhere.
    """
    return await store.transaction(lambda cur: move(cur, gen_id, status=status, from_statuses=from_statuses,
                                                    **changes)) is not None


def move(cur: Any, gen_id: str, *, status: str, from_statuses: Sequence[str] = (Status.RUNNING,),
         add: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any] | None:
    """:func:`transition` inside a transaction the caller holds, also adding ``add`` to numeric columns (a
    NULL counts as 0); returns the row as stored now, or None when it was not in ``from_statuses``."""
    for key in ("error", "params", "input_asset_ids"):
        if key in changes and changes[key] is not None and not isinstance(changes[key], str):
            changes[key] = json.dumps(changes[key])
    changes["status"] = status
    changes["updated_at"] = now()
    add = add or {}
    assignments = ", ".join([*(f"{name} = ?" for name in changes), *(f"{n} = coalesce({n}, 0) + ?" for n in add)])
    placeholders = ", ".join("?" for _ in from_statuses)
    cur.execute(
        f"UPDATE generations SET {assignments} WHERE id = ? AND status IN ({placeholders}) "  # noqa: S608
        f"RETURNING {COLUMNS}",
        [*changes.values(), *add.values(), gen_id, *from_statuses],
    )
    found = cur.fetchone()
    if found is None:
        return None
    if SEARCHED.intersection(changes) or status in TERMINAL:
        search_index.index(cur, [gen_id])  # terminal: also the text a stream flushed without indexing
    return dict(zip(_COLUMN_NAMES, found, strict=True))


async def cancel(store: Store, gen_id: str) -> bool:
    """Mark a queued or running generation ``cancelled``; False when it had already finished."""
    return await transition(store, gen_id, status=Status.CANCELLED, from_statuses=(Status.QUEUED, Status.RUNNING),
                            finished_at=now(), next_attempt_at=None)


async def requeue(store: Store, gen_id: str) -> bool:
    """Queue a generation again now (from queued, failed, interrupted or cancelled), clearing its error."""
    return await transition(store, gen_id, status=Status.QUEUED, from_statuses=RETRYABLE,
                            next_attempt_at=None, finished_at=None, error=None)


# What deleting generations removes besides their assets, in order (table, column holding the generation id).
DELETE_ORDER: tuple[tuple[str, str], ...] = (
    ("attempts", "generation_id"), ("collection_items", "generation_id"), ("generations", "id"),
)


async def delete(store: Store, gen_ids: Sequence[str]) -> list[str]:
    """Delete generations with their attempts, assets and collection memberships, in one transaction; returns
    the media files no asset refers to now."""
    ids = list(gen_ids)

    def run(cur: Any) -> list[str]:
        orphans = assets_db.delete_for(cur, generation_ids=ids)
        for table, column in DELETE_ORDER:
            cur.execute(f"DELETE FROM {table} WHERE list_contains(?::VARCHAR[], {column})", [ids])  # noqa: S608
        return orphans

    return await store.transaction(run)


async def running_rows(store: Store) -> list[dict[str, Any]]:
    """Generations marked ``running`` (at start-up: whatever was in flight when the app last stopped)."""
    return await store.fetchall(
        "SELECT id, kind, job_id, upstream_id, output_text FROM generations WHERE status = 'running'")


async def video_jobs(store: Store) -> list[str]:
    """Running video generations with an OpenRouter job to follow."""
    rows = await store.fetchall(
        "SELECT id FROM generations WHERE kind = 'video' AND status = 'running' AND job_id IS NOT NULL")
    return [r["id"] for r in rows]


# Items of a paused batch wait (docs/outbox.md, "Batches"); everything else is sent when due.
async def fail_orphaned_turns(store: Store) -> list[str]:
    """Queued turns whose parent failed or was cancelled fail too (``parent_failed``); returns their ids. A
    retry of the parent lets them be retried (docs/outbox.md, "Conversations")."""
    error = json.dumps({"code": "parent_failed", "message": "The turn this one answers did not finish. Retry "
                        "that turn first, then retry this one."})

    orphans = ("status = 'queued' AND parent_id IN (SELECT p.id FROM generations p WHERE p.status IN "
               "('failed', 'cancelled'))")
    if await store.fetchone("SELECT 1 AS x FROM generations WHERE " + orphans + " LIMIT 1") is None:  # noqa: S608
        return []  # the usual case: a read, no write

    def run(cur: Any) -> list[str]:
        cur.execute(
            "UPDATE generations SET status = 'failed', error = ?, finished_at = ?, updated_at = ?, "  # noqa: S608
            "next_attempt_at = NULL WHERE " + orphans + " RETURNING id",
            [error, now(), now()],
        )
        failed = [r[0] for r in cur.fetchall()]
        search_index.index(cur, failed)  # a terminal status: indexed, like every generation that ends
        return failed

    return await store.transaction(run)


async def pending_count(store: Store) -> int:
    """How many generations wait or run."""
    row = await store.fetchone("SELECT count(*) AS n FROM generations WHERE status IN ('queued', 'running')")
    return int(row["n"]) if row else 0


async def pending_records(store: Store) -> list[dict[str, Any]]:
    """Records (without attempt logs) of the generations that wait or run, oldest first: two queries whatever
    their number (a batch may put thousands in the queue)."""
    rows = await store.fetchall(
        f"SELECT {COLUMNS} FROM generations WHERE status IN ('queued', 'running') ORDER BY created_at, id")  # noqa: S608
    assets = await assets_db.outputs_for(store, generation_ids=[r["id"] for r in rows])
    return [to_record(r, assets.get(r["id"], [])) for r in rows]


async def pending_ids(store: Store) -> list[str]:
    """Generations that wait or run, oldest first."""
    rows = await store.fetchall("SELECT id FROM generations WHERE status IN ('queued', 'running') ORDER BY created_at")
    return [r["id"] for r in rows]


async def month_spend(store: Store) -> float:
    """What this calendar month's generations cost so far (USD)."""
    row = await store.fetchone(
        "SELECT coalesce(sum(cost_usd), 0) AS s FROM generations WHERE created_at >= date_trunc('month', now())"
    )
    return float(row["s"]) if row else 0.0


def _error(stored: str | None) -> dict[str, Any] | None:
    """A stored error, with the screen that fixes it (rows written before errors carried ``action`` too)."""
    if not stored:
        return None
    error = json.loads(stored)
    action = action_for(error.get("code")) if isinstance(error, dict) else None
    if action and "action" not in error:
        error["action"] = action
    return error


def to_record(row: dict[str, Any], assets: list[dict[str, Any]] | None = None,
              attempts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The API shape of a generation (the record in docs/api.md, plus a few fields the UI uses)."""
    record = {
        "id": row["id"],
        "kind": row["kind"],
        "status": row["status"],
        "model": row["model"],
        "upstream_model": row["upstream_model"],
        "prompt": row["prompt"],
        "system": row["system"],
        "params": json.loads(row["params"] or "{}"),
        "input_asset_ids": json.loads(row["input_asset_ids"] or "[]"),
        "stream": bool(row["stream"]),
        "title": row["title"],
        "output_text": row["output_text"],
        "reasoning_text": row["reasoning_text"],
        "assets": assets or [],
        "usage": {
            "prompt_tokens": row["prompt_tokens"],
            "completion_tokens": row["completion_tokens"],
            "cost_usd": row["cost_usd"],
        },
        "upstream_id": row["upstream_id"],
        "job_id": row["job_id"],
        "attempts": row["attempts"],
        "error": _error(row["error"]),
        "next_attempt_at": iso(row["next_attempt_at"]),
        "created_at": iso(row["created_at"]),
        "started_at": iso(row["started_at"]),
        "finished_at": iso(row["finished_at"]),
        "tags": list(row["tags"] or []),
        "favorite": bool(row["favorite"]),
        "conversation_id": row.get("conversation_id"),
        "parent_id": row.get("parent_id"),
        "context_dropped_turns": row.get("context_dropped_turns") or 0,
        "waiting_for": "parent" if row["status"] == Status.QUEUED and row.get("parent_status") in WAITING_PARENT
        else None,
        "template_id": row.get("template_id"),
        "variables": json.loads(row["variables"]) if row.get("variables") else None,
        "batch_id": row.get("batch_id"),
    }
    if attempts is not None:
        record["attempt_log"] = attempts
    return record


async def record(store: Store, gen_id: str, *, with_attempts: bool = True) -> dict[str, Any]:
    row = await get_row(store, gen_id)
    assets = (await assets_db.outputs_for(store, generation_ids=[gen_id])).get(gen_id, [])
    attempts = await attempts_db.log(store, generation_id=gen_id) if with_attempts else None
    return to_record(row, assets, attempts)


async def conversation_records(store: Store, conversation_id: str) -> list[dict[str, Any]]:
    """Every turn of a conversation as API records (with output assets), oldest first."""
    rows = await store.fetchall(
        f"SELECT {COLUMNS} FROM generations WHERE conversation_id = ? ORDER BY created_at, id",  # noqa: S608
        [conversation_id])
    await with_parent_status(store, rows)
    assets = await assets_db.outputs_for(store, generation_ids=[r["id"] for r in rows])
    return [to_record(r, assets.get(r["id"], [])) for r in rows]


def existing_ids(cur: Any, ids: list[str]) -> list[str]:
    """Inside a transaction or read: the ids among ``ids`` that are generations, in their order, once each."""
    if not ids:
        return []
    cur.execute("SELECT id FROM generations WHERE list_contains(?::VARCHAR[], id)", [ids])
    found = {row[0] for row in cur.fetchall()}
    return [gen_id for gen_id in dict.fromkeys(ids) if gen_id in found]


async def save_video_job(store: Store, gen_id: str, *, attempt: int, job_id: str, polling_url: str | None,
                         upstream_id: str | None) -> None:
    """OpenRouter accepted a video job: keep its id (with the attempt's outcome) in one transaction."""
    ts = now()

    def run(cur: Any) -> None:
        cur.execute("UPDATE generations SET job_id = ?, polling_url = ?, upstream_id = coalesce(?, upstream_id), "
                    "updated_at = ? WHERE id = ?", [job_id, polling_url, upstream_id, ts, gen_id])
        cur.execute("UPDATE attempts SET finished_at = ?, outcome = 'submitted', http_status = 202 "
                    "WHERE generation_id = ? AND number = ?", [ts, gen_id, attempt])

    await store.transaction(run)
