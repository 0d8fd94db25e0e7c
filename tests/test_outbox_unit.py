"""The outbox alone, over a fake transport (httpx.MockTransport) and an injected RNG: no network, no sleeps.

Each test drives one attempt to its end (``await running.task``) and checks what the database says.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.core.policy import Policy, PolicyValue
from backend.core.preferences import Preferences
from backend.core.settings import Settings
from backend.db import attempts as attempts_db
from backend.db import claiming
from backend.db import generations as gens
from backend.db.store import Store
from backend.media.store import MediaStore
from backend.openrouter import OpenRouterClient
from backend.outbox.backoff import backoff_seconds
from backend.outbox.connectivity import Connectivity
from backend.outbox.worker import Outbox

BASE = "https://openrouter.test/api/v1"
Handler = Callable[[httpx.Request], Awaitable[httpx.Response] | httpx.Response]


class Ceiling:
    """An RNG whose ``uniform`` always answers the upper bound, so backoff is predictable."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.calls.append((a, b))
        return b


class Keys:
    def __init__(self, key: str | None = "sk-or-v1-test") -> None:
        self.key = key

    async def get(self) -> str | None:
        return self.key


def chat_ok(text: str = "Hello there") -> httpx.Response:
    body = {"id": "gen-1-abc", "model": "openai/gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5, "cost": 0.0001}}
    return httpx.Response(200, json=body, headers={"X-Generation-Id": "gen-1-abc"})


def upstream_error(status: int, message: str = "nope", **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": status, "message": message}}, headers=headers)


class Rig:
    """A store, an outbox and a fake transport that records every request."""

    def __init__(self, tmp: Path, handler: Handler, *, policy: Policy | None = None,
                 **settings: Any) -> None:
        self.tmp = tmp
        self.handler = handler
        self.policy = policy
        self.settings = Settings.load(env={}, data_dir=tmp, retry_base_seconds=1.0, retry_max_seconds=60.0,
                                      **settings)
        self.requests: list[httpx.Request] = []
        self.rng = Ceiling()

    async def __aenter__(self) -> Rig:
        self.store = Store.open(self.tmp / "atelier.duckdb")
        self.outbox = self.build()
        return self

    def build(self) -> Outbox:
        async def handle(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            answer = self.handler(request)
            return await answer if asyncio.iscoroutine(answer) else answer  # type: ignore[return-value]

        self.client = OpenRouterClient(BASE, transport=httpx.MockTransport(handle))
        connectivity = Connectivity()
        connectivity.mark(True)
        return Outbox(
            store=self.store, settings=self.settings, client=self.client, keys=Keys(),  # type: ignore[arg-type]
            media=MediaStore(self.tmp / "media"), preferences=Preferences(self.store, self.policy),
            catalogue=None, connectivity=connectivity, policy=self.policy, rng=self.rng,
        )

    async def __aexit__(self, *exc: object) -> None:
        await self.outbox.stop()
        await self.client.aclose()
        self.store.close()

    def sends(self, path: str = "/chat/completions") -> int:
        return sum(1 for r in self.requests if r.method == "POST" and r.url.path.endswith(path))

    async def queued(self, kind: str = "text", model: str = "openai/gpt-4o-mini") -> str:
        row = await gens.insert(self.store, kind=kind, model=model, prompt="Say hi", system=None, params={},
                                input_asset_ids=[], stream=False, tags=[])
        return row["id"]

    async def attempt(self, gen_id: str) -> dict[str, Any]:
        """Run one attempt of a queued generation to its end; the row afterwards."""
        running = await self.outbox.send_queued(gen_id)
        assert running is not None and running.task is not None
        await running.task
        return await gens.get_row(self.store, gen_id)


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


# -- backoff --------------------------------------------------------------------------------------------------

def test_backoff_is_full_jitter_under_a_doubling_ceiling() -> None:
    rng = Ceiling()
    assert [backoff_seconds(n, base=2, cap=30, rng=rng) for n in (1, 2, 3, 4, 5, 6)] == [2, 4, 8, 16, 30, 30]
    assert rng.calls[0] == (0, 2)


def test_backoff_never_sooner_than_retry_after() -> None:
    class Floor:
        def uniform(self, a: float, b: float) -> float:
            return a

    assert backoff_seconds(3, base=2, cap=30, rng=Floor()) == 0
    assert backoff_seconds(3, base=2, cap=30, retry_after=12, rng=Floor()) == 12
    assert backoff_seconds(1, base=2, cap=30, retry_after=120, rng=Floor()) == 120  # the server said so


# -- attempt outcomes -------------------------------------------------------------------------------------------

def test_success_records_output_usage_and_attempt(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Rig(tmp_path, lambda r: chat_ok("Hi!")) as rig:
            row = await rig.attempt(await rig.queued())
            assert (row["status"], row["output_text"], row["upstream_id"]) == ("succeeded", "Hi!", "gen-1-abc")
            assert row["cost_usd"] == pytest.approx(0.0001)
            log = await attempts_db.log(rig.store, generation_id=row["id"])
            assert [(a["outcome"], a["http_status"]) for a in log] == [("succeeded", 200)]

    run(scenario())


def test_retryable_answer_requeues_with_backoff_from_the_rng(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Rig(tmp_path, lambda r: upstream_error(503, "overloaded")) as rig:
            before = gens.now()
            row = await rig.attempt(await rig.queued())
            assert row["status"] == "queued"
            assert json.loads(row["error"])["retryable"] is True
            assert rig.rng.calls == [(0, 1.0)]  # attempt 1: up to retry_base_seconds
            wait = (row["next_attempt_at"] - before).total_seconds()
            assert 1.0 <= wait < 3
            row = await rig.attempt(row["id"])
            assert rig.rng.calls[-1] == (0, 2.0)  # doubled

    run(scenario())


def test_retry_after_sets_the_next_attempt(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Rig(tmp_path, lambda r: upstream_error(429, "slow down", **{"Retry-After": "40"})) as rig:
            before = gens.now()
            row = await rig.attempt(await rig.queued())
            assert row["status"] == "queued"
            assert 40 <= (row["next_attempt_at"] - before).total_seconds() < 42
            assert json.loads(row["error"])["retry_after"] == 40

    run(scenario())


def test_rejection_fails_without_retry(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Rig(tmp_path, lambda r: upstream_error(400, "bad parameter")) as rig:
            row = await rig.attempt(await rig.queued())
            assert row["status"] == "failed"
            assert json.loads(row["error"])["upstream_status"] == 400
            log = await attempts_db.log(rig.store, generation_id=row["id"])
            assert [a["outcome"] for a in log] == ["rejected"]

    run(scenario())


def test_unknown_delivery_is_retried_once_then_interrupted(tmp_path: Path) -> None:
    def lost(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("connection reset after sending", request=request)

    async def scenario() -> None:
        async with Rig(tmp_path, lost) as rig:
            gen_id = await rig.queued()
            assert (await rig.attempt(gen_id))["status"] == "queued"
            row = await rig.attempt(gen_id)
            assert row["status"] == "interrupted"
            assert rig.sends() == 2
            log = await attempts_db.log(rig.store, generation_id=gen_id)
            assert [a["outcome"] for a in log] == ["unknown", "unknown"]

    run(scenario())


def test_max_attempts_ends_retrying(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Rig(tmp_path, lambda r: upstream_error(502, "bad gateway"), max_attempts=2) as rig:
            gen_id = await rig.queued()
            assert (await rig.attempt(gen_id))["status"] == "queued"
            row = await rig.attempt(gen_id)
            assert row["status"] == "failed"
            message = json.loads(row["error"])["message"]
            assert "tried 2 times and stopped" in message and "by itself" not in message

    run(scenario())


# -- rules checked before sending -------------------------------------------------------------------------------

def forbidding_policy() -> Policy:
    return Policy(values={"allowed_models": PolicyValue(["anthropic/*"], True)})


def test_policy_is_checked_before_each_send(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Rig(tmp_path, lambda r: chat_ok(), policy=forbidding_policy()) as rig:
            row = await rig.attempt(await rig.queued())
            assert row["status"] == "failed"
            assert json.loads(row["error"])["code"] == "model_not_allowed"
            assert rig.sends() == 0

    run(scenario())


def test_budget_is_checked_before_each_send(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Rig(tmp_path, lambda r: chat_ok()) as rig:
            await rig.outbox.services.preferences.update({"budget_monthly_usd": 1.0})
            spent = await rig.queued()
            await gens.update(rig.store, spent, status="succeeded", cost_usd=1.5)
            row = await rig.attempt(await rig.queued())
            assert json.loads(row["error"])["code"] == "budget_exceeded"
            assert rig.sends() == 0

    run(scenario())


def test_a_far_future_next_attempt_does_not_stall_the_queue(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Rig(tmp_path, lambda r: chat_ok()) as rig:
            gen_id = await rig.queued()
            # Written while the clock was a day ahead (then set right again).
            await gens.update(rig.store, gen_id, next_attempt_at=gens.now() + timedelta(days=1))
            due = await claiming.due(rig.store, at=gens.now(), horizon=timedelta(seconds=60), limit=10)
            assert due == [gen_id]
            # A Retry-After OpenRouter asked for is honoured, even beyond the longest backoff.
            await gens.update(rig.store, gen_id, next_attempt_at=gens.now() + timedelta(seconds=100),
                              error={"code": "rate_limited", "message": "later", "retry_after": 100})
            assert await claiming.due(rig.store, at=gens.now(), horizon=timedelta(seconds=60), limit=10) == []

    run(scenario())


# -- cancel -----------------------------------------------------------------------------------------------------

def test_cancel_wins_over_an_attempt_that_ends_later(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The attempt's last write (back to the queue) is already on its way when the user cancels: it must not
    bring the generation back."""
    import backend.outbox.attempt as attempt_module

    reached = asyncio.Event()
    writes: list[asyncio.Future] = []
    original = attempt_module.outcomes.conclude

    async def late_conclude(store: Store, gen_id: str, **kwargs: Any) -> Any:
        if kwargs.get("status") != "queued":
            return await original(store, gen_id, **kwargs)
        reached.set()
        # The write runs to its end even when the task awaiting it is cancelled (like a worker thread).
        write = asyncio.ensure_future(original(store, gen_id, **kwargs))
        writes.append(write)
        await asyncio.sleep(0)
        return await asyncio.shield(write)

    monkeypatch.setattr(attempt_module.outcomes, "conclude", late_conclude)

    async def scenario() -> None:
        async with Rig(tmp_path, lambda r: upstream_error(503, "overloaded")) as rig:
            gen_id = await rig.queued()
            running = await rig.outbox.send_queued(gen_id)
            assert running is not None
            await reached.wait()
            assert await rig.outbox.cancel(gen_id)
            await asyncio.gather(*writes)  # the late write has landed
            row = await gens.get_row(rig.store, gen_id)
            assert row["status"] == "cancelled"
            assert await claiming.due(rig.store, at=gens.now() + timedelta(hours=1), horizon=timedelta(seconds=60),
                                  limit=10) == []

    run(scenario())


# -- restart ----------------------------------------------------------------------------------------------------

async def crashed_mid_attempt(rig: Rig, kind: str = "text") -> str:
    """The state a kill -9 leaves: running, with an attempt that has no outcome."""
    gen_id = await rig.queued(kind, model="google/veo-3.1" if kind == "video" else "openai/gpt-4o-mini")
    assert await gens.claim(rig.store, gen_id)
    await attempts_db.begin(rig.store, generation_id=gen_id)
    return gen_id


def test_restart_closes_a_cut_off_attempt_as_unknown_and_stops_after_two(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Rig(tmp_path, lambda r: chat_ok()) as rig:
            gen_id = await crashed_mid_attempt(rig)
            await rig.outbox._resume_after_restart()
            assert (await gens.get_row(rig.store, gen_id))["status"] == "queued"  # first unknown: sent again
            # Crashed again during the resend.
            assert await gens.claim(rig.store, gen_id)
            await attempts_db.begin(rig.store, generation_id=gen_id)
            await rig.outbox._resume_after_restart()
            row = await gens.get_row(rig.store, gen_id)
            assert row["status"] == "interrupted"
            assert json.loads(row["error"])["code"] == "delivery_unknown"
            log = await attempts_db.log(rig.store, generation_id=gen_id)
            assert [a["outcome"] for a in log] == ["unknown", "unknown"]
            assert await attempts_db.counted(rig.store, generation_id=gen_id) == 2

    run(scenario())


def test_video_cut_off_before_its_job_id_was_saved_is_never_resubmitted(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Rig(tmp_path, lambda r: httpx.Response(202, json={"id": "job-x", "status": "pending"})) as rig:
            gen_id = await crashed_mid_attempt(rig, "video")
            await gens.update(rig.store, gen_id, upstream_id="gen-99-seen")
            await rig.outbox._resume_after_restart()
            row = await gens.get_row(rig.store, gen_id)
            assert row["status"] == "interrupted"
            assert "gen-99-seen" in json.loads(row["error"])["message"]
            log = await attempts_db.log(rig.store, generation_id=gen_id)
            assert [a["outcome"] for a in log] == ["unknown"]
            assert rig.sends("/videos") == 0

    run(scenario())


def test_video_job_id_and_generation_id_are_kept_from_the_answer(tmp_path: Path) -> None:
    def accept(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(202, json={"id": "job-7", "polling_url": f"{BASE}/videos/job-7",
                                             "status": "pending"}, headers={"X-Generation-Id": "gen-7-v"})
        return httpx.Response(200, json={"id": "job-7", "status": "in_progress"})

    async def scenario() -> None:
        async with Rig(tmp_path, accept, video_poll_seconds=0.01) as rig:
            gen_id = await rig.queued("video", model="google/veo-3.1")
            running = await rig.outbox.send_queued(gen_id)
            assert running is not None
            await running.started.wait()
            row = await gens.get_row(rig.store, gen_id)
            assert (row["job_id"], row["upstream_id"], row["status"]) == ("job-7", "gen-7-v", "running")
            log = await attempts_db.log(rig.store, generation_id=gen_id)
            assert [(a["outcome"], a["http_status"]) for a in log] == [("submitted", 202)]

    run(scenario())


def test_the_loop_sends_an_item_whose_stored_time_is_far_ahead(tmp_path: Path) -> None:
    """Clock moved back: the worker loop itself must not wait for the stored time."""

    def answer(request: httpx.Request) -> httpx.Response:
        return chat_ok() if request.method == "POST" else httpx.Response(200, json={"data": {}})

    async def scenario() -> None:
        async with Rig(tmp_path, answer, probe_seconds=0.05) as rig:
            gen_id = await rig.queued()
            await gens.update(rig.store, gen_id, next_attempt_at=gens.now() + timedelta(days=3))
            await rig.outbox.start()
            while (await gens.get_row(rig.store, gen_id))["status"] != "succeeded":
                passes = rig.outbox.passes
                assert passes < 50, "the loop never sent it"
                while rig.outbox.passes == passes:
                    await asyncio.sleep(0.01)  # until the loop has made another pass
            assert rig.sends() == 1

    run(scenario())


def test_batch_items_go_first_to_the_batch_with_the_fewest_in_flight(tmp_path: Path) -> None:
    from backend.db import batches as batches_db

    async def scenario() -> None:
        async with Rig(tmp_path, lambda r: chat_ok()) as rig:
            async def make(name: str, count: int) -> list[str]:
                batch_id = await batches_db.insert(
                    rig.store, name=name, kind="text", models=["m"], template_id=None, prompt=name, system=None,
                    params={}, tags=[], rows_count=count, repeats=1,
                    items=[batches_db.Item("m", f"{name}{i}", None, None) for i in range(count)])
                rows = await rig.store.fetchall("SELECT id FROM generations WHERE batch_id = ? ORDER BY created_at",
                                                [batch_id])
                return [r["id"] for r in rows]

            a, b = await make("a", 4), await make("b", 3)
            own = await rig.queued()
            for gen_id in a[:2]:  # two of the older batch's items are being sent
                await gens.update(rig.store, gen_id, status="running", started_at=gens.now())
            due = await claiming.due(rig.store, at=gens.now(), horizon=timedelta(seconds=60), limit=6)
            # Own request first; then b (nothing in flight) until it has as many turns as a, then they share,
            # the batch served least recently (b, never) first.
            assert due == [own, b[0], b[1], b[2], a[2], a[3]]
            capped = await claiming.due(rig.store, at=gens.now(), horizon=timedelta(seconds=60), limit=6,
                                        batch_slots=2)
            assert capped == [own, b[0], b[1]]

    run(scenario())
