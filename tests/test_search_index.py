"""The search index and the windowed listing give exactly what a plain scan gives, on a real DuckDB file."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from backend.db import collections, listing
from backend.db import generations as gens
from backend.db import search as search_index
from backend.db.migrations import MIGRATIONS
from backend.db.store import Store, migrate

WORDS = ["light", "River", "café", "naïve", "ÉCOLE", "42", "x7", "dragon", "glass", "日本語", "ref-9", "a_b", "%", "\\"]


def run(coro):
    return asyncio.run(coro)


async def _fill(store: Store, n: int, seed: int = 7) -> list[str]:
    rnd = random.Random(seed)
    ids = []
    for i in range(n):
        row = await gens.insert(store, kind="text", model=f"m/{i % 3}", prompt=" ".join(rnd.sample(WORDS, 3)),
                                system=None, params={}, input_asset_ids=[], stream=False,
                                tags=["t1"] if i % 4 == 0 else [], title=f"Title {i}" if i % 5 == 0 else None)
        ids.append(row["id"])
        # Spread over days (and bunch some at one instant, to test ties) like a real library.
        created = datetime(2026, 3, 1, tzinfo=UTC) + timedelta(hours=7 * (i // 2))
        await store.execute("UPDATE generations SET created_at = ? WHERE id = ?", [created, row["id"]])
        if i % 3 == 0:
            await gens.update(store, row["id"], output_text=" ".join(rnd.sample(WORDS, 4)) + f" out{i}")
    # created_at moved after indexing: index again (the bench and the migration do the same for bulk rows).
    await store.transaction(lambda cur: search_index.index(cur, ids))
    return ids


async def _scan(store: Store, q: str | None, **filters) -> list[str]:
    """What a plain scan answers (the definition the index must match)."""
    where, params = ["true"], []
    if q:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append("(prompt ILIKE ? ESCAPE '\\' OR output_text ILIKE ? ESCAPE '\\' OR title ILIKE ? ESCAPE '\\')")
        params += [pattern] * 3
    if "tag" in filters:
        where.append("list_contains(tags, ?)")
        params.append(filters["tag"])
    if "collection_id" in filters:
        where.append("id IN (SELECT generation_id FROM collection_items WHERE collection_id = ?)")
        params.append(filters["collection_id"])
    rows = await store.fetchall(f"SELECT id FROM generations WHERE {' AND '.join(where)} "  # noqa: S608
                                "ORDER BY created_at DESC, id DESC", params)
    return [r["id"] for r in rows]


async def _paged(store: Store, q: str | None, limit: int, **filters) -> list[str]:
    out, cursor = [], None
    while True:
        items, cursor = await listing.search(store, q=q, limit=limit, cursor=cursor, **filters)
        out += [i["id"] for i in items]
        if not cursor:
            return out


QUERIES = [None, "light", "LIGHT", "ig", "café", "CAFÉ", "naïve", "école", "日本", "river dr", "ref-9", "a_b", "%",
           "\\", "out1", "title 1", "zzz", "ht riv", "x7 42", "!"]


@pytest.fixture
def index_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """A first window of one item's worth of time: what a search finds comes from the index's days."""
    monkeypatch.setattr(search_index, "WINDOW_ITEMS", 1)


# The default window covers these small libraries whole; 1 and 5 items' worth make the index's days do the work.
@pytest.mark.parametrize("window", [search_index.WINDOW_ITEMS, 5, 1])
def test_search_matches_a_plain_scan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, window: int) -> None:
    monkeypatch.setattr(search_index, "WINDOW_ITEMS", window)

    async def go() -> None:
        store = Store.open(tmp_path / "a.duckdb")
        try:
            ids = await _fill(store, 90)
            coll = "c" * 32
            await store.transaction(lambda cur: collections.add_items(cur, collection_id=coll,
                                                                      generation_ids=ids[::3]))
            answered = 0
            for q in QUERIES:
                expected = await _scan(store, q)
                answered += bool(expected)
                for limit in (1, 7, 50):
                    assert await _paged(store, q, limit) == expected, (q, limit)
                assert await _paged(store, q, 5, tag="t1") == await _scan(store, q, tag="t1"), q
                assert await _paged(store, q, 4, collection_id=coll) == await _scan(store, q, collection_id=coll), q
            assert answered >= 14
        finally:
            store.close()

    run(go())


def test_edits_are_found_and_deleted_rows_are_not(tmp_path: Path, index_only: None) -> None:
    async def go() -> None:
        store = Store.open(tmp_path / "a.duckdb")
        try:
            ids = await _fill(store, 12)
            await gens.update(store, ids[3], title="Zanzibar sunset")
            await gens.transition(store, ids[4], status="succeeded", from_statuses=("queued",),
                                  output_text="quokka parade")
            assert [i["id"] for i in (await listing.search(store, q="zanzib"))[0]] == [ids[3]]
            assert [i["id"] for i in (await listing.search(store, q="QUOKKA par"))[0]] == [ids[4]]
            await gens.delete(store, [ids[4]])
            assert (await listing.search(store, q="quokka"))[0] == []
        finally:
            store.close()

    run(go())


def test_the_migration_fills_the_index_like_writes_do(tmp_path: Path) -> None:
    async def go() -> list[tuple]:
        store = Store.open(tmp_path / "a.duckdb")
        try:
            ids = await _fill(store, 40)

            def again(cur) -> None:  # the days as the rows are now (moving created_at left the old ones too)
                cur.execute("DELETE FROM search_terms")
                search_index.index(cur, ids)

            def terms(cur) -> list[tuple]:
                return cur.execute("SELECT term, list_sort(days) FROM search_terms ORDER BY term").fetchall()

            await store.transaction(again)
            by_index = await store.read(terms)
            await store.transaction(search_index.rebuild)
            assert await store.read(terms) == by_index
            return by_index
        finally:
            store.close()

    by_writes = run(go())
    con = duckdb.connect(str(tmp_path / "a.duckdb"))
    try:
        con.execute("DROP TABLE search_terms")
        con.execute("DELETE FROM schema_migrations WHERE name = '0006_search'")
        assert migrate(con) == ["0006_search"]
        by_migration = con.execute("SELECT term, list_sort(days) FROM search_terms ORDER BY term").fetchall()
    finally:
        con.close()
    assert by_migration == by_writes
    assert "0006_search" in [name for name, *_ in MIGRATIONS]


def test_streamed_text_is_indexed_once_the_generation_ends(tmp_path: Path, index_only: None) -> None:
    async def go() -> None:
        store = Store.open(tmp_path / "a.duckdb")
        try:
            ids = await _fill(store, 3)
            # Flushes while streaming skip the index; ending the generation (here after a crash) indexes it.
            await gens.update(store, ids[1], index=False, output_text="a wombat appears")
            await gens.update(store, ids[1], index=False, output_text="a wombat appears and sings")
            await gens.transition(store, ids[1], status="interrupted", from_statuses=("queued",))
            assert [i["id"] for i in (await listing.search(store, q="appears and sings"))[0]] == [ids[1]]
        finally:
            store.close()

    run(go())


def test_only_words_used_on_the_newest_day_search_the_newest_items_first(tmp_path: Path) -> None:
    """``used_on`` decides whether a search looks at the newest items before reading the index (either way the
    answer is the same: the test above): every word must be an indexed word used on that day."""
    async def go() -> None:
        store = Store.open(tmp_path / "a.duckdb")
        try:
            ids = await _fill(store, 4)
            await gens.update(store, ids[3], title="Heron over the weir")
            newest = (await store.fetchone("SELECT max(created_at) AS t FROM generations"))["t"].astimezone(UTC)

            def check(q: str) -> bool:
                return store.read(lambda cur: search_index.used_on(cur, search_index.pieces(cur, q),
                                                                   newest.date()))

            assert await check("heron weir") is True
            assert await check("her") is False  # only inside a word: not itself an indexed word
            assert await check("heron zzz") is False
            assert await check("HERON") is True
            assert await check("out1") is False  # in no generation at all
            assert await check("out3") is True
        finally:
            store.close()

    run(go())
