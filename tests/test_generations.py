"""Text generation through the real backend against the fake OpenRouter: every failure class, the outbox,
streaming, cost, and exactly-once delivery."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningApi, start_api
from tests.fakes.behaviours import (
    Body200Error,
    ChoiceError,
    EmptyChoices,
    StreamError,
    Truncate,
    insufficient_credits,
    internal_error,
    model_not_found,
    rate_limited,
    request_timeout,
    unauthorized,
    unavailable,
)
from tests.fakes.openrouter import FakeOpenRouter

FAST = {"retry_base_seconds": 0.05, "retry_max_seconds": 0.2, "probe_seconds": 0.1, "video_poll_seconds": 0.05}


def wait_for(fn, timeout: float = 15, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


@pytest.fixture
def fake() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter() as fake:
        yield fake


@pytest.fixture
def studio(data_dir: Path, fake: FakeOpenRouter) -> Iterator[tuple[RunningApi, httpx.Client]]:
    running = start_api(data_dir, openrouter_base_url=fake.base_url, **FAST)
    client = running.client()
    r = client.put("/api/v1/credentials", json={"api_key": fake.key})
    assert r.status_code == 200, r.text
    yield running, client
    client.close()
    running.stop()


def generate(client: httpx.Client, **body) -> httpx.Response:
    return client.post("/api/v1/generations", json={"kind": "text", "model": "openai/gpt-4o-mini",
                                                     "prompt": "Hello", **body})


def get(client: httpx.Client, gen_id: str) -> dict:
    return client.get(f"/api/v1/generations/{gen_id}").json()


def sse_events(text: str) -> list[tuple[str, dict]]:
    out = []
    for block in text.split("\n\n"):
        lines = [line for line in block.splitlines() if line and not line.startswith(":")]
        if not lines:
            continue
        event = next(line[7:] for line in lines if line.startswith("event: "))
        data = json.loads("".join(line[6:] for line in lines if line.startswith("data: ")))
        out.append((event, data))
    return out


def test_non_stream_text_succeeds_with_real_cost(studio, fake: FakeOpenRouter) -> None:
    _, client = studio
    r = generate(client, prompt="Tell me a story")
    assert r.status_code == 201, r.text
    record = r.json()
    assert record["status"] == "succeeded"
    assert record["output_text"] == "Echo: Tell me a story"
    completion = fake.completions[-1]
    assert record["upstream_id"] == completion.id
    assert record["usage"]["cost_usd"] == pytest.approx(completion.cost) and completion.cost > 0
    assert record["usage"]["prompt_tokens"] > 0 and record["usage"]["completion_tokens"] > 0
    assert record["attempts"] == 1
    sent = [q for q in fake.requests if q.path.endswith("/chat/completions")][-1]
    assert sent.json["max_tokens"] == 2048  # an explicit cap is always sent
    assert sent.headers["http-referer"] and sent.headers["x-openrouter-title"] == "Atelier"


def test_stream_delivers_deltas_then_done(studio, fake: FakeOpenRouter) -> None:
    _, client = studio
    with client.stream("POST", "/api/v1/generations", json={"kind": "text", "model": "openai/gpt-4o-mini",
                                                             "prompt": "Stream ünïcode ✓ please", "stream": True}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r.read().decode())
    names = [e for e, _ in events]
    assert names[0] == "generation" and names[-1] == "done" and "delta" in names
    text = "".join(d["text"] for e, d in events if e == "delta")
    assert text == "Echo: Stream ünïcode ✓ please"
    assert events[-1][1]["output_text"] == text and events[-1][1]["usage"]["cost_usd"] > 0


def test_stream_survives_odd_byte_splits_and_crlf(data_dir: Path) -> None:
    from tests.fakes.behaviours import StreamStyle

    with FakeOpenRouter(stream_style=StreamStyle(split="byte", crlf=True)) as fake:
        running = start_api(data_dir, openrouter_base_url=fake.base_url, **FAST)
        try:
            with running.client() as client:
                client.put("/api/v1/credentials", json={"api_key": fake.key})
                r = generate(client, prompt="Ça va — 日本語", stream=True)
                events = sse_events(r.text)
                assert events[-1][0] == "done"
                assert events[-1][1]["output_text"] == "Echo: Ça va — 日本語"
        finally:
            running.stop()


@pytest.mark.parametrize(
    "behaviour, code, upstream",
    [
        (unauthorized(), "invalid_key", 401),
        (insufficient_credits(), "insufficient_credits", 402),
        (model_not_found("acme/nope"), "model_not_found", 400),
    ],
)
def test_rejections_fail_without_retry(studio, fake: FakeOpenRouter, behaviour, code: str, upstream: int) -> None:
    running, client = studio
    fake.enqueue("/chat/completions", behaviour)
    r = generate(client)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"]["code"] == code and body["error"]["upstream_status"] == upstream
    assert body["generation"]["status"] == "failed"
    running.outbox_settled()
    assert fake.count("/chat/completions") == 1  # never retried
    assert get(client, body["generation"]["id"])["status"] == "failed"


def test_revoked_key_is_reported_not_retried(studio, fake: FakeOpenRouter) -> None:
    _, client = studio
    fake.revoke_key(fake.key)
    r = generate(client)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_key"
    assert "Settings" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    "behaviour",
    [rate_limited(retry_after=1), request_timeout(), internal_error(), unavailable(retry_after=1),
     Body200Error(), EmptyChoices(), StreamError(after_tokens=0)],
    ids=["429", "408", "500", "503", "200-error", "empty", "in-band-before-token"],
)
def test_retryable_failures_answer_502_then_succeed(studio, fake: FakeOpenRouter, behaviour) -> None:
    _, client = studio
    fake.enqueue("/chat/completions", behaviour)
    r = generate(client)
    assert r.status_code == 502, r.text
    gen = r.json()["generation"]
    assert gen["status"] == "queued" and gen["next_attempt_at"]
    done = wait_for(lambda: (g := get(client, gen["id"]))["status"] == "succeeded" and g)
    assert done["output_text"] == "Echo: Hello"
    assert len(done["attempt_log"]) == 2
    assert done["attempt_log"][0]["outcome"] == "retry"
    assert len(fake.completions) == 1


def test_retry_after_is_honoured(studio, fake: FakeOpenRouter) -> None:
    _, client = studio
    fake.enqueue("/chat/completions", rate_limited(retry_after=2))
    started = time.monotonic()
    gen = generate(client).json()["generation"]
    wait_for(lambda: get(client, gen["id"])["status"] == "succeeded")
    assert time.monotonic() - started >= 1.9


def test_mid_stream_error_keeps_partial_output_as_interrupted(studio, fake: FakeOpenRouter) -> None:
    running, client = studio
    fake.enqueue("/chat/completions", StreamError(after_tokens=2, code="server_error"))
    r = generate(client, stream=True, prompt="one two three four five six")
    events = sse_events(r.text)
    assert events[-1][0] == "error"
    gen = get(client, events[0][1]["id"])
    assert gen["status"] == "interrupted"
    assert gen["output_text"] and "Echo: one two three four five six".startswith(gen["output_text"])
    running.outbox_settled()
    assert fake.count("/chat/completions") == 1


def test_truncated_stream_is_not_reported_as_success(studio, fake: FakeOpenRouter) -> None:
    _, client = studio
    fake.enqueue("/chat/completions", Truncate(after_tokens=2))
    r = generate(client, stream=True, prompt="alpha beta gamma delta epsilon")
    events = sse_events(r.text)
    assert events[-1][0] == "error"
    assert get(client, events[0][1]["id"])["status"] == "interrupted"


def test_choice_level_error_keeps_partial(studio, fake: FakeOpenRouter) -> None:
    _, client = studio
    fake.enqueue("/chat/completions", ChoiceError(partial="Half an ans"))
    r = generate(client)
    assert r.status_code == 502
    gen = get(client, r.json()["generation"]["id"])
    assert gen["status"] == "interrupted" and gen["output_text"] == "Half an ans"


def test_offline_queues_then_drains_exactly_once(studio, fake: FakeOpenRouter) -> None:
    running, client = studio
    fake.go_offline()
    r = generate(client, prompt="while offline")
    assert r.status_code == 502
    body = r.json()
    assert body["generation"]["status"] == "queued" and body["error"]["code"] == "network"
    second = generate(client, prompt="also offline", stream=True)
    assert second.status_code == 502
    status = client.get("/api/v1/status").json()
    assert status["online"] is False and status["queue"]["queued"] == 2
    running.outbox_settled(passes=3)  # offline probing does not use attempts up
    fake.go_online()
    first = wait_for(lambda: (g := get(client, body["generation"]["id"]))["status"] == "succeeded" and g)
    wait_for(lambda: get(client, second.json()["generation"]["id"])["status"] == "succeeded")
    assert first["output_text"] == "Echo: while offline"
    assert sorted(c.prompt for c in fake.completions) == ["also offline", "while offline"]
    assert client.get("/api/v1/status").json()["online"] is True


def test_defer_queues_without_an_attempt(studio, fake: FakeOpenRouter) -> None:
    running, client = studio
    client.post("/api/v1/queue/pause")
    r = generate(client, defer=True)
    assert r.status_code == 202 and r.json()["status"] == "queued"
    running.outbox_settled()
    assert fake.count("/chat/completions") == 0
    assert [i["id"] for i in client.get("/api/v1/queue").json()["items"]] == [r.json()["id"]]
    client.post("/api/v1/queue/resume")
    wait_for(lambda: get(client, r.json()["id"])["status"] == "succeeded")


def test_no_key_is_refused_unless_deferred(data_dir: Path, fake: FakeOpenRouter) -> None:
    running = start_api(data_dir, openrouter_base_url=fake.base_url, **FAST)
    try:
        with running.client() as client:
            r = generate(client)
            assert r.status_code == 400 and r.json()["error"]["code"] == "no_api_key"
            deferred = generate(client, defer=True)
            assert deferred.status_code == 202
            running.outbox_settled()
            assert get(client, deferred.json()["id"])["status"] == "queued"
            client.put("/api/v1/credentials", json={"api_key": fake.key})
            wait_for(lambda: get(client, deferred.json()["id"])["status"] == "succeeded")
    finally:
        running.stop()


def test_cancel_a_stream_keeps_what_arrived(data_dir: Path) -> None:
    with FakeOpenRouter(token_delay=0.05) as fake:
        running = start_api(data_dir, openrouter_base_url=fake.base_url, **FAST)
        try:
            with running.client() as client:
                client.put("/api/v1/credentials", json={"api_key": fake.key})
                prompt = " ".join(f"word{i}" for i in range(80))
                with client.stream("POST", "/api/v1/generations", json={
                        "kind": "text", "model": "openai/gpt-4o-mini", "prompt": prompt, "stream": True}) as r:
                    lines = r.iter_lines()
                    gen_id = None
                    deltas = 0
                    for line in lines:
                        if line.startswith("data: ") and gen_id is None:
                            gen_id = json.loads(line[6:])["id"]
                        if line == "event: delta":
                            deltas += 1
                            if deltas == 3:
                                break
                cancelled = client.post(f"/api/v1/generations/{gen_id}/cancel")
                assert cancelled.status_code == 200
                gen = cancelled.json()
                assert gen["status"] == "cancelled" and gen["output_text"]
                wait_for(lambda: len(fake.aborted) == 1)
                assert client.post(f"/api/v1/generations/{gen_id}/cancel").status_code == 409
        finally:
            running.stop()


def test_retry_a_failed_generation(studio, fake: FakeOpenRouter) -> None:
    _, client = studio
    fake.enqueue("/chat/completions", model_not_found("openai/gpt-4o-mini"))
    gen = generate(client).json()["generation"]
    assert gen["status"] == "failed"
    r = client.post(f"/api/v1/generations/{gen['id']}/retry")
    assert r.status_code == 202
    wait_for(lambda: get(client, gen["id"])["status"] == "succeeded")


def test_events_endpoint_follows_to_the_end(studio, fake: FakeOpenRouter) -> None:
    _, client = studio
    gen = generate(client, defer=True).json()
    with client.stream("GET", f"/api/v1/generations/{gen['id']}/events") as r:
        events = sse_events(r.read().decode())
    assert events[0][0] == "generation" and events[-1][0] == "done"
    assert events[-1][1]["status"] == "succeeded"


def test_list_search_filters_and_paging(studio, fake: FakeOpenRouter) -> None:
    _, client = studio
    ids = [generate(client, prompt=f"note {i} {'cats' if i % 2 else 'dogs'}").json()["id"] for i in range(7)]
    client.patch(f"/api/v1/generations/{ids[0]}", json={"tags": ["pets", "draft"], "favorite": True})
    page = client.get("/api/v1/generations", params={"limit": 3}).json()
    assert [i["id"] for i in page["items"]] == ids[::-1][:3]
    rest = client.get("/api/v1/generations", params={"limit": 10, "cursor": page["next_cursor"]}).json()
    assert [i["id"] for i in rest["items"]] == ids[::-1][3:] and rest["next_cursor"] is None
    cats = client.get("/api/v1/generations", params={"q": "CATS"}).json()["items"]
    assert len(cats) == 3
    assert [i["id"] for i in client.get("/api/v1/generations", params={"tag": "pets"}).json()["items"]] == [ids[0]]
    assert [i["id"] for i in client.get("/api/v1/generations", params={"favorite": True}).json()["items"]] == [ids[0]]
    assert client.get("/api/v1/generations", params={"q": "100%_"}).json()["items"] == []
    assert client.get("/api/v1/generations", params={"cursor": "garbage!"}).status_code == 422


def test_usage_totals_come_from_reported_cost(studio, fake: FakeOpenRouter) -> None:
    _, client = studio
    costs = [generate(client, prompt=f"p{i}").json()["usage"]["cost_usd"] for i in range(3)]
    by_model = client.get("/api/v1/usage", params={"group_by": "model"}).json()
    assert by_model["total_cost_usd"] == pytest.approx(sum(costs))
    assert by_model["rows"][0]["count"] == 3
    day = client.get("/api/v1/usage", params={"group_by": "day", "from": "2000-01-01"}).json()
    assert day["rows"][0]["count"] == 3
    for period in ("week", "month"):
        rows = client.get("/api/v1/usage", params={"group_by": period}).json()["rows"]
        assert [row["count"] for row in rows] == [3]
    assert client.get("/api/v1/usage", params={"group_by": "year"}).status_code == 422


def test_bad_requests_are_422_and_store_nothing(studio) -> None:
    _, client = studio
    for body in ({"kind": "text", "model": "x/y", "prompt": "hi", "colour": "red"},
                 {"kind": "audio", "model": "x/y", "prompt": "hi"},
                 {"kind": "text", "model": "has space", "prompt": "hi"},
                 {"kind": "text", "model": "x/y", "prompt": "hi", "params": {"temperature": 9}},
                 {"kind": "text", "model": "x/y", "prompt": "hi", "params": {"wat": 1}},
                 {"kind": "text", "model": "x/y", "prompt": "   "},
                 {"kind": "image", "model": "x/y", "prompt": "hi", "stream": True}):
        r = client.post("/api/v1/generations", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["code"] == "invalid_request"
    assert client.get("/api/v1/generations").json()["items"] == []


def test_delete_removes_the_generation(studio) -> None:
    _, client = studio
    gen = generate(client).json()
    assert client.delete(f"/api/v1/generations/{gen['id']}").status_code == 204
    assert client.get(f"/api/v1/generations/{gen['id']}").status_code == 404


def test_credentials_never_return_the_key(studio, fake: FakeOpenRouter) -> None:
    _, client = studio
    body = client.get("/api/v1/credentials").json()
    assert body["configured"] and body["source"] == "file" and body["verified"] is True
    assert body["hint"] == "…" + fake.key[-4:]
    assert fake.key not in json.dumps(body)
    assert "private file" in body["storage_note"]
    bad = client.put("/api/v1/credentials", json={"api_key": "sk-or-v1-" + "9" * 64})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_key"
    assert client.get("/api/v1/credentials").json()["hint"] == "…" + fake.key[-4:]
    assert client.delete("/api/v1/credentials").json()["configured"] is False


def test_key_stored_unverified_when_offline(studio, fake: FakeOpenRouter) -> None:
    _, client = studio
    fake.go_offline()
    r = client.put("/api/v1/credentials", json={"api_key": "sk-or-v1-" + "1" * 64})
    assert r.status_code == 200 and r.json()["verified"] is False and r.json()["configured"] is True


def test_models_are_cached_for_offline_use(studio, fake: FakeOpenRouter) -> None:
    _, client = studio
    text = client.get("/api/v1/models", params={"output": "text"}).json()
    assert text["items"] and all("text" in m["output_modalities"] for m in text["items"])
    image = client.get("/api/v1/models", params={"output": "image"}).json()
    assert image["items"] and all("image" in m["output_modalities"] for m in image["items"])
    video = client.get("/api/v1/models", params={"output": "video"}).json()
    assert video["items"] and video["items"][0].get("video")
    fake.go_offline()
    again = client.get("/api/v1/models", params={"output": "text", "refresh": True}).json()
    assert [m["id"] for m in again["items"]] == [m["id"] for m in text["items"]]


@pytest.mark.parametrize("retry_unknown", [True, False])
def test_unknown_delivery_follows_the_setting(studio, fake: FakeOpenRouter, retry_unknown: bool) -> None:
    running, client = studio
    client.put("/api/v1/settings", json={"retry_unknown_text": retry_unknown})
    fake.enqueue("/chat/completions", Truncate())  # the answer is cut off: did the model run? unknown
    r = generate(client, prompt="maybe billed")
    assert r.status_code == 502
    gen_id = r.json()["generation"]["id"]
    if retry_unknown:
        wait_for(lambda: get(client, gen_id)["status"] == "succeeded")
        assert fake.count("/chat/completions") == 2
    else:
        assert r.json()["generation"]["status"] == "interrupted"
        running.outbox_settled()
        assert fake.count("/chat/completions") == 1


def test_outbox_limit_refuses_more_than_it_may_hold(data_dir: Path, fake: FakeOpenRouter) -> None:
    running = start_api(data_dir, openrouter_base_url=fake.base_url, outbox_max_queued=3, **FAST)
    try:
        with running.client() as client:
            client.put("/api/v1/credentials", json={"api_key": fake.key})
            client.post("/api/v1/queue/pause")
            assert [generate(client, defer=True).status_code for _ in range(3)] == [202, 202, 202]
            r = generate(client, defer=True)
            assert r.status_code == 429 and r.json()["error"]["code"] == "outbox_full"
            assert len(client.get("/api/v1/generations").json()["items"]) == 3  # nothing stored for the refused
    finally:
        running.stop()
