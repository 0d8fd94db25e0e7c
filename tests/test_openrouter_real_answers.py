"""OpenRouter's real answers that Atelier used to misread: billed failures, stated waits, limits and budgets,
privacy settings, bring-your-own-key costs, tool-call-only streams, redirects and web pages, oversized answers.

The client tests run over ``httpx.MockTransport`` with answers shaped like OpenRouter's (see the answer
builders below); the outbox tests go through the real backend and the fake OpenRouter.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.openrouter import (
    OpenRouterClient,
    StreamFinished,
    StreamStarted,
    TextDelta,
    UpstreamError,
)
from tests.conftest import RunningApi, start_api
from tests.fakes.behaviours import (
    Reply,
    StreamError,
    captive_portal,
    data_policy,
    in_flight_budget,
    key_limit,
    spend_limit,
)
from tests.fakes.openrouter import FakeOpenRouter

KEY = "sk-or-v1-" + "ab" * 32
BASE = "https://openrouter.ai/api/v1"
MODEL = "openai/gpt-4o"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 64}

# ------------------------------------------------------------------------------------------------------------
# Answers shaped like OpenRouter's


def usage(prompt: int = 12, completion: int = 4, cost: float | None = 0.00014, **extra: Any) -> dict:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
        "cost": cost,
        "is_byok": False,
        "cost_details": {
            "upstream_inference_cost": None,
            "upstream_inference_prompt_cost": 0.0001,
            "upstream_inference_completions_cost": 0.00004,
        },
        **extra,
    }


BYOK_USAGE = usage(
    cost=0,
    is_byok=True,
    cost_details={
        "upstream_inference_cost": 0.0042,
        "upstream_inference_prompt_cost": 0.0012,
        "upstream_inference_completions_cost": 0.003,
    },
)


def completion(content: Any = "Hello there!", *, use: dict | None = None, **message: Any) -> dict:
    return {
        "id": "gen-1773679501-1I8vCHmIm1kK9JPP1ezg",
        "object": "chat.completion",
        "created": 1773679501,
        "model": MODEL,
        "provider": "OpenAI",
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                "native_finish_reason": "stop",
                "message": {"role": "assistant", "content": content, "reasoning": None, "refusal": None, **message},
            }
        ],
        "usage": use or usage(),
    }


def chunk(delta: dict | None = None, finish: str | None = None, **top: Any) -> dict:
    out = {
        "id": "gen-1773679501-1I8vCHmIm1kK9JPP1ezg",
        "provider": "OpenAI",
        "model": MODEL,
        "object": "chat.completion.chunk",
        "created": 1773679501,
        "choices": [] if delta is None else [
            {"index": 0, "delta": delta, "finish_reason": finish, "native_finish_reason": finish}
        ],
    }
    out.update(top)
    return out


def sse(*events: Any) -> bytes:
    out = b": OPENROUTER PROCESSING\n\n"
    for event in events:
        out += b"data: " + (event if isinstance(event, bytes) else json.dumps(event).encode()) + b"\n\n"
    return out


def error_body(status: int, message: str, **metadata: Any) -> dict:
    error: dict[str, Any] = {"code": status, "message": message}
    if metadata:
        error["metadata"] = metadata
    return {"error": error, "user_id": "user_2yOPcMpKoQhcd4bVgSMlELRaIah"}


def answering(status: int, content: Any = b"", headers: dict[str, str] | None = None) -> httpx.MockTransport:
    """A transport that gives every request the same answer (JSON for dicts, SSE for bytes starting ':')."""

    def handle(request: httpx.Request) -> httpx.Response:
        if isinstance(content, dict):
            return httpx.Response(status, json=content, headers=headers)
        kind = "text/event-stream" if content.startswith(b":") else "text/html; charset=utf-8"
        return httpx.Response(status, content=content, headers={"Content-Type": kind, **(headers or {})})

    return httpx.MockTransport(handle)


def client_over(transport: httpx.AsyncBaseTransport, **kwargs: Any) -> OpenRouterClient:
    return OpenRouterClient(BASE, transport=transport, **kwargs)


def chat_error(transport: httpx.AsyncBaseTransport, body: dict | None = None, **kwargs: Any) -> UpstreamError:
    async def go() -> UpstreamError:
        async with client_over(transport, **kwargs) as client:
            with pytest.raises(UpstreamError) as info:
                await client.chat(KEY, body or BODY)
            return info.value

    return asyncio.run(go())


def stream_all(transport: httpx.AsyncBaseTransport, **kwargs: Any) -> tuple[list, UpstreamError | None]:
    async def go() -> tuple[list, UpstreamError | None]:
        events: list = []
        async with client_over(transport, **kwargs) as client:
            try:
                async with contextlib.aclosing(client.chat_stream(KEY, BODY)) as stream:
                    async for event in stream:
                        events.append(event)
            except UpstreamError as err:
                return events, err
        return events, None

    return asyncio.run(go())


def assert_one_sentence_plus_openrouter_words(message: str) -> None:
    ours = message.split(" OpenRouter said: ")[0]
    assert ours.endswith(".") and ours.count(". ") == 0, ours


# ------------------------------------------------------------------------------------------------------------
# 1. A billed in-band error keeps its usage


def test_in_band_stream_error_keeps_the_usage_it_carries() -> None:
    billed = usage(prompt=812, completion=4096, cost=0.0123)
    body = sse(
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Once upon a time"}),
        chunk(
            {"content": ""},
            "error",
            error={"code": 400, "message": "Token limit reached", "metadata": {"error_type": "token_limit_exceeded"}},
            usage=billed,
        ),
    )
    events, err = stream_all(answering(200, body))
    assert err is not None and err.output_started and err.disposition == "reject"
    assert err.usage is not None
    assert (err.usage.prompt_tokens, err.usage.completion_tokens, err.usage.cost_usd) == (812, 4096, 0.0123)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Once upon a time"


def test_in_band_error_before_any_token_keeps_its_usage_too() -> None:
    body = sse(
        chunk(None, error={"code": 502, "message": "Provider returned error"}, usage=usage(completion=0, cost=0.00002))
    )
    _, err = stream_all(answering(200, body))
    assert err is not None and err.disposition == "retry"
    assert err.usage is not None and err.usage.cost_usd == 0.00002


def test_choice_level_error_in_a_finished_answer_keeps_its_usage() -> None:
    answer = completion("Partial", use=usage(completion=2, cost=0.0003))
    answer["choices"][0].update(finish_reason="error", error={"code": 502, "message": "Provider disconnected"})
    err = chat_error(answering(200, answer))
    assert err.partial_text == "Partial" and err.usage is not None and err.usage.cost_usd == 0.0003


# ------------------------------------------------------------------------------------------------------------
# 2. The provider's stated wait


def test_429_wait_stated_in_the_body_is_honoured() -> None:
    body = error_body(429, "Rate limit exceeded", error_type="rate_limit_exceeded", retry_after_seconds=17)
    err = chat_error(answering(429, body))
    assert (err.code, err.disposition, err.retry_after) == ("rate_limited", "retry", 17)


def test_in_band_429_without_header_uses_the_stated_wait() -> None:
    body = sse(
        chunk(
            None,
            error={
                "code": 429,
                "message": "Rate limit exceeded",
                "metadata": {"error_type": "rate_limit_exceeded", "retry_after_seconds": 9},
            },
        )
    )
    _, err = stream_all(answering(200, body))
    assert err is not None and (err.code, err.disposition, err.retry_after) == ("rate_limited", "retry", 9)
    assert "9 s" in err.message


# ------------------------------------------------------------------------------------------------------------
# 3. 402: the key's own limit, and the in-flight budget


def test_402_key_limit_points_at_the_key_and_keeps_openrouters_words() -> None:
    said = "Key limit exceeded (monthly limit). Manage it at https://openrouter.ai/settings/keys"
    err = chat_error(answering(402, error_body(402, said, limit_source="openrouter_key_limit")))
    assert (err.code, err.disposition, err.upstream_status) == ("key_limit_reached", "reject", 402)
    assert "key's limit" in err.message and "credits at" not in err.message
    assert said in err.message
    assert_one_sentence_plus_openrouter_words(err.message)


def test_402_in_flight_budget_with_retry_after_is_retried() -> None:
    body = error_body(402, "Too many paid requests in flight.", limit_source="openrouter_in_flight_budget")
    err = chat_error(answering(402, body, {"Retry-After": "3"}))
    assert (err.code, err.disposition, err.retry_after) == ("in_flight_limit", "retry", 3)


def test_402_credits_is_still_final() -> None:
    body = error_body(402, "Insufficient credits.", limit_source="openrouter_credits")
    err = chat_error(answering(402, body))
    assert (err.code, err.disposition) == ("insufficient_credits", "reject")


# ------------------------------------------------------------------------------------------------------------
# 4. 404 because of the privacy settings


def test_404_data_policy_is_not_an_unknown_model() -> None:
    said = (
        "No endpoints found matching your data policy (Free model publication). Configure: "
        "https://openrouter.ai/settings/privacy"
    )
    err = chat_error(answering(404, error_body(404, said)))
    assert (err.code, err.disposition) == ("privacy_restricted", "reject")
    assert "privacy settings" in err.message and "does not know" not in err.message
    assert_one_sentence_plus_openrouter_words(err.message)


# ------------------------------------------------------------------------------------------------------------
# 5. Bring-your-own-key cost


def test_byok_answer_records_the_upstream_cost() -> None:
    async def go() -> Any:
        async with client_over(answering(200, completion(use=BYOK_USAGE))) as client:
            return await client.chat(KEY, BODY)

    result = asyncio.run(go())
    assert result.usage.is_byok and result.usage.openrouter_cost_usd == 0
    assert result.usage.cost_usd == pytest.approx(0.0042) and result.usage.upstream_cost_usd == 0.0042


def test_byok_stream_records_the_upstream_cost() -> None:
    body = sse(chunk({"content": "Hi"}, "stop"), chunk(None, usage=BYOK_USAGE), b"[DONE]")
    events, err = stream_all(answering(200, body))
    assert err is None and isinstance(events[-1], StreamFinished)
    assert events[-1].usage.cost_usd == pytest.approx(0.0042)


# ------------------------------------------------------------------------------------------------------------
# 6. A stream of tool calls only


def test_tool_call_only_stream_is_an_answer() -> None:
    body = sse(
        chunk({"role": "assistant", "content": None}),
        chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                               "function": {"name": "get_weather", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}, "tool_calls"),
        chunk(None, usage=usage()),
        b"[DONE]",
    )
    events, err = stream_all(answering(200, body))
    assert err is None
    assert any(isinstance(e, StreamStarted) for e in events) and isinstance(events[-1], StreamFinished)
    assert events[-1].finish_reason == "tool_calls"
    assert events[-1].tool_calls == [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
    ]


# ------------------------------------------------------------------------------------------------------------
# 7. 403 from a budget is not "content blocked"


@pytest.mark.parametrize(
    ("source", "named"),
    [
        ("openrouter_guardrail_budget", "guardrail budget"),
        ("openrouter_workspace_budget", "workspace's budget"),
        ("openrouter_key_limit", "API key's spending limit"),
    ],
)
def test_403_budget_says_which_limit_and_when_it_resets(source: str, named: str) -> None:
    body = error_body(403, "Budget exceeded", limit_source=source, scope="workspace", limit_usd=50,
                      spend_usd=50.02, resets_at="2026-12-01T00:00:00Z")
    err = chat_error(answering(403, body))
    assert (err.code, err.disposition, err.upstream_status) == ("spend_limit_reached", "reject", 403)
    assert named in err.message and "2026-12-01T00:00:00Z" in err.message
    assert "moderation" not in err.message and "blocked" not in err.message
    assert err.metadata["limit_source"] == source
    assert_one_sentence_plus_openrouter_words(err.message)


# ------------------------------------------------------------------------------------------------------------
# 8. Redirects and web pages are upstream errors, not "offline"


@pytest.mark.parametrize(
    ("status", "content", "headers"),
    [
        (302, b"<html>Sign in</html>", {"Location": "http://portal.example/login"}),
        (307, b"", {"Location": "https://elsewhere.example/api/v1/chat/completions"}),
        (300, b"<html>choose</html>", {}),
        (403, b"<html>Blocked by your proxy</html>", {}),
    ],
)
def test_redirects_and_foreign_pages_are_upstream_errors(status: int, content: bytes, headers: dict) -> None:
    err = chat_error(answering(status, content, headers))
    assert (err.code, err.disposition, err.upstream_status) == ("upstream_error", "retry", status)
    _, stream_err = stream_all(answering(status, content, headers))
    assert stream_err is not None and (stream_err.code, stream_err.disposition) == ("upstream_error", "retry")


def test_web_page_answering_a_stream_request_is_an_upstream_error() -> None:
    _, err = stream_all(answering(200, b"<!DOCTYPE html><html>captive portal</html>"))
    assert err is not None and (err.code, err.disposition, err.upstream_status) == ("upstream_error", "retry", 200)


# ------------------------------------------------------------------------------------------------------------
# 9. Oversized answers


class Endless:
    """A response body that never ends; counts what was pulled from it."""

    def __init__(self, head: bytes, piece: bytes) -> None:
        self.head, self.piece, self.pulled = head, piece, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.pulled += len(self.head)
        yield self.head
        while True:
            self.pulled += len(self.piece)
            yield self.piece


def endless(body: Endless, content_type: str) -> httpx.MockTransport:
    return httpx.MockTransport(
        lambda request: httpx.Response(200, content=body, headers={"Content-Type": content_type})
    )


LIMIT = 64 * 1024


def test_huge_streamed_answer_is_cut_off_keeping_the_part_received() -> None:
    piece = sse(chunk({"content": "lorem ipsum " * 100})).removeprefix(b": OPENROUTER PROCESSING\n\n")
    body = Endless(sse(chunk({"role": "assistant", "content": ""})), piece)
    events, err = stream_all(endless(body, "text/event-stream"), max_answer_bytes=LIMIT)
    assert err is not None and (err.code, err.disposition, err.output_started) == ("answer_too_large", "reject", True)
    received = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert 0 < len(received.encode()) <= LIMIT
    assert body.pulled < 3 * LIMIT + 10 * len(piece)
    assert "kept" in err.message and "ATELIER_MAX_ANSWER_BYTES" in err.message


def test_huge_event_without_an_end_is_not_buffered_whole() -> None:
    body = Endless(b'data: {"choices":[{"index":0,"delta":{"content":"', b"x" * 4096)
    _, err = stream_all(endless(body, "text/event-stream"), max_answer_bytes=LIMIT)
    assert err is not None and err.code == "answer_too_large"
    assert body.pulled < LIMIT + 2 * 4096


def test_huge_non_streamed_answer_is_refused_without_reading_it_all() -> None:
    body = Endless(b'{"id":"gen-1","choices":[{"index":0,"message":{"content":"', b"y" * 4096)
    err = chat_error(endless(body, "application/json"), max_answer_bytes=LIMIT)
    assert (err.code, err.disposition) == ("answer_too_large", "reject")
    assert body.pulled < LIMIT + 2 * 4096


# ------------------------------------------------------------------------------------------------------------
# Through the outbox, against the fake OpenRouter


FAST = {"retry_base_seconds": 0.05, "retry_max_seconds": 0.2, "probe_seconds": 0.1, "video_poll_seconds": 0.05}


@pytest.fixture
def fake() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter() as server:
        yield server


@pytest.fixture
def launch(data_dir: Path, fake: FakeOpenRouter) -> Iterator[Callable[..., tuple[RunningApi, httpx.Client]]]:
    started: list[tuple[RunningApi, httpx.Client]] = []

    def go(**overrides: Any) -> tuple[RunningApi, httpx.Client]:
        running = start_api(data_dir, openrouter_base_url=fake.base_url, **{**FAST, **overrides})
        client = running.client()
        assert client.put("/api/v1/credentials", json={"api_key": fake.key}).status_code == 200
        started.append((running, client))
        return running, client

    yield go
    for running, client in started:
        client.close()
        running.stop()


def generate(client: httpx.Client, **body: Any) -> httpx.Response:
    return client.post(
        "/api/v1/generations", json={"kind": "text", "model": "openai/gpt-4o-mini", "prompt": "Hello", **body}
    )


def wait_for(fn: Callable[[], Any], timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_billed_in_band_error_records_tokens_and_cost(launch, fake: FakeOpenRouter) -> None:
    _, client = launch()
    fake.enqueue("/chat/completions", StreamError(after_tokens=2, code=400, message="Token limit reached",
                                                  error_type="token_limit_exceeded", usage=True))
    with client.stream("POST", "/api/v1/generations", json={"kind": "text", "model": "openai/gpt-4o-mini",
                                                           "prompt": "Hello", "stream": True}) as response:
        response.read()
    gen_id = client.get("/api/v1/generations").json()["items"][0]["id"]
    gen = wait_for(lambda: (g := client.get(f"/api/v1/generations/{gen_id}").json())["status"] == "interrupted" and g)
    # Background calls (the key's details, the catalogue) may come after it: look at the completions only.
    completions = [r for r in fake.requests if r.path == "/chat/completions"]
    assert len(completions) == 1
    assert gen["usage"]["completion_tokens"] == 2 and gen["usage"]["cost_usd"] > 0
    assert gen["output_text"]


def test_byok_generation_records_what_the_provider_charged(launch, fake: FakeOpenRouter) -> None:
    fake.byok = True
    _, client = launch()
    gen = generate(client).json()
    assert gen["status"] == "succeeded"
    assert gen["usage"]["cost_usd"] and gen["usage"]["cost_usd"] > 0
    assert fake.completions[0].cost == 0  # OpenRouter's own charge


def test_tool_call_only_stream_succeeds_once(launch, fake: FakeOpenRouter) -> None:
    _, client = launch()
    fake.enqueue("/chat/completions", Reply(text="", tool_calls=[{"name": "lookup", "arguments": '{"q": "x"}'}]))
    with client.stream("POST", "/api/v1/generations", json={"kind": "text", "model": "openai/gpt-4o-mini",
                                                           "prompt": "Hello", "stream": True}) as response:
        response.read()
    gen_id = client.get("/api/v1/generations").json()["items"][0]["id"]
    gen = wait_for(lambda: (g := client.get(f"/api/v1/generations/{gen_id}").json())["status"] != "running" and g)
    assert gen["status"] == "succeeded", gen["error"]
    time.sleep(0.5)  # a retry (and a second bill) would come within the fast retry settings
    assert fake.count("/chat/completions") == 1


def test_redirecting_upstream_is_retried_with_backoff_not_in_a_loop(
    launch, fake: FakeOpenRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Full jitter picks each delay in [0, ceiling]; take the ceiling so the count below is exact: with a 1 s
    # base the attempts go out at about 0 s, 1 s and 3 s, the next only at 7 s.
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    _, client = launch(retry_base_seconds=1.0, retry_max_seconds=60.0)
    for _ in range(40):
        fake.enqueue("/chat/completions", captive_portal())
    response = generate(client)
    assert response.status_code == 502
    gen = response.json()["generation"]
    assert gen["status"] == "queued" and gen["error"]["code"] == "upstream_error"
    time.sleep(4.5)
    posts = fake.count("/chat/completions")
    assert 2 <= posts <= 3, posts
    assert client.get("/api/v1/status").json()["online"] is True
    record = client.get(f"/api/v1/generations/{gen['id']}").json()
    assert record["status"] == "queued" and record["error"]["code"] == "upstream_error"


@pytest.mark.parametrize("stream", [True, False])
def test_oversized_answer_is_cut_off_and_not_retried(launch, fake: FakeOpenRouter, stream: bool) -> None:
    _, client = launch(max_answer_bytes=4096)
    fake.enqueue("/chat/completions", Reply(text="many words " * 2000))
    if stream:
        with client.stream("POST", "/api/v1/generations", json={"kind": "text", "model": "openai/gpt-4o-mini",
                                                               "prompt": "Hello", "stream": True}) as response:
            response.read()
    else:
        generate(client)
    gen_id = client.get("/api/v1/generations").json()["items"][0]["id"]
    gen = wait_for(lambda: (g := client.get(f"/api/v1/generations/{gen_id}").json())["status"] != "running" and g)
    assert gen["status"] == "interrupted" and gen["error"]["code"] == "answer_too_large"
    assert len((gen["output_text"] or "").encode()) <= 4096
    if stream:
        assert gen["output_text"]
    time.sleep(0.5)
    assert fake.count("/chat/completions") == 1


@pytest.mark.parametrize(
    ("behaviour", "code", "upstream"),
    [(key_limit(), "key_limit_reached", 402), (spend_limit(), "spend_limit_reached", 403),
     (data_policy(), "privacy_restricted", 404)],
)
def test_limits_and_privacy_reach_the_api_with_their_own_code(launch, fake: FakeOpenRouter, behaviour, code: str,
                                                               upstream: int) -> None:
    _, client = launch()
    fake.enqueue("/chat/completions", behaviour)
    response = generate(client)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["upstream_status"]) == (code, upstream)
    assert response.json()["generation"]["status"] == "failed"


def test_in_flight_budget_is_queued_for_after_the_stated_wait(launch, fake: FakeOpenRouter) -> None:
    _, client = launch()
    fake.enqueue("/chat/completions", in_flight_budget(retry_after=2))
    response = generate(client)
    assert response.status_code == 502
    gen = response.json()["generation"]
    assert gen["status"] == "queued" and gen["error"]["code"] == "in_flight_limit"
    assert gen["error"]["retry_after"] == 2
    done = wait_for(lambda: (g := client.get(f"/api/v1/generations/{gen['id']}").json())["status"] == "succeeded"
                    and g)
    assert done["attempts"] == 2
