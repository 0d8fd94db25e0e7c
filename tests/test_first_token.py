"""What the path to the first token relies on (docs/performance.md, "Issue 14": "Single-stream TTFT").

No timings here: each test fails when a behaviour the faster path depends on breaks.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from backend.db import generations as gens
from backend.db.group_commit import GroupCommit, group_for
from backend.db.store import Store
from tests.test_outbox_unit import Rig, chat_ok


async def _insert(store: Store, prompt: str, *, start_now: bool) -> str:
    row = await gens.insert(store, kind="text", model="openai/gpt-4o-mini", prompt=prompt, system=None, params={},
                            input_asset_ids=[], stream=True, tags=[], start_now=start_now)
    return row["id"]


async def _found(store: Store, q: str) -> list[str]:
    return [item["id"] for item in (await gens.search(store, q=q))[0]]


async def _indexing_done(store: Store) -> None:
    task = group_for(store)._task
    if task is not None:
        await asyncio.wait_for(asyncio.shield(task), 10)


def test_new_generations_are_indexed_after_their_commit_not_before_sending(tmp_path: Path) -> None:
    async def go() -> None:
        store = Store.open(tmp_path / "atelier.duckdb")
        try:
            # A deferred request is answered as soon as insert returns: it is searchable by then.
            deferred = await _insert(store, "a quokka waits", start_now=False)
            assert await _found(store, "quokka") == [deferred]
            # A request that goes out now does not wait for the index; its words follow in a moment.
            async with store.write_lock:  # the database is busy: the index waits, the commit does not wait for it
                task = asyncio.create_task(_insert(store, "a wombat goes now", start_now=True))
                await asyncio.sleep(0.05)
                assert not task.done()  # not before its commit
            sent = await task
            assert (await gens.get_row(store, sent))["status"] == "running"
            await _indexing_done(store)
            assert await _found(store, "wombat") == [sent]
        finally:
            store.close()

    asyncio.run(go())


def test_start_up_indexes_what_an_app_stopped_before_indexing_left_out(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    async def lost(self: GroupCommit) -> None:  # the app stops between the commit and the index
        batch, self._unindexed = self._unindexed, []
        for _, future in batch:
            future.set_result(None)

    async def go() -> None:
        async with Rig(tmp_path, lambda request: chat_ok()) as rig:
            with monkeypatch.context() as patch:
                patch.setattr(GroupCommit, "_index", lost)
                running = await _insert(rig.store, "platypus in flight", start_now=True)
                waiting = await _insert(rig.store, "echidna in the queue", start_now=False)
                await _indexing_done(rig.store)
            assert await _found(rig.store, "platypus") == []
            assert await _found(rig.store, "echidna") == []
            await rig.outbox.start()  # what the app does at start-up
            assert await _found(rig.store, "platypus") == [running]
            assert await _found(rig.store, "echidna") == [waiting]

    asyncio.run(go())


def test_a_turn_failed_with_its_parent_is_indexed(tmp_path: Path) -> None:
    async def go() -> None:
        store = Store.open(tmp_path / "atelier.duckdb")
        try:
            parent = await _insert(store, "the parent", start_now=False)
            row = await gens.insert(store, kind="text", model="openai/gpt-4o-mini", prompt="orphaned narwhal",
                                    system=None, params={}, input_asset_ids=[], stream=True, tags=[],
                                    conversation_id="c1", parent_id=parent, start_now=True)
            await store.execute("DELETE FROM search_terms")  # as if it had never been indexed
            await gens.transition(store, parent, status="failed", from_statuses=("queued",))
            await store.execute("UPDATE generations SET status = 'queued' WHERE id = ?", [row["id"]])
            assert await gens.fail_orphaned_turns(store) == [row["id"]]
            assert await _found(store, "narwhal") == [row["id"]]
        finally:
            store.close()

    asyncio.run(go())
