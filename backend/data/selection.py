"""Which generations an export (or backup manifest) covers, and reading them as API records, page by page.

Everything here runs on one DuckDB cursor inside a worker thread, in one read transaction, so an export is a
consistent snapshot even while generations keep arriving.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from backend.db import assets as assets_db
from backend.db import generations as gens
from backend.db.listing import TEXT_MATCH
from backend.db.pages import like_pattern
from backend.db.time import iso

PAGE = 500


def _rows(cur: Any) -> list[dict[str, Any]]:
    names = [column[0] for column in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _columns(cur: Any, table: str) -> set[str]:
    cur.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table])
    return {row[0] for row in cur.fetchall()}


def select_ids(cur: Any, selection: dict[str, Any]) -> list[str]:
    """Ids of the generations the filter selects (newest first). Filters combine with AND; a filter on a
    column this library does not have yet (e.g. batches before any exist) selects nothing."""
    where: list[str] = []
    params: list[Any] = []
    if selection.get("q"):
        q = selection["q"]
        pattern = like_pattern(q)
        where.append(TEXT_MATCH)
        params += [pattern, pattern, pattern]
    if selection.get("kind"):
        where.append("kind = ?")
        params.append(selection["kind"])
    if selection.get("tag"):
        where.append("list_contains(tags, ?)")
        params.append(selection["tag"])
    if selection.get("collection_id"):
        where.append("id IN (SELECT generation_id FROM collection_items WHERE collection_id = ?)")
        params.append(selection["collection_id"])
    if selection.get("ids") is not None:
        where.append("list_contains(?::VARCHAR[], id)")
        params.append(list(selection["ids"]))
    columns = _columns(cur, "generations")
    for name in ("batch_id", "conversation_id"):
        if selection.get(name):
            if name not in columns:
                return []
            where.append(f"{name} = ?")
            params.append(selection[name])
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    cur.execute(f"SELECT id FROM generations {clause} ORDER BY created_at DESC, id DESC", params)  # noqa: S608
    return [row[0] for row in cur.fetchall()]


def iter_records(cur: Any, ids: list[str]) -> Iterator[dict[str, Any]]:
    """API records for ``ids``, in that order, each with its output ``assets``, the reference images it was
    given (``input_assets``) and its ``attempt_log``."""
    for start in range(0, len(ids), PAGE):
        chunk = ids[start : start + PAGE]
        cur.execute("SELECT * FROM generations WHERE list_contains(?::VARCHAR[], id)", [chunk])
        rows = {row["id"]: row for row in _rows(cur)}
        cur.execute(
            "SELECT * FROM assets WHERE role = 'output' AND list_contains(?::VARCHAR[], generation_id) "
            "ORDER BY position, created_at", [chunk],
        )
        outputs: dict[str, list[dict[str, Any]]] = {}
        for asset in _rows(cur):
            outputs.setdefault(asset["generation_id"], []).append(assets_db.record(asset))
        input_ids = sorted({a for row in rows.values() for a in json.loads(row["input_asset_ids"] or "[]")})
        cur.execute("SELECT * FROM assets WHERE list_contains(?::VARCHAR[], id)", [input_ids])
        inputs = {asset["id"]: assets_db.record(asset) for asset in _rows(cur)}
        cur.execute(
            "SELECT * FROM attempts WHERE list_contains(?::VARCHAR[], generation_id) ORDER BY number", [chunk]
        )
        attempts: dict[str, list[dict[str, Any]]] = {}
        for attempt in _rows(cur):
            attempts.setdefault(attempt.pop("generation_id"), []).append(
                {**attempt, "started_at": _iso(attempt["started_at"]), "finished_at": _iso(attempt["finished_at"])}
            )
        for gen_id in chunk:
            row = rows.get(gen_id)
            if row is None:
                continue
            record = gens.to_record(row, outputs.get(gen_id, []), attempts.get(gen_id, []))
            record["input_assets"] = [inputs[a] for a in record["input_asset_ids"] if a in inputs]
            yield record


def _iso(value: Any) -> str | None:
    return iso(value)
