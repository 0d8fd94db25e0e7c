"""The outbox's safety rules end to end: a real backend (or the real app process) against the fake OpenRouter.

- a crash loop never re-bills a request without limit (kill -9 of ``python -m desktop --no-window``);
- policy and budget are checked whenever an attempt is about to be sent, not only when the request came in.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.core.policy import Policy, PolicyValue
from tests.conftest import start_api
from tests.fakes.behaviours import HttpError, Stall
from tests.fakes.openrouter import FakeOpenRouter
from tests.test_robustness_crash import FAST_ENV, AppProcess, set_key, wait_for

FAST = {"retry_base_seconds": 0.05, "retry_max_seconds": 0.2, "probe_seconds": 0.1, "video_poll_seconds": 0.05}
TEXT = {"kind": "text", "model": "openai/gpt-4o-mini"}


@pytest.fixture
def fake() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter() as fake:
        yield fake


def sends(fake: FakeOpenRouter, prompt: str) -> int:
    return sum(1 for r in fake.requests if r.method == "POST" and r.path == "/chat/completions"
               and isinstance(r.json, dict) and prompt in str(r.json.get("messages")))


def test_a_crash_loop_sends_a_request_at_most_twice(data_dir: Path, fake: FakeOpenRouter) -> None:
    prompt = "crash loop victim"
    for _ in range(6):
        fake.enqueue("/chat/completions", Stall(seconds=8))  # every send hangs until the kill
    env = {**FAST_ENV, "ATELIER_OPENROUTER_BASE_URL": fake.base_url}
    gen_id = None
    for _ in range(5):
        before = sends(fake, prompt)
        app = AppProcess(data_dir, **env).start()
        if gen_id is None:
            set_key(app.api, fake.key)
            r = app.api.post("/api/v1/generations", json={**TEXT, "prompt": prompt, "defer": True})
            assert r.status_code == 202, r.text
            gen_id = r.json()["id"]

        def sent_or_settled(app: AppProcess = app, before: int = before, gen_id: str | None = gen_id) -> bool:
            status = app.api.get(f"/api/v1/generations/{gen_id}").json()["status"]
            return sends(fake, prompt) > before or status in ("interrupted", "failed")

        wait_for(sent_or_settled, what="a send, or the item settled")
        app.kill()  # during the non-streamed attempt (or after it settled)
    app = AppProcess(data_dir, **env).start()
    try:
        gen = app.api.get(f"/api/v1/generations/{gen_id}").json()
        assert gen["status"] == "interrupted", gen
        assert gen["error"]["code"] == "delivery_unknown"
        assert sends(fake, prompt) <= 2
        outcomes = [a["outcome"] for a in gen["attempt_log"]]
        assert outcomes.count("unknown") == 2 and len(outcomes) == 2, outcomes
    finally:
        assert app.stop() == 0


def forbid_openai() -> Policy:
    return Policy(values={"allowed_models": PolicyValue(["anthropic/*"], True)})


def test_retry_under_a_policy_that_now_forbids_the_model_sends_nothing(data_dir: Path,
                                                                        fake: FakeOpenRouter) -> None:
    api = start_api(data_dir, openrouter_base_url=fake.base_url, **FAST)
    try:
        with api.client() as client:
            assert client.put("/api/v1/credentials", json={"api_key": fake.key}).status_code == 200
            fake.enqueue("/chat/completions", HttpError(400, "bad request"))
            r = client.post("/api/v1/generations", json={**TEXT, "prompt": "rejected once"})
            assert r.status_code == 400, r.text
            gen_id = r.json()["generation"]["id"]
    finally:
        api.stop()
    seen = len(fake.requests)

    api = start_api(data_dir, openrouter_base_url=fake.base_url, policy=forbid_openai(), **FAST)
    try:
        with api.client() as client:
            r = client.post(f"/api/v1/generations/{gen_id}/retry")
            assert r.status_code == 403, r.text
            assert r.json()["error"]["code"] == "model_not_allowed"
            gen = client.get(f"/api/v1/generations/{gen_id}").json()
            assert gen["status"] == "failed" and gen["error"]["code"] == "model_not_allowed"
    finally:
        api.stop()
    assert not [r for r in fake.requests[seen:] if r.path == "/chat/completions"]


def test_queue_resume_under_a_policy_that_now_forbids_the_model_sends_nothing(data_dir: Path,
                                                                               fake: FakeOpenRouter) -> None:
    api = start_api(data_dir, openrouter_base_url=fake.base_url, **FAST)
    try:
        with api.client() as client:
            assert client.put("/api/v1/credentials", json={"api_key": fake.key}).status_code == 200
            assert client.post("/api/v1/queue/pause").json()["paused"] is True
            r = client.post("/api/v1/generations", json={**TEXT, "prompt": "waits for resume"})
            assert r.status_code == 202, r.text
            gen_id = r.json()["id"]
    finally:
        api.stop()

    api = start_api(data_dir, openrouter_base_url=fake.base_url, policy=forbid_openai(), **FAST)
    try:
        with api.client() as client:
            assert client.get(f"/api/v1/generations/{gen_id}").json()["status"] == "queued"
            assert client.post("/api/v1/queue/resume").json()["paused"] is False
            gen = wait_for(lambda: (g := client.get(f"/api/v1/generations/{gen_id}").json())["status"]
                           not in ("queued", "running") and g, what="the item settled")
            assert gen["status"] == "failed" and gen["error"]["code"] == "model_not_allowed"
            assert gen["attempts"] == 0
    finally:
        api.stop()
    assert not [r for r in fake.requests if r.path == "/chat/completions"]


def test_restart_under_a_budget_that_is_now_spent_sends_nothing(data_dir: Path, fake: FakeOpenRouter) -> None:
    api = start_api(data_dir, openrouter_base_url=fake.base_url, **FAST)
    try:
        with api.client() as client:
            assert client.put("/api/v1/credentials", json={"api_key": fake.key}).status_code == 200
            spent = client.post("/api/v1/generations", json={**TEXT, "prompt": "costs something"}).json()
            assert spent["status"] == "succeeded" and spent["usage"]["cost_usd"] > 0
            assert client.post("/api/v1/queue/pause").status_code == 200
            gen_id = client.post("/api/v1/generations", json={**TEXT, "prompt": "over budget"}).json()["id"]
            r = client.put("/api/v1/settings", json={"budget_monthly_usd": spent["usage"]["cost_usd"] / 2})
            assert r.status_code == 200, r.text
            assert client.post("/api/v1/queue/resume").status_code == 200
            gen = wait_for(lambda: (g := client.get(f"/api/v1/generations/{gen_id}").json())["status"]
                           not in ("queued", "running") and g, what="the item settled")
            assert gen["status"] == "failed" and gen["error"]["code"] == "budget_exceeded"
    finally:
        api.stop()
    assert sends(fake, "over budget") == 0


def test_the_app_runs_over_a_fake_transport(data_dir: Path) -> None:
    """The composition root takes an httpx transport: the whole app, no socket to OpenRouter."""
    import httpx

    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        if request.method == "POST" and request.url.path.endswith("/chat/completions"):
            return httpx.Response(200, json={
                "id": "gen-5-mock", "model": "openai/gpt-4o-mini",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "from the mock"},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 3, "cost": 0.00002}})
        if request.url.path.endswith("/key"):
            return httpx.Response(200, json={"data": {"label": "mock", "usage": 0, "limit": None,
                                                      "limit_remaining": None, "is_free_tier": False}})
        return httpx.Response(200, json={"data": []})

    api = start_api(data_dir, openrouter_base_url="https://openrouter.invalid/api/v1",
                    openrouter_transport=httpx.MockTransport(answer), **FAST)
    try:
        with api.client() as client:
            assert client.put("/api/v1/credentials", json={"api_key": "sk-or-v1-" + "0" * 64}).status_code == 200
            r = client.post("/api/v1/generations", json={**TEXT, "prompt": "hello mock"})
            assert r.status_code == 201, r.text
            assert r.json()["output_text"] == "from the mock" and r.json()["upstream_id"] == "gen-5-mock"
    finally:
        api.stop()
    assert "POST /api/v1/chat/completions" in seen
