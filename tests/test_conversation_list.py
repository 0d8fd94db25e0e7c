"""``GET /conversations`` sums the turns of the page's conversations only; the answer must equal summing every turn
of every conversation (the plain definition below), on a real DuckDB file, page by page."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from backend.db import conversations as convs
from backend.db import generations as gens
from backend.db.store import Store
from backend.db.time import iso, new_id

# The definition: every turn of every conversation summed, ordered by activity (newest turn or rename).
PLAIN = """
    SELECT c.id, coalesce(c.title, '') AS title, greatest(c.updated_at, max(g.created_at)) AS activity,
           count(g.id) AS turns, coalesce(sum(g.cost_usd), 0) AS cost_usd,
           arg_max(g.model, g.created_at) AS last_model, arg_min(g.prompt, g.created_at) AS first_prompt
    FROM conversations c JOIN generations g ON g.conversation_id = c.id
    {where} GROUP BY c.id, c.title, c.updated_at ORDER BY activity DESC, c.id DESC
"""


async def _library(store: Store) -> list[str]:
    """Twelve conversations of 1–6 turns over many days, with costs, renames and deleted turns."""
    rnd = random.Random(11)
    conversation_ids = []
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(12):
        conv_id, parent = new_id(), None
        conversation_ids.append(conv_id)
        for turn in range(rnd.randint(1, 6)):
            row = await gens.insert(store, kind="text", model=f"m/{rnd.randint(0, 3)}",
                                    prompt=f"Prompt {n}.{turn} " + rnd.choice(["harbour", "meadow", "glacier"]),
                                    system=None, params={}, input_asset_ids=[], stream=False, tags=[],
                                    conversation_id=conv_id, parent_id=parent, new_conversation=turn == 0)
            parent = row["id"]
            created = start + timedelta(hours=rnd.randint(0, 24 * 60))
            await store.execute("UPDATE generations SET created_at = ?, cost_usd = ? WHERE id = ?",
                                [created, rnd.choice([None, 0.001, 0.02]), row["id"]])
    # Renames move some conversations up (activity), and two of them name nothing but a new title.
    for conv_id in conversation_ids[::4]:
        await convs.rename(store, conv_id, f"Renamed {conv_id[:4]}")
    await convs.rename(store, conversation_ids[1], None)
    # A conversation whose turns were all deleted is not listed; one that lost a turn lists the rest.
    await gens.delete(store, await convs.turn_ids(store, conversation_ids[2]))
    await gens.delete(store, (await convs.turn_ids(store, conversation_ids[3]))[:1])
    return conversation_ids


async def _plain(store: Store, q: str | None = None) -> list[dict]:
    where, params = "", []
    if q:
        where = ("WHERE c.title ILIKE ? OR c.id IN (SELECT conversation_id FROM generations WHERE prompt ILIKE ? "
                 "OR output_text ILIKE ?)")
        params = [f"%{q}%"] * 3
    rows = await store.fetchall(PLAIN.format(where=where), params)
    return [{"id": r["id"], "title": r["title"] or convs.default_title(r["first_prompt"]) or "Untitled",
             "turns": r["turns"], "cost_usd": float(r["cost_usd"]), "last_model": r["last_model"],
             "updated_at": iso(r["activity"])} for r in rows]


async def _paged(store: Store, limit: int, q: str | None = None) -> list[dict]:
    out, cursor = [], None
    while True:
        items, cursor = await convs.search(store, q=q, limit=limit, cursor=cursor)
        out += [{k: i[k] for k in ("id", "title", "turns", "cost_usd", "last_model", "updated_at")} for i in items]
        if not cursor:
            return out


def test_the_conversation_list_equals_summing_every_turn(tmp_path: Path) -> None:
    async def go() -> None:
        store = Store.open(tmp_path / "a.duckdb")
        try:
            conversation_ids = await _library(store)
            expected = await _plain(store)
            assert len(expected) == 11 and conversation_ids[2] not in [e["id"] for e in expected]
            assert any(e["title"].startswith("Renamed") for e in expected)
            assert any(e["title"].startswith("Prompt") for e in expected)
            for limit in (1, 3, 50):
                assert await _paged(store, limit) == expected, limit
            for q in ("glacier", "renamed", "nothing-like-this"):
                assert await _paged(store, 2, q) == await _plain(store, q), q
            for item in expected:
                one = await convs.summary(store, item["id"])
                assert {k: one[k] for k in item} == item
        finally:
            store.close()

    asyncio.run(go())
