"""Generations and their assets in DuckDB: plain functions with keyword-only arguments.

A generation row is written before anything is sent to OpenRouter; every later change goes through
:func:`update`. Records returned to the API are built by :func:`to_record`.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from backend.core.errors import AtelierError, NotFound
from backend.core.vocabulary import Kind, Status
from backend.db.store import Store

STATUSES = frozenset(Status)
KINDS = tuple(Kind)

_COLUMNS = (
    "id, kind, status, model, prompt, system, params, input_asset_ids, stream, title, tags, favorite, output_text, "
    "reasoning_text, prompt_tokens, completion_tokens, cost_usd, upstream_id, upstream_model, job_id, polling_url, "
    "attempts, error, next_attempt_at, created_at, started_at, finished_at, updated_at"
)

_COLUMN_NAMES = [name.strip() for name in _COLUMNS.split(",")]


def now() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


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
) -> dict[str, Any]:
    """Persist a new generation: ``queued``, or — with ``start_now`` — ``running`` with its first attempt
    already recorded (one transaction: the request path waits for it). Returns the values written (the
    columns an attempt needs), so the first attempt does not read them back."""
    gen_id = new_id()
    ts = now()

    def write(cur: Any) -> None:
        cur.execute(
            "INSERT INTO generations (id, kind, status, model, prompt, system, params, input_asset_ids, stream, "
            "title, tags, attempts, created_at, updated_at, started_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [gen_id, kind, "running" if start_now else "queued", model, prompt, system, json.dumps(params),
             json.dumps(input_asset_ids), stream, title, tags, 1 if start_now else 0, ts, ts,
             ts if start_now else None],
        )
        if start_now:
            cur.execute("INSERT INTO attempts (generation_id, number, started_at) VALUES (?, 1, ?)", [gen_id, ts])

    await store.transaction(write)
    # Exactly the row as stored (every column of _COLUMNS), so callers can build the record without a read.
    row: dict[str, Any] = {name: None for name in _COLUMN_NAMES}
    row.update(id=gen_id, kind=kind, status="running" if start_now else "queued", model=model, prompt=prompt,
               system=system, params=json.dumps(params), input_asset_ids=json.dumps(input_asset_ids),
               stream=stream, title=title, tags=tags, favorite=False, attempts=1 if start_now else 0,
               created_at=ts, updated_at=ts, started_at=ts if start_now else None)
    return row


async def get_row(store: Store, gen_id: str) -> dict[str, Any]:
    row = await store.fetchone(f"SELECT {_COLUMNS} FROM generations WHERE id = ?", [gen_id])  # noqa: S608
    if row is None:
        raise NotFound(f"No generation with id '{gen_id}'.")
    return row


async def update(store: Store, gen_id: str, **changes: Any) -> None:
    """Set columns on one generation (JSON columns are encoded here)."""
    if not changes:
        return
    for key in ("error", "params", "input_asset_ids"):
        if key in changes and changes[key] is not None and not isinstance(changes[key], str):
            changes[key] = json.dumps(changes[key])
    changes["updated_at"] = now()
    assignments = ", ".join(f"{name} = ?" for name in changes)
    await store.execute(f"UPDATE generations SET {assignments} WHERE id = ?", [*changes.values(), gen_id])  # noqa: S608


async def claim(store: Store, gen_id: str, *, from_statuses: tuple[str, ...] = ("queued",)) -> bool:
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


async def begin_attempt(store: Store, gen_id: str) -> int:
    """Record the start of an attempt; returns its number."""

    def run(cur: Any) -> int:
        cur.execute("UPDATE generations SET attempts = attempts + 1, updated_at = ? WHERE id = ? RETURNING attempts",
                    [now(), gen_id])
        number = cur.fetchone()[0]
        cur.execute("INSERT INTO attempts (generation_id, number, started_at) VALUES (?, ?, ?)",
                    [gen_id, number, now()])
        return number

    return await store.transaction(run)


async def end_attempt(
    store: Store, gen_id: str, number: int, *, outcome: str, http_status: int | None = None,
    error_code: str | None = None, error_message: str | None = None,
) -> None:
    await store.execute(
        "UPDATE attempts SET finished_at = ?, outcome = ?, http_status = ?, error_code = ?, error_message = ? "
        "WHERE generation_id = ? AND number = ?",
        [now(), outcome, http_status, error_code, error_message, gen_id, number],
    )


async def counted_attempts(store: Store, gen_id: str) -> int:
    """Attempts that reached OpenRouter (being offline does not use attempts up)."""
    row = await store.fetchone(
        "SELECT count(*) AS n FROM attempts WHERE generation_id = ? AND coalesce(error_code, '') <> 'network'",
        [gen_id],
    )
    return int(row["n"]) if row else 0


async def attempts_of(store: Store, gen_id: str) -> list[dict[str, Any]]:
    rows = await store.fetchall(
        "SELECT number, started_at, finished_at, outcome, http_status, error_code, error_message FROM attempts "
        "WHERE generation_id = ? ORDER BY number",
        [gen_id],
    )
    return [
        {**row, "started_at": iso(row["started_at"]), "finished_at": iso(row["finished_at"])} for row in rows
    ]


async def assets_for(store: Store, gen_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    if not gen_ids:
        return {}
    placeholders = ", ".join("?" for _ in gen_ids)
    rows = await store.fetchall(
        f"SELECT id, generation_id, kind, mime, bytes, sha256, width, height, duration_s, thumb_sha256 "  # noqa: S608
        f"FROM assets WHERE role = 'output' AND generation_id IN ({placeholders}) ORDER BY position, created_at",
        gen_ids,
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(row["generation_id"], []).append(asset_record(row))
    return out


def asset_record(row: dict[str, Any]) -> dict[str, Any]:
    record = {
        "id": row["id"], "kind": row["kind"], "mime": row["mime"], "bytes": row["bytes"], "sha256": row["sha256"],
        "width": row.get("width"), "height": row.get("height"), "duration_s": row.get("duration_s"),
        "url": f"/api/v1/assets/{row['id']}",
    }
    record["thumb_url"] = f"/api/v1/assets/{row['id']}?thumb=1" if row.get("thumb_sha256") else None
    return record


def iso(value: datetime | None) -> str | None:
    """A stored time as the API writes it (UTC, ``Z``)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


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
        "error": json.loads(row["error"]) if row["error"] else None,
        "next_attempt_at": iso(row["next_attempt_at"]),
        "created_at": iso(row["created_at"]),
        "started_at": iso(row["started_at"]),
        "finished_at": iso(row["finished_at"]),
        "tags": list(row["tags"] or []),
        "favorite": bool(row["favorite"]),
    }
    if attempts is not None:
        record["attempt_log"] = attempts
    return record


async def record(store: Store, gen_id: str, *, with_attempts: bool = True) -> dict[str, Any]:
    row = await get_row(store, gen_id)
    assets = (await assets_for(store, [gen_id])).get(gen_id, [])
    attempts = await attempts_of(store, gen_id) if with_attempts else None
    return to_record(row, assets, attempts)


def encode_cursor(row: dict[str, Any]) -> str:
    created: datetime = row["created_at"]
    raw = f"{created.isoformat()}|{row['id']}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, gen_id = raw.split("|", 1)
        return datetime.fromisoformat(created), gen_id
    except (ValueError, UnicodeDecodeError):
        raise AtelierError("The cursor is not valid; start again without it.", code="invalid_cursor",
                           status=422) from None


async def search(
    store: Store,
    *,
    q: str | None = None,
    kind: str | None = None,
    status: str | None = None,
    model: str | None = None,
    tag: str | None = None,
    favorite: bool | None = None,
    collection_id: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first. ``q`` matches prompt, output and title (case-insensitive substring)."""
    where: list[str] = []
    params: list[Any] = []
    if q:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append("(prompt ILIKE ? ESCAPE '\\' OR output_text ILIKE ? ESCAPE '\\' OR title ILIKE ? ESCAPE '\\')")
        params += [pattern, pattern, pattern]
    for column, value in (("kind", kind), ("status", status), ("model", model)):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    if tag:
        where.append("list_contains(tags, ?)")
        params.append(tag)
    if favorite is not None:
        where.append("favorite = ?")
        params.append(favorite)
    if collection_id:
        where.append("id IN (SELECT generation_id FROM collection_items WHERE collection_id = ?)")
        params.append(collection_id)
    if cursor:
        created, gen_id = decode_cursor(cursor)
        where.append("(created_at < ? OR (created_at = ? AND id < ?))")
        params += [created, created, gen_id]
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    rows = await store.fetchall(
        f"SELECT {_COLUMNS} FROM generations {clause} ORDER BY created_at DESC, id DESC LIMIT ?",  # noqa: S608
        [*params, limit + 1],
    )
    next_cursor = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    rows = rows[:limit]
    assets = await assets_for(store, [r["id"] for r in rows])
    return [to_record(r, assets.get(r["id"], [])) for r in rows], next_cursor


def existing_ids(cur: Any, ids: list[str]) -> list[str]:
    """Inside a transaction or read: the ids among ``ids`` that are generations, in their order, once each."""
    if not ids:
        return []
    cur.execute("SELECT id FROM generations WHERE list_contains(?::VARCHAR[], id)", [ids])
    found = {row[0] for row in cur.fetchall()}
    return [gen_id for gen_id in dict.fromkeys(ids) if gen_id in found]
