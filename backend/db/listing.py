"""Pages of generations for the Library, a batch and ``GET /generations``: filters, a keyset cursor, and the
search index's days (docs/data.md, "Search").
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from backend.db import assets as assets_db
from backend.db import search as search_index
from backend.db.generations import COLUMNS, to_record, with_parent_status
from backend.db.pages import decode_cursor, encode_cursor, like_pattern
from backend.db.store import Store

#: What ``q`` matches: a substring of the prompt, the output or the title (three parameters, like_pattern(q)).
TEXT_MATCH = "(prompt ILIKE ? ESCAPE '\\' OR output_text ILIKE ? ESCAPE '\\' OR title ILIKE ? ESCAPE '\\')"


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
    batch_id: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    oldest_first: bool = False,
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first (``oldest_first``: in the order they were made, as a batch's items are listed). ``q`` matches
    prompt, output and title (case-insensitive substring).

    Fast at any library size: the page's ids are found in windows of ``created_at`` (newest first, stopping as
    soon as the page is full; with ``q``, only the days the search index names), then only those rows are read.
    See docs/data.md ("Search").
    """
    where: list[str] = []
    params: list[Any] = []
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
    if batch_id:
        where.append("batch_id = ?")
        params.append(batch_id)
    after = decode_cursor(cursor) if cursor else None
    if after:
        op = ">" if oldest_first else "<"
        where.append(f"(created_at {op} ? OR (created_at = ? AND id {op} ?))")
        params += [after[0], after[0], after[1]]
    if q:
        pattern = like_pattern(q)
        where.append(TEXT_MATCH)
        params += [pattern, pattern, pattern]
    need = limit + 1

    def run(cur: Any) -> list[dict[str, Any]]:
        conditions, values = list(where), list(params)
        if oldest_first:  # a batch's items: a small set read in the order it was made (the batch_id index)
            cur.execute(f"SELECT {COLUMNS} FROM generations WHERE {' AND '.join(conditions) or 'true'} "  # noqa: S608
                        "ORDER BY created_at, id LIMIT ?", [*values, need])
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        if collection_id:
            # A semi-join on the collection's items: DuckDB hashes the members and probes the library's ids once.
            conditions.append("id IN (SELECT generation_id FROM collection_items WHERE collection_id = ?)")
            values.append(collection_id)
        found: list[tuple[str, datetime]] = []
        for probe, probe_params in search_index.probes(cur, q=q, before=after[0] if after else None,
                                                        selective=bool(collection_id or batch_id)):
            clause = " AND ".join([*conditions, probe])
            cur.execute(f"SELECT id, created_at FROM generations WHERE {clause} "  # noqa: S608
                        "ORDER BY created_at DESC, id DESC LIMIT ?", [*values, *probe_params, need - len(found)])
            found += cur.fetchall()
            if len(found) >= need:
                break
        if not found:
            return []
        ids = [gen_id for gen_id, _ in found]
        if collection_id:  # scattered over the library: by id, one placeholder each (the primary key's index)
            cur.execute(f"SELECT {COLUMNS} FROM generations WHERE id IN ({', '.join('?' for _ in ids)})", ids)  # noqa: S608
        else:  # one stretch of time: a range scan
            cur.execute(f"SELECT {COLUMNS} FROM generations WHERE created_at >= ? AND created_at <= ? "  # noqa: S608
                        "AND list_contains(?::VARCHAR[], id)", [found[-1][1], found[0][1], ids])
        names = [d[0] for d in cur.description]
        by_id = {row[0]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}
        return [by_id[gen_id] for gen_id in ids if gen_id in by_id]

    rows = await store.read(run)
    await with_parent_status(store, rows)
    next_cursor = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    rows = rows[:limit]
    assets = await assets_db.outputs_for(store, generation_ids=[r["id"] for r in rows])
    return [to_record(r, assets.get(r["id"], [])) for r in rows], next_cursor

