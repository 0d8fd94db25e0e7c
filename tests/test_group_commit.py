"""Group commit of new generations (docs/performance.md, "Group commit").

Requests that arrive while the database is busy share one transaction and one journal sync; each is still on
disk before it is acknowledged or sent (checked with kill -9 of the real app), and a group whose commit fails
fails every request in it with 507.
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from backend.core.errors import StorageError
from backend.db import generations as gens
from backend.db.group_commit import group_for
from backend.db.store import Store
from tests.conftest import start_api
from tests.fakes.openrouter import FakeOpenRouter
from tests.test_robustness_crash import FAST_ENV, AppProcess, set_key, wait_for


async def insert(store: Store, prompt: str, *, start_now: bool = True) -> dict[str, Any]:
    return await gens.insert(store, kind="text", model="openai/gpt-4o-mini", prompt=prompt, system=None, params={},
                             input_asset_ids=[], stream=True, tags=[], start_now=start_now)


def test_inserts_arriving_together_share_one_commit(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = Store.open(tmp_path / "atelier.duckdb")
        try:
            group = group_for(store)
            await insert(store, "alone")  # the app is idle: committed at once, alone
            assert (group.commits, group.largest) == (1, 1)
            async with store.write_lock:  # the database is busy: twenty requests arrive meanwhile
                tasks = [asyncio.create_task(insert(store, f"together {i}")) for i in range(20)]
                await asyncio.sleep(0.05)
                assert not any(t.done() for t in tasks)  # none acknowledged before its commit
            rows = await asyncio.gather(*tasks)
            assert group.commits == 2 and group.largest == 20
            for row in rows:
                stored = await gens.get_row(store, row["id"])
                assert stored["status"] == "running" and stored["attempts"] == 1
            attempts = await store.fetchone("SELECT count(*) AS n FROM attempts")
            assert attempts == {"n": 21}
        finally:
            store.close()

    asyncio.run(scenario())


def test_a_failed_group_commit_fails_every_request_in_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        store = Store.open(tmp_path / "atelier.duckdb")
        try:
            real = store._run_tx

            def disk_full(fn: Any) -> Any:
                def failing(cur: Any) -> Any:
                    fn(cur)  # every write of the group runs, then the commit is refused
                    raise duckdb.IOException("Could not write file: No space left on device")

                return real(failing)

            monkeypatch.setattr(store, "_run_tx", disk_full)
            async with store.write_lock:
                tasks = [asyncio.create_task(insert(store, f"doomed {i}")) for i in range(5)]
                await asyncio.sleep(0.05)
            results = await asyncio.gather(*tasks, return_exceptions=True)
            assert all(isinstance(r, StorageError) and r.status == 507 for r in results), results
            monkeypatch.setattr(store, "_run_tx", real)
            assert await store.fetchone("SELECT count(*) AS n FROM generations") == {"n": 0}
            assert await store.fetchone("SELECT count(*) AS n FROM attempts") == {"n": 0}
            row = await insert(store, "after the disk has room again")  # the group carries on
            assert (await gens.get_row(store, row["id"]))["prompt"] == "after the disk has room again"
        finally:
            store.close()

    asyncio.run(scenario())


def test_a_failed_group_commit_answers_507(data_dir: Path, fake_openrouter: FakeOpenRouter,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    api = start_api(data_dir, openrouter_base_url=fake_openrouter.base_url)
    try:
        with api.client() as client:
            set_key(client, fake_openrouter.key)
            store = api.app.state.store
            real = store._run_tx

            def disk_full(fn: Any) -> Any:
                raise duckdb.IOException("Could not write file: No space left on device")

            monkeypatch.setattr(store, "_run_tx", disk_full)
            answers: list[httpx.Response] = []

            def post(i: int) -> None:
                with api.client() as c:
                    answers.append(c.post("/api/v1/generations", json={
                        "kind": "text", "model": "openai/gpt-4o-mini", "prompt": f"doomed {i}", "stream": True}))

            threads = [threading.Thread(target=post, args=(i,)) for i in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            monkeypatch.setattr(store, "_run_tx", real)
            assert len(answers) == 8
            for r in answers:
                assert r.status_code == 507, r.text
                assert r.json()["error"]["code"] == "storage_error"
            assert not [r for r in fake_openrouter.requests if r.path == "/chat/completions"]  # nothing sent
            assert client.get("/api/v1/generations").json()["items"] == []
    finally:
        api.stop()


def test_acknowledged_or_sent_requests_survive_kill_9(data_dir: Path) -> None:
    """Many streams at once, kill -9 in the middle: every request the client saw acknowledged, and every one
    OpenRouter received, is in the database file."""
    with FakeOpenRouter(token_delay=0.02) as fake:
        app = AppProcess(data_dir, **{**FAST_ENV, "ATELIER_OPENROUTER_BASE_URL": fake.base_url}).start()
        set_key(app.api, fake.key)
        acked: dict[str, str] = {}  # prompt → id
        lock = threading.Lock()

        def stream(i: int) -> None:
            prompt = f"kill test {i}"
            try:
                with httpx.Client(base_url=app.info["api_url"], timeout=30,
                                  headers={"Authorization": f"Bearer {app.info['token']}"}) as c, \
                        c.stream("POST", "/api/v1/generations", json={
                            "kind": "text", "model": "openai/gpt-4o-mini", "prompt": prompt, "stream": True}) as r:
                    for line in r.iter_lines():
                        if line.startswith("data: ") and '"id"' in line:
                            record = json.loads(line[6:])
                            record = record.get("generation", record)
                            with lock:
                                acked[prompt] = record["id"]
                            break
            except httpx.HTTPError:
                pass  # killed before the answer: never acknowledged

        threads = [threading.Thread(target=stream, args=(i,), daemon=True) for i in range(60)]
        for t in threads:
            t.start()
        wait_for(lambda: len([r for r in fake.requests if r.path == "/chat/completions"]) >= 10,
                 what="some requests sent upstream")
        app.kill()
        for t in threads:
            t.join(30)
        sent = set()
        for r in fake.requests:
            if r.path == "/chat/completions" and isinstance(r.json, dict):
                sent.add(r.json["messages"][-1]["content"])
    assert acked and sent
    con = duckdb.connect(str(data_dir / "atelier.duckdb"))
    try:
        stored = dict(con.execute("SELECT prompt, id FROM generations").fetchall())
    finally:
        con.close()
    for prompt, gen_id in acked.items():
        assert stored.get(prompt) == gen_id, f"acknowledged {prompt!r} is not in the database file"
    for prompt in sent:
        assert prompt in stored, f"{prompt!r} reached OpenRouter but is not in the database file"
