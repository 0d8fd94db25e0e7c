"""Batches and compares through the real backend against the fake OpenRouter: written in one go, drained by
the outbox exactly once per item, paused, resumed, cancelled, across offline periods and kill -9, and never in
the way of a request typed in the Studio."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningApi, start_api
from tests.fakes.behaviours import Reply
from tests.fakes.openrouter import FakeOpenRouter
from tests.test_robustness_crash import FAST_ENV, AppProcess, set_key

FAST = {"retry_base_seconds": 0.05, "retry_max_seconds": 0.2, "probe_seconds": 0.1}
MODELS = ["openai/gpt-4o-mini", "anthropic/claude-sonnet-4.5"]
TEMPLATE = {"name": "Haiku", "kind": "text", "prompt": "A haiku about {{ subject }} in {{ season }}."}
ROWS = [{"subject": "tea", "season": "spring"}, {"subject": "rain", "season": "autumn"},
        {"subject": "snow", "season": "winter"}]


def wait_for(fn, timeout: float = 30, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} not met in time")


@pytest.fixture
def fake() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter() as fake:
        yield fake


def _start(data_dir: Path, fake: FakeOpenRouter, **overrides) -> tuple[RunningApi, httpx.Client]:
    running = start_api(data_dir, openrouter_base_url=fake.base_url, **{**FAST, **overrides})
    client = running.client()
    assert client.put("/api/v1/credentials", json={"api_key": fake.key}).status_code == 200
    return running, client


@pytest.fixture
def studio(data_dir: Path, fake: FakeOpenRouter) -> Iterator[tuple[RunningApi, httpx.Client]]:
    running, client = _start(data_dir, fake)
    yield running, client
    client.close()
    running.stop()


def batch(client: httpx.Client, **body) -> httpx.Response:
    return client.post("/api/v1/batches", json={"kind": "text", "models": MODELS, **body})


def finished(client: httpx.Client, batch_id: str, timeout: float = 60) -> dict:
    return wait_for(lambda: (b := client.get(f"/api/v1/batches/{batch_id}").json())["status"]
                    in ("finished", "cancelled") and b, timeout=timeout, what="batch finished")


def all_items(client: httpx.Client, batch_id: str) -> list[dict]:
    items, cursor = [], None
    while True:
        page = client.get(f"/api/v1/batches/{batch_id}", params={"limit": 200, **({"cursor": cursor} if cursor
                                                                                   else {})}).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


def test_rows_times_models_times_repeat_each_sent_exactly_once(studio, fake: FakeOpenRouter) -> None:
    running, client = studio
    tid = client.post("/api/v1/templates", json=TEMPLATE).json()["id"]
    r = batch(client, name="Haiku run", template_id=tid, rows=ROWS, repeat=2, tags=["poems"])
    assert r.status_code == 201, r.text
    created = r.json()
    assert {"id", "status", "total", "counts", "cost_usd", "created_at"} <= created.keys()
    assert created["total"] == 12 and sum(created["counts"].values()) == 12
    done = finished(client, created["id"])
    assert done["status"] == "finished" and done["counts"]["succeeded"] == 12
    items = all_items(client, created["id"])
    assert len(items) == 12 and all(i["status"] == "succeeded" and i["batch_id"] == created["id"] for i in items)
    # Row by row, each repeat, every model: the order the items were made in.
    assert [i["model"] for i in items[:4]] == MODELS * 2
    assert items[0]["prompt"] == "A haiku about tea in spring." and items[0]["variables"] == ROWS[0]
    assert items[0]["template_id"] == tid and items[0]["tags"] == ["poems"]
    running.outbox_settled()
    assert len(fake.completions) == 12
    per_item = Counter((c.model, c.prompt) for c in fake.completions)
    assert set(per_item.values()) == {2}  # each (model, prompt) twice: repeat 2, one completion per item
    assert sorted(c.id for c in fake.completions) == sorted(i["upstream_id"] for i in items)
    assert done["cost_usd"] == pytest.approx(sum(c.cost for c in fake.completions))
    # The same items through /generations, /usage and the list of batches.
    listed = client.get("/api/v1/generations", params={"batch_id": created["id"], "limit": 200}).json()
    assert len(listed["items"]) == 12
    usage = client.get("/api/v1/usage", params={"group_by": "batch_id"}).json()
    assert [row for row in usage["rows"] if row["key"] == created["id"]][0]["count"] == 12
    batches = client.get("/api/v1/batches").json()
    assert [b["id"] for b in batches["items"]] == [created["id"]] and batches["next_cursor"] is None
    # Paged like /generations.
    first = client.get(f"/api/v1/batches/{created['id']}", params={"limit": 5}).json()
    assert len(first["items"]) == 5 and first["next_cursor"]


def test_plain_prompt_compare_and_checks(studio, fake: FakeOpenRouter) -> None:
    _, client = studio
    r = batch(client, prompt="Name a colour", rows=[{}], models=[*MODELS, "mistralai/mistral-small-3.2-24b-instruct"])
    assert r.status_code == 201, r.text
    done = finished(client, r.json()["id"])
    assert done["counts"]["succeeded"] == 3
    assert all(i["variables"] is None for i in all_items(client, done["id"]))
    too_big = batch(client, prompt="x", rows=[{"a": i} for i in range(1000)], models=MODELS * 3)
    assert too_big.status_code == 422 and too_big.json()["error"]["code"] == "batch_too_large"
    tid = client.post("/api/v1/templates", json=TEMPLATE).json()["id"]
    missing = batch(client, template_id=tid, rows=[ROWS[0], {"subject": "fog"}])
    assert missing.status_code == 422
    error = missing.json()["error"]
    assert error["code"] == "missing_variable" and error["variable"] == "season" and error["row"] == 2
    for body in ({"prompt": "x", "template_id": tid, "rows": [{}]}, {"rows": [{}]},
                 {"prompt": "x", "rows": []}, {"prompt": "x", "rows": [{}], "models": []},
                 {"prompt": "x", "rows": [{}], "repeat": 11}):
        assert batch(client, **body).status_code == 422, body
    assert client.get("/api/v1/batches/" + "0" * 32).json()["error"]["code"] == "not_found"
    assert client.post("/api/v1/batches/" + "0" * 32 + "/pause").status_code == 404
    # Nothing of the refused batches was written.
    assert len(client.get("/api/v1/generations", params={"limit": 200}).json()["items"]) == 3


def test_pause_stops_new_sends_resume_continues_cancel_keeps_finished(studio, fake: FakeOpenRouter) -> None:
    running, client = studio
    for _ in range(40):
        fake.enqueue("/chat/completions", Reply(delay=0.15))
    rows = [{"n": i} for i in range(20)]
    created = batch(client, prompt="Item {{ n }}", rows=rows, models=MODELS[:1]).json()
    paused = client.post(f"/api/v1/batches/{created['id']}/pause").json()
    assert paused["status"] == "paused"
    running.outbox_settled(passes=3)
    sent = fake.count("/chat/completions")
    assert sent < 20
    running.outbox_settled(passes=5)
    assert fake.count("/chat/completions") == sent  # nothing more went out while paused
    assert client.get(f"/api/v1/batches/{created['id']}").json()["counts"]["queued"] == 20 - sent

    assert client.post(f"/api/v1/batches/{created['id']}/resume").json()["status"] == "running"
    wait_for(lambda: fake.count("/chat/completions") >= sent + 4, what="sending again")
    cancelled = client.post(f"/api/v1/batches/{created['id']}/cancel").json()
    assert cancelled["status"] == "cancelled"
    running.outbox_settled()
    after = client.get(f"/api/v1/batches/{created['id']}").json()
    assert after["counts"]["queued"] == after["counts"]["running"] == 0
    assert after["counts"]["succeeded"] >= sent and after["counts"]["cancelled"] > 0
    succeeded = [i for i in all_items(client, created["id"]) if i["status"] == "succeeded"]
    assert all(i["output_text"] for i in succeeded)  # what finished is kept
    # Items that were out when the batch was cancelled may still have been answered (and billed) upstream;
    # nothing else was sent.
    assert len(succeeded) <= len(fake.completions) <= len(succeeded) + 4
    assert client.post(f"/api/v1/batches/{created['id']}/resume").status_code == 409


def test_offline_halfway_waits_then_finishes(studio, fake: FakeOpenRouter) -> None:
    running, client = studio
    for _ in range(30):
        fake.enqueue("/chat/completions", Reply(delay=0.1))
    created = batch(client, prompt="Offline {{ n }}", rows=[{"n": i} for i in range(15)], models=MODELS).json()
    wait_for(lambda: len(fake.completions) >= 8, what="half sent")
    fake.go_offline()
    running.outbox_settled(passes=3)
    waiting = client.get(f"/api/v1/batches/{created['id']}").json()
    assert waiting["counts"]["failed"] == 0 and waiting["counts"]["queued"] > 0
    assert client.get("/api/v1/status").json()["online"] is False
    fake.go_online()
    done = finished(client, created["id"])
    assert done["counts"]["succeeded"] == 30
    per_item = Counter((c.model, c.prompt) for c in fake.completions)
    assert len(per_item) == 30 and set(per_item.values()) == {1}


def test_studio_request_during_a_200_item_batch_starts_within_one_slot(data_dir: Path, fake: FakeOpenRouter) -> None:
    running, client = _start(data_dir, fake, outbox_concurrency=4)
    try:
        for _ in range(260):
            fake.enqueue("/chat/completions", Reply(delay=0.1))
        created = batch(client, prompt="Bulk {{ n }}", rows=[{"n": i} for i in range(100)], models=MODELS).json()
        assert created["total"] == 200
        wait_for(lambda: len(fake.completions) >= 10, what="batch draining")

        def chat_prompts() -> list[str]:
            return [q.json["messages"][-1]["content"] for q in fake.requests if q.path == "/chat/completions"]

        # Sent at once: it does not wait for a slot at all.
        before = len(chat_prompts())
        r = client.post("/api/v1/generations", json={"kind": "text", "model": MODELS[0], "prompt": "Studio now"})
        assert r.status_code == 201 and r.json()["status"] == "succeeded"
        assert chat_prompts().index("Studio now") - before <= 4

        # Queued (deferred): it takes the next free slot, ahead of every batch item still waiting.
        before = len(chat_prompts())
        r = client.post("/api/v1/generations", json={"kind": "text", "model": MODELS[0], "prompt": "Studio later",
                                                      "defer": True})
        assert r.status_code == 202
        wait_for(lambda: "Studio later" in chat_prompts(), what="deferred studio request sent")
        assert chat_prompts().index("Studio later") - before <= 4
        assert client.get("/api/v1/batches/" + created["id"]).json()["counts"]["queued"] > 0
        client.post(f"/api/v1/batches/{created['id']}/cancel")
    finally:
        client.close()
        running.stop()


def test_batch_concurrency_setting_caps_batch_items(data_dir: Path, fake: FakeOpenRouter) -> None:
    running, client = _start(data_dir, fake, outbox_concurrency=4, batch_concurrency=1)
    try:
        for _ in range(6):
            fake.enqueue("/chat/completions", Reply(delay=0.2))
        created = batch(client, prompt="One {{ n }}", rows=[{"n": i} for i in range(3)], models=MODELS).json()
        seen = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            b = client.get(f"/api/v1/batches/{created['id']}").json()
            seen.append(b["counts"]["running"])
            if b["status"] == "finished":
                break
            time.sleep(0.02)
        assert max(seen) == 1
    finally:
        client.close()
        running.stop()


def test_kill_9_halfway_every_item_ends_and_none_is_sent_twice_without_a_crash(data_dir: Path,
                                                                                fake: FakeOpenRouter) -> None:
    for _ in range(80):
        fake.enqueue("/chat/completions", Reply(delay=0.1))
    env = {**FAST_ENV, "ATELIER_OPENROUTER_BASE_URL": fake.base_url}
    app = AppProcess(data_dir, **env).start()
    try:
        set_key(app.api, fake.key)
        created = app.api.post("/api/v1/batches", json={"kind": "text", "models": MODELS, "prompt": "Crash {{ n }}",
                                                         "rows": [{"n": i} for i in range(20)]})
        assert created.status_code == 201, created.text
        batch_id = created.json()["id"]
        wait_for(lambda: len(fake.completions) >= 15, what="half the batch sent")
        app.kill()
        at_kill = Counter((c.model, c.prompt) for c in fake.completions)
        app2 = AppProcess(data_dir, **env).start()
        try:
            done = finished(app2.api, batch_id)
            items = all_items(app2.api, batch_id)
            assert len(items) == 40 and all(i["status"] in ("succeeded", "interrupted") for i in items)
            assert done["counts"]["queued"] == done["counts"]["running"] == 0
            sent = Counter((c.model, c.prompt) for c in fake.completions)
            twice = {key for key, n in sent.items() if n > 1}
            # Only an item in flight at the kill may have gone out again (one crash, at most once more), and
            # only within the outbox's concurrency.
            assert all(sent[key] == 2 and at_kill[key] == 1 for key in twice)
            assert len(twice) <= 4
            for item in items:
                if (item["model"], item["prompt"]) in twice:
                    log = app2.api.get(f"/api/v1/generations/{item['id']}").json()["attempt_log"]
                    assert any(a["outcome"] == "unknown" for a in log)
            assert all(sent[(i["model"], i["prompt"])] >= 1 for i in items if i["status"] == "succeeded")
        finally:
            assert app2.stop() == 0
    finally:
        app.stop()


def test_outbox_full_refuses_a_batch_up_front(data_dir: Path, fake: FakeOpenRouter) -> None:
    running, client = _start(data_dir, fake, outbox_max_queued=10)
    try:
        r = batch(client, prompt="x {{ n }}", rows=[{"n": i} for i in range(6)])
        assert r.status_code == 429 and r.json()["error"]["code"] == "outbox_full"
        assert client.get("/api/v1/batches").json()["items"] == []
        assert json.loads(json.dumps(client.get("/api/v1/generations").json()))["items"] == []
    finally:
        client.close()
        running.stop()


def test_budget_is_checked_for_each_item_as_it_is_sent(data_dir: Path, fake: FakeOpenRouter) -> None:
    running, client = _start(data_dir, fake, outbox_concurrency=1)
    try:
        assert client.put("/api/v1/settings", json={"budget_monthly_usd": 0.000001}).status_code == 200
        created = batch(client, prompt="Spend {{ n }}", rows=[{"n": i} for i in range(6)], models=MODELS[:1]).json()
        done = finished(client, created["id"])
        assert done["counts"]["succeeded"] == 1 and done["counts"]["failed"] == 5
        failed = [i for i in all_items(client, created["id"]) if i["status"] == "failed"]
        assert {i["error"]["code"] for i in failed} == {"budget_exceeded"}
        assert all(i["attempts"] == 0 for i in failed)  # nothing was sent for them
        assert len(fake.completions) == 1
        # Spent: a new batch is refused up front.
        again = batch(client, prompt="More", rows=[{}], models=MODELS[:1])
        assert again.status_code == 402 and again.json()["error"]["code"] == "budget_exceeded"
    finally:
        client.close()
        running.stop()


def test_image_batch_stores_one_image_per_item(studio, fake: FakeOpenRouter) -> None:
    _, client = studio
    created = client.post("/api/v1/batches", json={"kind": "image", "models": ["google/gemini-2.5-flash-image"],
                                                    "prompt": "A {{ animal }} in ink", "rows": [{"animal": "heron"},
                                                                                                {"animal": "fox"}]})
    assert created.status_code == 201, created.text
    done = finished(client, created.json()["id"])
    assert done["counts"]["succeeded"] == 2
    items = all_items(client, done["id"])
    assert all(len(i["assets"]) == 1 and i["assets"][0]["kind"] == "image" for i in items)
    assert [i["prompt"] for i in items] == ["A heron in ink", "A fox in ink"]


def test_two_batches_cannot_overfill_the_outbox_between_counts(data_dir: Path, fake: FakeOpenRouter) -> None:
    running, client = _start(data_dir, fake, outbox_max_queued=20)
    try:
        client.post("/api/v1/queue/pause")
        assert batch(client, prompt="a {{ n }}", rows=[{"n": i} for i in range(6)]).status_code == 201  # 12 items
        r = batch(client, prompt="b {{ n }}", rows=[{"n": i} for i in range(6)])
        assert r.status_code == 429 and r.json()["error"]["code"] == "outbox_full"
    finally:
        client.close()
        running.stop()


def test_two_batches_are_interleaved_and_a_request_of_its_own_goes_first(data_dir: Path,
                                                                          fake: FakeOpenRouter) -> None:
    running, client = _start(data_dir, fake, outbox_concurrency=1)
    try:
        assert client.post("/api/v1/queue/pause").status_code == 200
        first = batch(client, prompt="A {{ n }}", rows=[{"n": i} for i in range(4)], models=MODELS[:1]).json()
        second = batch(client, prompt="B {{ n }}", rows=[{"n": i} for i in range(3)], models=MODELS[:1]).json()
        mine = client.post("/api/v1/generations", json={"kind": "text", "model": MODELS[0], "prompt": "mine",
                                                        "defer": True})
        assert mine.status_code == 202
        assert client.post("/api/v1/queue/resume").status_code == 200
        finished(client, first["id"])
        finished(client, second["id"])
        wait_for(lambda: client.get(f"/api/v1/generations/{mine.json()['id']}").json()["status"] == "succeeded")
        sent = [q.json["messages"][-1]["content"] for q in fake.requests if q.path == "/chat/completions"]
        # One slot: the request of its own first, then the batches take turns; the longer one finishes alone.
        assert sent == ["mine", "A 0", "B 0", "A 1", "B 1", "A 2", "B 2", "A 3"]
    finally:
        client.close()
        running.stop()
