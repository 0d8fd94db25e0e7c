"""The real cost of a stopped stream, looked up from OpenRouter's generation stats (docs/openrouter.md,
"Generation stats"): a real backend on loopback, the fake OpenRouter, a real DuckDB file in a temp dir."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import duckdb
import httpx

from tests.conftest import RunningApi, start_api
from tests.fakes.behaviours import Truncate
from tests.fakes.openrouter import FakeOpenRouter

FAST = {"retry_base_seconds": 0.05, "retry_max_seconds": 0.2, "probe_seconds": 0.1, "video_poll_seconds": 0.05}
MODEL = "openai/gpt-4o-mini"


class Clock:
    """The fake's clock, moved by hand: it decides when ``/generation`` stops answering 404."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def wait_for(fn, timeout: float = 30, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def start(data_dir: Path, fake: FakeOpenRouter, schedule: str) -> tuple[RunningApi, httpx.Client]:
    running = start_api(data_dir, openrouter_base_url=fake.base_url, cost_lookup_seconds=schedule, **FAST)
    client = running.client()
    assert client.put("/api/v1/credentials", json={"api_key": fake.key}).status_code == 200
    return running, client


def stop_mid_stream(client: httpx.Client) -> dict:
    """Start a long streamed answer, stop it after three deltas; the cancelled record."""
    prompt = " ".join(f"word{i}" for i in range(200))
    gen_id = None
    with client.stream("POST", "/api/v1/generations", json={
            "kind": "text", "model": MODEL, "prompt": prompt, "stream": True}) as r:
        deltas = 0
        for line in r.iter_lines():
            if line.startswith("data: ") and gen_id is None:
                gen_id = json.loads(line[6:])["id"]
            if line == "event: delta":
                deltas += 1
                if deltas == 3:
                    break
    stopped = client.post(f"/api/v1/generations/{gen_id}/cancel")
    assert stopped.status_code == 200
    gen = stopped.json()
    assert gen["status"] == "cancelled" and gen["output_text"] and gen["usage"]["cost_usd"] is None
    return gen


def upstream_id(client: httpx.Client, gen_id: str) -> str:
    return wait_for(lambda: client.get(f"/api/v1/generations/{gen_id}").json()["upstream_id"])


def cost_of(client: httpx.Client, gen_id: str) -> float | None:
    return client.get(f"/api/v1/generations/{gen_id}").json()["usage"]["cost_usd"]


def lookups(fake: FakeOpenRouter) -> list:
    return [r for r in fake.requests if r.path == "/generation"]


def test_stopped_stream_gets_its_real_cost_and_the_key_goes_only_to_openrouter(data_dir: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    clock = Clock()
    with FakeOpenRouter(token_delay=0.05, clock=clock, generation_delay=0) as fake:
        running, client = start(data_dir, fake, "0.05,0.5,1")
        try:
            gen = stop_mid_stream(client)
            gen_id = gen["id"]
            wait_for(lambda: len(fake.aborted) == 1)
            cost = wait_for(lambda: cost_of(client, gen_id))
            stats = fake._generation(upstream_id(client, gen_id))
            assert stats is not None and stats["cancelled"] is True
            assert cost == stats["total_cost"] and cost > 0
            record = client.get(f"/api/v1/generations/{gen_id}").json()
            assert record["status"] == "cancelled"
            assert record["usage"]["completion_tokens"] == stats["tokens_completion"] > 0
            assert record["usage"]["prompt_tokens"] == stats["tokens_prompt"]
            # /usage (and so the monthly budget) counts it.
            assert client.get("/api/v1/usage").json()["total_cost_usd"] == round(cost, 10)
            # The lookup went to OpenRouter with the key in the Authorization header only, never in the URL.
            sent = lookups(fake)
            assert sent and all(r.header("authorization") == f"Bearer {fake.key}" for r in sent)
            assert all(fake.key not in r.full_path and r.query == {"id": stats["id"]} for r in sent)
            assert running.app.state.cost_lookups.outcomes == {stats["id"]: "found"}
        finally:
            client.close()
            running.stop()
    assert caplog.text and fake.key not in caplog.text


def test_interrupted_stream_gets_its_real_cost(data_dir: Path) -> None:
    with FakeOpenRouter(generation_delay=0) as fake:
        running, client = start(data_dir, fake, "0.05,0.5,1")
        try:
            fake.enqueue("/chat/completions", Truncate(after_tokens=3))
            r = client.post("/api/v1/generations", json={
                "kind": "text", "model": MODEL, "prompt": "one two three four five six", "stream": True})
            gen_id = r.headers.get("x-generation-id") or next(
                json.loads(line[6:])["id"] for line in r.text.splitlines() if line.startswith("data: "))
            assert wait_for(lambda: client.get(f"/api/v1/generations/{gen_id}").json()["status"] == "interrupted")
            cost = wait_for(lambda: cost_of(client, gen_id))
            assert cost == fake._generation(upstream_id(client, gen_id))["total_cost"] > 0
        finally:
            client.close()
            running.stop()


def test_not_found_at_first_then_found(data_dir: Path) -> None:
    clock = Clock()
    with FakeOpenRouter(token_delay=0.05, clock=clock, generation_delay=5) as fake:
        running, client = start(data_dir, fake, "0.05,0.3,0.6,1,2,4,8")
        try:
            gen_id = stop_mid_stream(client)["id"]
            wait_for(lambda: lookups(fake))
            assert fake.count("/generation", status=404) >= 1
            assert cost_of(client, gen_id) is None  # a 404 changes nothing
            clock.now += 10  # OpenRouter has the stats now
            cost = wait_for(lambda: cost_of(client, gen_id))
            assert cost == fake._generation(upstream_id(client, gen_id))["total_cost"]
            assert fake.count("/generation", status=200) == 1
        finally:
            client.close()
            running.stop()


def test_gives_up_after_the_schedule_and_stays_given_up_after_a_restart(data_dir: Path) -> None:
    clock = Clock()
    with FakeOpenRouter(token_delay=0.05, clock=clock, generation_delay=1e9) as fake:
        running, client = start(data_dir, fake, "0.05,0.1,0.2")
        try:
            gen_id = stop_mid_stream(client)["id"]
            gen_upstream = upstream_id(client, gen_id)
            service = running.app.state.cost_lookups
            wait_for(lambda: service.outcomes.get(gen_upstream) == "gave_up")
            assert len(lookups(fake)) == 3 and fake.count("/generation", status=404) == 3
            record = client.get(f"/api/v1/generations/{gen_id}").json()
            assert record["usage"]["cost_usd"] is None and record["status"] == "cancelled"
        finally:
            client.close()
            running.stop()
        # After a restart, even once OpenRouter would answer, a lookup that gave up is not started again.
        clock.now += 2e9
        running, client = start(data_dir, fake, "0.05,0.1,0.2")
        try:
            service = running.app.state.cost_lookups
            wait_for(lambda: service.passes >= 1)  # the pass at start has looked at the database
            assert len(lookups(fake)) == 3 and not service.pending
            assert cost_of(client, gen_id) is None
        finally:
            client.close()
            running.stop()


def test_a_pending_lookup_survives_a_restart(data_dir: Path) -> None:
    clock = Clock()
    with FakeOpenRouter(token_delay=0.05, clock=clock, generation_delay=0) as fake:
        running, client = start(data_dir, fake, "3600")  # first lookup an hour after the stop
        try:
            gen_id = stop_mid_stream(client)["id"]
            gen_upstream = upstream_id(client, gen_id)
            service = running.app.state.cost_lookups
            wait_for(lambda: gen_upstream in service.pending)  # the lookup is stored
        finally:
            client.close()
            running.stop()
        assert lookups(fake) == []
        con = duckdb.connect(str(data_dir / "atelier.duckdb"))
        try:
            rows = con.execute("SELECT upstream_id, generation_id, tries, state FROM cost_lookups").fetchall()
        finally:
            con.close()
        assert rows == [(gen_upstream, gen_id, 0, "pending")]
        # The next start finds it in the database and looks it up (the schedule counts from the stop).
        running, client = start(data_dir, fake, "0.05,0.1")
        try:
            cost = wait_for(lambda: cost_of(client, gen_id))
            assert cost == fake._generation(gen_upstream)["total_cost"]
            assert len(lookups(fake)) == 1
        finally:
            client.close()
            running.stop()


def test_a_retried_generation_is_not_given_the_old_cost(data_dir: Path) -> None:
    clock = Clock()
    with FakeOpenRouter(token_delay=0.05, clock=clock, generation_delay=1e9) as fake:
        running, client = start(data_dir, fake, "0.05,1,2,4,8")
        try:
            gen_id = stop_mid_stream(client)["id"]
            old_upstream = upstream_id(client, gen_id)
            wait_for(lambda: lookups(fake))
            fake.token_delay = 0
            assert client.post(f"/api/v1/generations/{gen_id}/retry").status_code == 202
            done = wait_for(lambda: (g := client.get(f"/api/v1/generations/{gen_id}").json())["status"] == "succeeded"
                            and g)
            service = running.app.state.cost_lookups
            wait_for(lambda: service.outcomes.get(old_upstream) == "dropped")
            assert done["upstream_id"] != old_upstream
            assert cost_of(client, gen_id) == done["usage"]["cost_usd"]
        finally:
            client.close()
            running.stop()
