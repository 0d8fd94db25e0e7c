"""What the path to the first token relies on (docs/performance.md, "Issue 14": "Single-stream TTFT").

No timings here: each test fails when a behaviour the faster path depends on breaks.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.db import attempts as attempts_db
from backend.db import generations as gens
from backend.db import listing
from backend.db.group_commit import GroupCommit, group_for
from backend.db.store import Store
from tests.test_outbox_unit import Rig, chat_ok


async def _insert(store: Store, prompt: str, *, start_now: bool) -> str:
    row = await gens.insert(store, kind="text", model="openai/gpt-4o-mini", prompt=prompt, system=None, params={},
                            input_asset_ids=[], stream=True, tags=[], start_now=start_now)
    return row["id"]


async def _found(store: Store, q: str) -> list[str]:
    return [item["id"] for item in (await listing.search(store, q=q))[0]]


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


def test_an_attempt_ends_in_one_transaction_and_done_carries_the_stored_record(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """After the answer: the attempt closed, the usage added, the status moved and the record for ``done`` read,
    in one round trip to the database, and that record is exactly what a read gives afterwards."""
    async def go() -> None:
        async with Rig(tmp_path, lambda request: chat_ok("Hi there")) as rig:
            gen_id = await rig.queued()
            calls: list[str] = []
            for name in ("transaction", "execute", "read"):
                real = getattr(rig.store, name)

                def counted(*args: Any, __real: Any = real, __name: str = name) -> Any:
                    calls.append(__name)
                    return __real(*args)

                monkeypatch.setattr(rig.store, name, counted)
            real_chat = rig.client.chat
            answered_at: list[int] = []

            async def chat(*args: Any) -> Any:
                result = await real_chat(*args)
                answered_at.append(len(calls))
                return result

            monkeypatch.setattr(rig.client, "chat", chat)
            running = await rig.outbox.send_queued(gen_id)
            assert running is not None and running.task is not None
            events = running.subscribe()
            await running.task
            assert calls[answered_at[0]:] == ["transaction"]
            monkeypatch.undo()
            event, record = events.get_nowait()
            assert event == "done"
            assert record == await gens.record(rig.store, gen_id, with_attempts=False)
            assert (record["status"], record["output_text"]) == ("succeeded", "Hi there")
            assert record["usage"]["cost_usd"] == pytest.approx(0.0001)
            log = await attempts_db.log(rig.store, generation_id=gen_id)
            assert [(a["outcome"], a["http_status"]) for a in log] == [("succeeded", 200)]

    asyncio.run(go())


def test_usage_of_a_billed_failure_and_its_retry_add_up(tmp_path: Path) -> None:
    answers = iter([
        httpx.Response(200, json={"id": "gen-x", "choices": [{"finish_reason": "error", "error": {
            "code": 502, "message": "provider fell over"}}], "usage": {"prompt_tokens": 5, "completion_tokens": 0,
                                                                       "cost": 0.00002}}),
        chat_ok("second time lucky"),
    ])

    async def go() -> None:
        async with Rig(tmp_path, lambda request: next(answers)) as rig:
            gen_id = await rig.queued()
            first = await rig.attempt(gen_id)  # an in-band error before any output: billed, sent again
            assert (first["status"], first["prompt_tokens"]) == ("queued", 5)
            assert first["cost_usd"] == pytest.approx(0.00002)
            second = await rig.attempt(gen_id)
            assert (second["status"], second["prompt_tokens"], second["completion_tokens"]) == ("succeeded", 8, 2)
            assert second["cost_usd"] == pytest.approx(0.00012)

    asyncio.run(go())


def test_neither_hop_makes_a_stream_wait_for_a_pooled_connection() -> None:
    """Every UI worker thread can hold a backend stream, and a hundred Studio streams to OpenRouter do not fill
    the pool (httpx's default of 100 made the next one wait for a free connection)."""
    from backend.openrouter import OpenRouterClient
    from desktop.servers import UI_THREADS
    from frontend.backend_client import BackendClient

    ui = BackendClient("http://127.0.0.1:9", "token")
    upstream = OpenRouterClient("http://127.0.0.1:9/api/v1", transport=None)
    try:
        ui_pool = ui._client._transport._pool
        assert ui_pool._max_connections > UI_THREADS and ui_pool._max_keepalive_connections > UI_THREADS
        assert upstream._connection._http._transport._pool._max_connections > 400
        assert upstream._connection._http._transport._pool._max_keepalive_connections >= 100
    finally:
        ui.close()
        asyncio.run(upstream.aclose())
