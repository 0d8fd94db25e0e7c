"""The fake OpenRouter behaves like the real API on the wire (see tests/fakes/openrouter.py)."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes import (
    PRESETS,
    Body200Error,
    ChoiceError,
    EmptyChoices,
    EmptyContent,
    FakeOpenRouter,
    HttpError,
    PrimaryFails,
    Reply,
    Stall,
    StreamError,
    StreamStyle,
    Truncate,
    VideoJob,
)
from tests.fakes.behaviours import (
    behaviour_from_json,
    behaviour_to_json,
    html_not_found,
    insufficient_credits,
    model_not_found,
    moderation,
    provider_error,
    rate_limited,
    unavailable,
)
from tests.fakes.media import png_size
from tests.fakes.process import FakeOpenRouterProcess
from tests.fakes.pytest_plugin import fake_openrouter_process  # noqa: F401 - used as a fixture below

ROOT = Path(__file__).resolve().parent.parent
MODEL = "openai/gpt-4o-mini"


class Clock:
    """A hand-driven clock for the fake (OAuth expiry, /generation visibility, timed video jobs)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter(clock=clock) as server:
        yield server


@pytest.fixture
def client(fake: FakeOpenRouter) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=fake.base_url, headers={"Authorization": f"Bearer {fake.key}"}, timeout=10
    ) as c:
        yield c


def chat_body(text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], **extra}


def parse_sse(raw: bytes) -> tuple[list[str], list[Any]]:
    """A spec-following SSE parser: returns (comments, data payloads) with ``[DONE]`` kept as a string."""
    text = raw.decode("utf-8")
    comments: list[str] = []
    events: list[Any] = []
    data: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if line == "":
            if data:
                payload = "\n".join(data)
                events.append(payload if payload == "[DONE]" else json.loads(payload))
                data = []
        elif line.startswith(":"):
            comments.append(line[1:].strip())
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    return comments, events


def stream(client: httpx.Client, body: dict[str, Any]) -> tuple[httpx.Response, list[bytes]]:
    """POST a streaming chat request and return the response and the raw pieces as they arrived."""
    with client.stream("POST", "/chat/completions", json={**body, "stream": True}) as response:
        pieces = list(response.iter_raw())
    return response, pieces


# -- chat -----------------------------------------------------------------------------------------------


def test_non_stream_chat_is_deterministic_and_complete(fake: FakeOpenRouter, client: httpx.Client) -> None:
    response = client.post("/chat/completions", json=chat_body("héllo wörld", unknown_field={"x": 1}))
    assert response.status_code == 200
    body = response.json()
    assert response.headers["x-generation-id"] == body["id"]
    assert body["id"].startswith("gen-")
    assert body["object"] == "chat.completion"
    assert body["model"] == MODEL and body["provider"] == "OpenAI"
    choice = body["choices"][0]
    assert choice["message"] == {
        "role": "assistant",
        "content": "Echo: héllo wörld",
        "refusal": None,
        "reasoning": None,
    }
    assert choice["finish_reason"] == "stop" and choice["native_finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens_details"]["cached_tokens"] == 0
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 0
    expected_cost = usage["prompt_tokens"] * 0.00000015 + usage["completion_tokens"] * 0.0000006
    assert usage["cost"] == pytest.approx(expected_cost)
    assert "x_fake_unknown_field" in body  # clients must tolerate unknown fields
    again = client.post("/chat/completions", json=chat_body("héllo wörld")).json()
    assert again["choices"] == body["choices"] and again["usage"] == usage and again["id"] != body["id"]
    assert [c.id for c in fake.completions] == [body["id"], again["id"]]
    assert fake.completions[0].text == "Echo: héllo wörld" and not fake.completions[0].stream


def test_stream_chat_wire_format(fake: FakeOpenRouter, client: httpx.Client) -> None:
    response, pieces = stream(client, chat_body("café ☕"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    raw = b"".join(pieces)
    assert raw.startswith(b": OPENROUTER PROCESSING\n\n")
    comments, events = parse_sse(raw)
    assert comments == ["OPENROUTER PROCESSING"]
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert {c["id"] for c in chunks} == {response.headers["x-generation-id"]}
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["cost"] > 0
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "Echo: café ☕"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert [c.id for c in fake.completions] == [chunks[0]["id"]] and fake.completions[0].stream


@pytest.mark.parametrize("split", ["odd", "random", "byte"])
def test_stream_split_at_odd_boundaries_and_crlf(
    fake: FakeOpenRouter, client: httpx.Client, split: str
) -> None:
    style = StreamStyle(split=split, crlf=True, keepalives_before=3, keepalive_every=1)
    fake.enqueue("/chat/completions", Reply(style=style))
    prompt = "naïve 😀 ünïcödé " + "€😀ж" * 8
    response, pieces = stream(client, chat_body(prompt))
    raw = b"".join(pieces)
    assert b"\r\n\r\n" in raw and b"\n\n" not in raw.replace(b"\r\n", b"")
    (request,) = fake.requests
    writes = request.stream_writes
    assert b"".join(writes) == raw
    broken = 0
    for piece in writes:
        try:
            piece.decode("utf-8")
        except UnicodeDecodeError:
            broken += 1
    assert broken > 0, "some writes must end inside a multi-byte character"
    assert max(len(w) for w in writes) <= 17
    assert any(w.count(b"data:") == 0 and not w.startswith(b":") for w in writes)  # cut mid-line
    comments, events = parse_sse(raw)
    assert len(comments) >= 4  # three before the first event, more between chunks
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in events[:-1] if c["choices"])
    assert text == f"Echo: {prompt}".rstrip() or text == f"Echo: {prompt}"
    assert events[-1] == "[DONE]"


def test_reply_overrides_reasoning_and_tool_calls(client: httpx.Client, fake: FakeOpenRouter) -> None:
    fake.enqueue("/chat/completions", Reply(text="Fixed", reasoning="thinking hard", model="openai/gpt-4o"))
    body = client.post("/chat/completions", json=chat_body()).json()
    message = body["choices"][0]["message"]
    assert message["content"] == "Fixed" and message["reasoning"] == "thinking hard"
    assert body["model"] == "openai/gpt-4o"
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] == 2
    fake.enqueue(
        "/chat/completions", Reply(text="", tool_calls=[{"name": "lookup", "arguments": '{"q":"x"}'}])
    )
    _, pieces = stream(client, chat_body())
    _, events = parse_sse(b"".join(pieces))
    fragments = [
        d["tool_calls"][0]
        for e in events[:-1]
        if e["choices"]
        for d in [e["choices"][0]["delta"]]
        if "tool_calls" in d
    ]
    assert fragments[0]["function"]["name"] == "lookup"
    assert "".join(f["function"].get("arguments", "") for f in fragments) == '{"q":"x"}'
    assert events[-2]["choices"] == [] and events[-3]["choices"][0]["finish_reason"] == "tool_calls"


def test_models_fallback_uses_next_model(client: httpx.Client, fake: FakeOpenRouter) -> None:
    fake.enqueue("/chat/completions", PrimaryFails())
    body = client.post("/chat/completions", json=chat_body(models=["anthropic/claude-sonnet-4.5"])).json()
    assert body["model"] == "anthropic/claude-sonnet-4.5" and body["provider"] == "Anthropic"
    fake.enqueue("/chat/completions", PrimaryFails(status=502))
    assert client.post("/chat/completions", json=chat_body()).status_code == 502
    fake.unavailable_models.add(MODEL)
    response = client.post("/chat/completions", json=chat_body())
    assert response.status_code == 503 and response.json()["error"]["availability"]["retryable"] is True


# -- errors ---------------------------------------------------------------------------------------------


def test_auth_errors(fake: FakeOpenRouter) -> None:
    with httpx.Client(base_url=fake.base_url) as anonymous:
        response = anonymous.post("/chat/completions", json=chat_body())
        assert response.status_code == 401
        assert response.json() == {"error": {"code": 401, "message": "No auth credentials found"}}
        response = anonymous.post(
            "/chat/completions", json=chat_body(), headers={"Authorization": "Bearer sk-or-v1-nope"}
        )
        assert response.json()["error"]["message"] == "User not found."
    fake.add_key("sk-or-v1-other")
    with httpx.Client(base_url=fake.base_url, headers={"Authorization": "Bearer sk-or-v1-other"}) as other:
        assert other.get("/key").status_code == 200
        fake.revoke_key("sk-or-v1-other")
        assert other.get("/key").status_code == 401


@pytest.mark.parametrize(
    ("behaviour", "status", "message"),
    [
        (model_not_found("acme/fake-1.0"), 400, "acme/fake-1.0 is not a valid model ID"),
        (model_not_found("acme/fake-1.0", availability=False), 400, "acme/fake-1.0 is not a valid model ID"),
        (insufficient_credits(), 402, "This request requires more credits"),
        (moderation(), 403, "requires moderation"),
        (provider_error(), 502, "Provider returned error"),
        (unavailable(), 503, "temporarily unavailable"),
        (HttpError(524, "Request timed out. Please try again later."), 524, "Request timed out"),
    ],
)
def test_enqueued_http_errors(
    client: httpx.Client, fake: FakeOpenRouter, behaviour: HttpError, status: int, message: str
) -> None:
    fake.enqueue("/chat/completions", behaviour)
    response = client.post("/chat/completions", json=chat_body(stream=True))
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == status and message in error["message"]
    assert fake.count("/chat/completions", status=status) == 1
    assert client.post("/chat/completions", json=chat_body()).status_code == 200  # one-shot
    assert fake.completions and len(fake.completions) == 1


def test_error_details(client: httpx.Client, fake: FakeOpenRouter) -> None:
    fake.enqueue("/chat/completions", model_not_found("acme/x"))
    availability = client.post("/chat/completions", json=chat_body()).json()["error"]["availability"]
    assert availability["code"] == "model_not_found" and availability["requested_models"] == ["acme/x"]
    fake.enqueue("/chat/completions", insufficient_credits())
    assert client.post("/chat/completions", json=chat_body()).json()["error"]["metadata"] == {
        "provider_name": None
    }
    fake.enqueue("/chat/completions", moderation(reasons=["harassment"]))
    metadata = client.post("/chat/completions", json=chat_body()).json()["error"]["metadata"]
    assert metadata["reasons"] == ["harassment"] and "flagged_input" in metadata and "model_slug" in metadata
    fake.enqueue("/chat/completions", provider_error(raw={"detail": "boom"}))
    assert client.post("/chat/completions", json=chat_body()).json()["error"]["metadata"]["raw"] == {
        "detail": "boom"
    }


def test_rate_limit_headers_seconds_and_http_date(client: httpx.Client, fake: FakeOpenRouter) -> None:
    fake.enqueue("/chat/completions", rate_limited(retry_after=7))
    response = client.post("/chat/completions", json=chat_body())
    assert response.status_code == 429 and response.headers["retry-after"] == "7"
    assert response.headers["x-ratelimit-limit"] == "20" and response.headers["x-ratelimit-remaining"] == "0"
    error = response.json()["error"]
    assert error["message"] == "Rate limit exceeded: free-models-per-min"
    assert error["metadata"]["headers"]["X-RateLimit-Reset"] == response.headers["x-ratelimit-reset"]
    fake.enqueue("/chat/completions", rate_limited("free-models-per-day", retry_after=30, http_date=True))
    response = client.post("/chat/completions", json=chat_body())
    assert email.utils.parsedate_to_datetime(response.headers["retry-after"]) is not None


def test_unknown_model_wrong_path_and_bad_json(client: httpx.Client) -> None:
    response = client.post("/chat/completions", json={**chat_body(), "model": "acme/nope"})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "acme/nope is not a valid model ID"
    response = client.post("/completionz", json=chat_body())
    assert response.status_code == 404 and response.headers["content-type"].startswith("text/html")
    response = client.post(
        "/chat/completions", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert client.get("/chat/completions").status_code == 405


def test_html_error_can_be_enqueued(client: httpx.Client, fake: FakeOpenRouter) -> None:
    fake.enqueue("/key", html_not_found())
    response = client.get("/key")
    assert response.status_code == 404 and "<html" in response.text


def test_200_with_error_bodies(client: httpx.Client, fake: FakeOpenRouter) -> None:
    fake.enqueue("/chat/completions", Body200Error(code=502, message="flagged"))
    body = client.post("/chat/completions", json=chat_body()).json()
    assert "choices" not in body and body["error"] == {"code": 502, "message": "flagged"}
    fake.enqueue("/chat/completions", ChoiceError(partial="Half an ans"))
    choice = client.post("/chat/completions", json=chat_body()).json()["choices"][0]
    assert choice["finish_reason"] == "error" and choice["message"]["content"] == "Half an ans"
    assert choice["error"]["metadata"]["error_type"] == "provider_unavailable"
    fake.enqueue("/chat/completions", EmptyChoices())
    assert client.post("/chat/completions", json=chat_body()).json()["choices"] == []
    fake.enqueue("/chat/completions", EmptyContent(null=True))
    assert (
        client.post("/chat/completions", json=chat_body()).json()["choices"][0]["message"]["content"] is None
    )
    assert fake.completions == [] or all(c.text in (None, "") for c in fake.completions)


# -- stream failures ------------------------------------------------------------------------------------


@pytest.mark.parametrize("empty_choices", [False, True])
def test_in_band_error_before_first_token(
    client: httpx.Client, fake: FakeOpenRouter, empty_choices: bool
) -> None:
    fake.enqueue(
        "/chat/completions",
        StreamError(code=429, message="Rate limit exceeded", keepalives=3, empty_choices=empty_choices),
    )
    response, pieces = stream(client, chat_body())
    assert response.status_code == 200
    comments, events = parse_sse(b"".join(pieces))
    assert len(comments) == 3 and len(events) == 1
    assert events[0]["error"]["code"] == 429
    if empty_choices:
        assert events[0]["choices"] == []
    else:
        assert events[0]["choices"][0]["finish_reason"] == "error"
    assert fake.completions == []


@pytest.mark.parametrize(("code", "done"), [(502, False), ("server_error", True)])
def test_mid_stream_error(client: httpx.Client, fake: FakeOpenRouter, code: int | str, done: bool) -> None:
    fake.enqueue("/chat/completions", StreamError(after_tokens=2, code=code, done=done))
    _, pieces = stream(client, chat_body("one two three four"))
    _, events = parse_sse(b"".join(pieces))
    contents = [e["choices"][0]["delta"].get("content") for e in events if e != "[DONE]" and "error" not in e]
    assert contents == ["", "Echo:", " one"]
    error_event = next(e for e in events if e != "[DONE]" and "error" in e)
    assert error_event["error"]["code"] == code
    assert error_event["choices"][0]["finish_reason"] == "error"
    assert (events[-1] == "[DONE]") is done
    assert fake.completions == []


def test_truncated_stream_has_no_done(client: httpx.Client, fake: FakeOpenRouter) -> None:
    fake.enqueue("/chat/completions", Truncate(after_tokens=1, style=StreamStyle(framing="close")))
    _, pieces = stream(client, chat_body("one two three"))
    _, events = parse_sse(b"".join(pieces))
    assert "[DONE]" not in events and not any(e["choices"] == [] for e in events)
    fake.enqueue(
        "/chat/completions", Truncate(after_tokens=1)
    )  # chunked framing: the client sees a broken body
    with pytest.raises(httpx.RemoteProtocolError):
        stream(client, chat_body("one two three"))
    assert fake.completions == []
    assert client.post("/chat/completions", json=chat_body()).status_code == 200  # server still healthy


def test_client_abort_is_recorded(fake: FakeOpenRouter, client: httpx.Client) -> None:
    fake.enqueue("/chat/completions", Reply(token_delay=0.05))
    with client.stream("POST", "/chat/completions", json=chat_body("a b c d e f g h i j", stream=True)) as r:
        gen_id = r.headers["x-generation-id"]
        for _ in r.iter_raw():
            break
    deadline = threading.Event()
    for _ in range(100):
        if fake.aborted:
            break
        deadline.wait(0.05)
    assert fake.aborted == [gen_id]
    assert fake.completions == []


def test_stall_with_keepalives_then_continue(client: httpx.Client, fake: FakeOpenRouter) -> None:
    fake.enqueue("/chat/completions", Stall(seconds=0.3, keepalive_interval=0.1, after_tokens=1))
    _, pieces = stream(client, chat_body("x y"))
    comments, events = parse_sse(b"".join(pieces))
    assert len(comments) >= 3 and events[-1] == "[DONE]"


def test_silent_stall_trips_a_read_timeout(fake: FakeOpenRouter) -> None:
    fake.enqueue("/chat/completions", Stall(seconds=5))
    with (
        httpx.Client(
            base_url=fake.base_url,
            headers={"Authorization": f"Bearer {fake.key}"},
            timeout=httpx.Timeout(5, read=0.3),
        ) as impatient,
        pytest.raises(httpx.ReadTimeout),
    ):
        stream(impatient, chat_body())
    for _ in range(100):
        if fake.aborted:
            break
        threading.Event().wait(0.05)
    assert len(fake.aborted) == 1


def test_debug_echo_first_chunk(client: httpx.Client) -> None:
    _, pieces = stream(client, chat_body(debug={"echo_upstream_body": True}))
    _, events = parse_sse(b"".join(pieces))
    assert events[0]["choices"] == [] and events[0]["debug"]["echo_upstream_body"]["model"] == MODEL


# -- key, credits, generation, models -------------------------------------------------------------------


def test_key_credits_and_generation(fake: FakeOpenRouter, client: httpx.Client, clock: Clock) -> None:
    data = client.get("/key").json()["data"]
    assert data["limit"] is None and data["limit_remaining"] is None
    assert data["rate_limit"]["note"].startswith("This field is deprecated")
    assert client.get("/auth/key").json()["data"]["label"] == data["label"]
    assert client.get("/credits").status_code == 403
    fake.add_key("sk-or-v1-limited", limit=1.0, limit_remaining=0.5, label="limited")
    with httpx.Client(
        base_url=fake.base_url, headers={"Authorization": "Bearer sk-or-v1-limited"}
    ) as limited:
        info = limited.get("/key").json()["data"]
        assert (info["label"], info["limit"], info["limit_remaining"]) == ("limited", 1.0, 0.5)
        body = limited.post("/chat/completions", json=chat_body()).json()
        after = limited.get("/key").json()["data"]["limit_remaining"]
        assert after == pytest.approx(0.5 - body["usage"]["cost"])
    fake.add_key("sk-or-v1-broke", limit=1.0, limit_remaining=0)
    with httpx.Client(base_url=fake.base_url, headers={"Authorization": "Bearer sk-or-v1-broke"}) as broke:
        assert broke.post("/chat/completions", json=chat_body()).status_code == 402
    gen_id = body["id"]
    assert client.get("/generation", params={"id": gen_id}).status_code == 404
    clock.now += 1.5
    stats = client.get("/generation", params={"id": gen_id}).json()["data"]
    assert (
        stats["id"] == gen_id and stats["total_cost"] == body["usage"]["cost"] and stats["cancelled"] is False
    )


def test_models_listing(client: httpx.Client) -> None:
    default = client.get("/models").json()["data"]
    assert default and all("text" in m["architecture"]["output_modalities"] for m in default)
    assert all(isinstance(v, str) for m in default for v in m["pricing"].values())
    ids = {m["id"] for m in default}
    assert "black-forest-labs/flux.2-pro" not in ids and "google/veo-3.1" not in ids
    images = {m["id"] for m in client.get("/models", params={"output_modalities": "image"}).json()["data"]}
    assert {"google/gemini-2.5-flash-image", "black-forest-labs/flux.2-pro"} <= images
    videos = {m["id"] for m in client.get("/models", params={"output_modalities": "video"}).json()["data"]}
    assert videos == {"google/veo-3.1", "openai/sora-2-pro"}
    everything = client.get("/models", params={"output_modalities": "all"}).json()["data"]
    assert len(everything) > len(default)
    both = {m["id"] for m in client.get("/models", params={"output_modalities": "text,image"}).json()["data"]}
    assert ids | images == both
    assert any("description" not in m for m in everything)


# -- offline / online -----------------------------------------------------------------------------------


def test_offline_refuses_connections_then_same_port_comes_back(fake: FakeOpenRouter) -> None:
    port = fake.port
    with httpx.Client(base_url=fake.base_url, headers={"Authorization": f"Bearer {fake.key}"}) as c:
        assert c.get("/key").status_code == 200  # leaves a keep-alive connection in the pool
        fake.go_offline()
        with pytest.raises(httpx.ConnectError):
            httpx.get(fake.base_url + "/key")
        with pytest.raises(httpx.TransportError):
            c.get("/key")
        fake.go_online()
        assert fake.port == port
        assert c.get("/key").status_code == 200


# -- images ---------------------------------------------------------------------------------------------


def test_chat_image_output(client: httpx.Client, fake: FakeOpenRouter) -> None:
    ref = "data:image/png;base64," + base64.b64encode(b"reference").decode()
    body = {
        "model": "google/gemini-2.5-flash-image",
        "modalities": ["image", "text"],
        "image_config": {"aspect_ratio": "16:9"},
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "a sunset"},
                    {"type": "image_url", "image_url": {"url": ref}},
                ],
            }
        ],
    }
    message = client.post("/chat/completions", json=body).json()["choices"][0]["message"]
    assert message["content"] == "Echo: a sunset"
    (image,) = message["images"]
    assert image["type"] == "image_url"
    header, b64 = image["image_url"]["url"].split(",", 1)
    assert header == "data:image/png;base64"
    assert png_size(base64.b64decode(b64)) == (21, 12)
    assert [m.url for m in fake.received_media] == [ref]
    again = client.post("/chat/completions", json=body).json()["choices"][0]["message"]["images"]
    assert again == message["images"]  # deterministic
    fake.enqueue("/chat/completions", Reply(images=2, untyped_image=True))
    _, pieces = stream(client, body)
    _, events = parse_sse(b"".join(pieces))
    entries = [i for e in events[:-1] if e["choices"] for i in e["choices"][0]["delta"].get("images", [])]
    assert len(entries) == 2 and "type" in entries[0] and "type" not in entries[1]
    text_only = client.post("/chat/completions", json={**body, "model": MODEL}).json()["choices"][0][
        "message"
    ]
    assert "images" not in text_only and text_only["content"] == "Echo: a sunset"


def test_images_endpoint(client: httpx.Client, fake: FakeOpenRouter) -> None:
    request = {
        "model": "black-forest-labs/flux.2-pro",
        "prompt": "a cat",
        "n": 2,
        "input_references": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}],
    }
    body = client.post("/images", json=request).json()
    assert [d["media_type"] for d in body["data"]] == ["image/png", "image/png"]
    assert base64.b64decode(body["data"][0]["b64_json"]).startswith(b"\x89PNG")
    assert body["usage"]["cost"] == pytest.approx(0.06)
    assert fake.received_media[-1].url == "data:image/png;base64,AAAA"
    with client.stream("POST", "/images", json={**request, "stream": True}) as r:
        _, events = parse_sse(r.read())
    assert [e["type"] for e in events[:-1]] == [
        "image_generation.partial_image",
        "image_generation.completed",
    ] * 2
    assert events[-1] == "[DONE]"
    fake.enqueue("/images", StreamError(after_tokens=1, message="Generation failed", code="server_error"))
    with client.stream("POST", "/images", json={**request, "stream": True}) as r:
        _, events = parse_sse(r.read())
    assert events[-2] == {"type": "error", "error": {"message": "Generation failed", "code": "server_error"}}
    fake.enqueue("/images", HttpError(502, "Image generation failed"))
    assert client.post("/images", json=request).status_code == 502
    assert len(fake.image_generations) == 4


# -- videos ---------------------------------------------------------------------------------------------


def test_video_job_lifecycle(client: httpx.Client, fake: FakeOpenRouter) -> None:
    request = {"model": "google/veo-3.1", "prompt": "a dog", "resolution": "720p", "duration": 8}
    submit = client.post("/videos", json=request)
    assert submit.status_code == 202
    job = submit.json()
    assert job["status"] == "pending" and job["polling_url"] == f"{fake.base_url}/videos/{job['id']}"
    statuses = [client.get(job["polling_url"]).json() for _ in range(4)]
    assert [s["status"] for s in statuses] == ["pending", "in_progress", "completed", "completed"]
    done = statuses[-1]
    assert done["usage"]["cost"] == 0.25
    url = done["unsigned_urls"][0]
    assert url.startswith(fake.base_url)
    first = client.get(url)
    assert first.status_code == 200 and first.headers["content-type"] == "video/mp4"
    assert first.content[4:8] == b"ftyp" and client.get(url).content == first.content
    assert httpx.get(url).status_code == 401
    with httpx.Client(headers={"Authorization": f"Bearer {fake.key}"}) as restarted:  # a fresh client
        assert restarted.get(job["polling_url"]).json()["status"] == "completed"


@pytest.mark.parametrize("outcome", ["failed", "cancelled", "expired"])
def test_video_job_unhappy_outcomes(client: httpx.Client, fake: FakeOpenRouter, outcome: str) -> None:
    fake.enqueue(
        "/videos", VideoJob(outcome=outcome, polls_per_stage=1, relative_polling_url=True, error="blocked")
    )
    job = client.post("/videos", json={"model": "google/veo-3.1", "prompt": "x"}).json()
    assert job["polling_url"] == f"/api/v1/videos/{job['id']}"
    last = [client.get(fake.site_url + job["polling_url"]).json() for _ in range(3)][-1]
    assert last["status"] == outcome and "unsigned_urls" not in last
    assert (last.get("error") == "blocked") is (outcome == "failed")
    assert client.get(f"/videos/{job['id']}/content").status_code == 404


def test_video_job_by_time_and_models(client: httpx.Client, fake: FakeOpenRouter, clock: Clock) -> None:
    fake.enqueue("/videos", VideoJob(seconds=60))
    job = client.post("/videos", json={"model": "openai/sora-2-pro", "prompt": "x"}).json()
    assert client.get(f"/videos/{job['id']}").json()["status"] == "pending"
    clock.now += 30
    assert client.get(f"/videos/{job['id']}").json()["status"] == "in_progress"
    clock.now += 31
    assert client.get(f"/videos/{job['id']}").json()["status"] == "completed"
    models = client.get("/videos/models").json()["data"]
    assert {m["id"] for m in models} == {"google/veo-3.1", "openai/sora-2-pro"}
    assert all("supported_durations" in m and "pricing_skus" in m for m in models)
    assert (
        client.post(
            "/videos", json={"model": "google/veo-3.1", "prompt": "x", "resolution": "8K"}
        ).status_code
        == 400
    )


# -- OAuth PKCE -----------------------------------------------------------------------------------------


def _pkce() -> tuple[str, str]:
    verifier = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def _authorize(fake: FakeOpenRouter, challenge: str, callback: str = "http://localhost:51423/cb?n=1") -> str:
    response = httpx.get(
        fake.site_url + "/auth",
        params={"callback_url": callback, "code_challenge": challenge, "code_challenge_method": "S256"},
    )
    assert response.status_code == 302
    location = httpx.URL(response.headers["location"])
    assert location.host in {"localhost", "127.0.0.1"} and location.params["n"] == "1"
    return location.params["code"]


def test_oauth_pkce_exchange(fake: FakeOpenRouter, clock: Clock) -> None:
    verifier, challenge = _pkce()
    code = _authorize(fake, challenge)
    keys_url = fake.base_url + "/auth/keys"
    assert (
        httpx.post(
            keys_url, json={"code": code, "code_verifier": "wrong", "code_challenge_method": "S256"}
        ).status_code
        == 403
    )
    assert (
        httpx.post(
            keys_url, json={"code": code, "code_verifier": verifier, "code_challenge_method": "plain"}
        ).status_code
        == 400
    )
    response = httpx.post(
        keys_url, json={"code": code, "code_verifier": verifier, "code_challenge_method": "S256"}
    )
    assert response.status_code == 200
    issued = response.json()
    assert issued["key"].startswith("sk-or-v1-") and issued["user_id"].startswith("user_")
    assert (
        httpx.get(fake.base_url + "/key", headers={"Authorization": f"Bearer {issued['key']}"}).status_code
        == 200
    )
    reused = httpx.post(
        keys_url, json={"code": code, "code_verifier": verifier, "code_challenge_method": "S256"}
    )
    assert reused.status_code == 403
    old_code = _authorize(fake, challenge, "http://127.0.0.1:3000/callback?n=1")
    clock.now += 601
    expired = httpx.post(
        keys_url, json={"code": old_code, "code_verifier": verifier, "code_challenge_method": "S256"}
    )
    assert expired.status_code == 403 and expired.json()["error"]["message"] == "Authorization code expired"
    assert httpx.get(keys_url).status_code == 405


def test_oauth_callback_rules_and_headless(fake: FakeOpenRouter) -> None:
    _, challenge = _pkce()
    bad = httpx.get(
        fake.site_url + "/auth",
        params={"callback_url": "http://evil.example/cb", "code_challenge": challenge},
    )
    assert bad.status_code == 400
    assert httpx.get(fake.site_url + "/auth").status_code == 400  # headless needs a challenge
    page = httpx.get(
        fake.site_url + "/auth", params={"code_challenge": challenge, "code_challenge_method": "S256"}
    )
    assert page.status_code == 200 and 'id="auth-code"' in page.text


# -- attribution, recordings, JSON behaviours -----------------------------------------------------------


def test_attribution_headers_are_recorded(client: httpx.Client, fake: FakeOpenRouter) -> None:
    client.post(
        "/chat/completions",
        json=chat_body(),
        headers={
            "HTTP-Referer": "https://atelier.example",
            "X-OpenRouter-Title": "Atelier",
            "X-OpenRouter-Categories": "image-gen,video-gen",
        },
    )
    client.post("/chat/completions", json=chat_body(), headers={"X-Title": "Legacy"})
    first, second = fake.requests
    assert first.referer == "https://atelier.example" and first.title == "Atelier"
    assert first.categories == ["image-gen", "video-gen"] and second.title == "Legacy"
    assert first.json["messages"][0]["content"] == "hello" and first.status == 200


def test_behaviours_round_trip_through_json() -> None:
    for behaviour in [
        Reply(text="x", style=StreamStyle(split="odd")),
        StreamError(code="server_error"),
        Truncate(),
        Stall(seconds=2),
        VideoJob(outcome="failed"),
        rate_limited(retry_after=3),
    ]:
        assert behaviour_from_json(json.loads(json.dumps(behaviour_to_json(behaviour)))) == behaviour
    preset = behaviour_from_json({"kind": "preset", "name": "model_not_found", "args": {"model": "a/b"}})
    assert isinstance(preset, HttpError) and preset.message == "a/b is not a valid model ID"
    with pytest.raises(ValueError):
        behaviour_from_json({"kind": "nope"})


def test_reset_forgets_everything(client: httpx.Client, fake: FakeOpenRouter) -> None:
    fake.add_key("sk-or-v1-temp")
    fake.enqueue("/key", HttpError(500, "x"))
    client.post("/chat/completions", json=chat_body())
    fake.go_offline()
    fake.reset()
    assert fake.online and fake.requests == [] and fake.completions == [] and fake.pending("/key") == 0
    assert fake.key_info("sk-or-v1-temp") is None
    assert client.get("/key").status_code == 200


# -- standalone process ---------------------------------------------------------------------------------


def test_standalone_process_with_control_api() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fakes.openrouter",
            "--port",
            "0",
            "--key",
            "sk-or-v1-standalone",
            "--token-delay",
            "0",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        base, control = info["base_url"], info["control_url"]
        assert base.endswith("/api/v1") and info["control_port"] != info["port"]
        auth = {"Authorization": "Bearer sk-or-v1-standalone"}
        with httpx.Client(headers=auth) as c:
            assert c.get(base + "/key").status_code == 200
            enqueue = {
                "path": "/chat/completions",
                "behaviour": {"kind": "preset", "name": "rate_limited", "args": {"retry_after": 2}},
            }
            assert c.post(control + "/enqueue", json=enqueue).status_code == 200
            assert c.post(base + "/chat/completions", json=chat_body()).status_code == 429
            assert c.post(base + "/chat/completions", json=chat_body()).status_code == 200
            assert c.post(control + "/offline", json={}).status_code == 200
            with pytest.raises(httpx.ConnectError):
                httpx.get(base + "/key", headers=auth)
            stats = c.get(control + "/stats").json()
            assert stats["online"] is False and stats["completions"] == 1
            assert c.post(control + "/online").status_code == 200
            assert c.get(base + "/key").status_code == 200
            recorded = c.get(control + "/requests").json()
            assert [r["status"] for r in recorded] == [200, 429, 200, 200]
            assert c.post(control + "/reset").status_code == 200
            assert c.get(control + "/requests").json() == []
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


# -- more wire details ----------------------------------------------------------------------------------

PRESET_STATUS = {
    "model_not_found": 400,
    "context_length_exceeded": 400,
    "unauthorized": 401,
    "insufficient_credits": 402,
    "moderation": 403,
    "guardrail": 403,
    "no_endpoints": 404,
    "request_timeout": 408,
    "rate_limited": 429,
    "capacity_exhausted": 429,
    "internal_error": 500,
    "provider_error": 502,
    "unavailable": 503,
    "edge_timeout": 524,
    "overloaded": 529,
    "html_not_found": 404,
    "image_generation_failed": 502,
    "key_limit": 402,
    "in_flight_budget": 402,
    "spend_limit": 403,
    "data_policy": 404,
    "rate_limited_in_body": 429,
    "captive_portal": 302,
}


def test_every_preset_is_covered() -> None:
    assert set(PRESET_STATUS) == set(PRESETS)


@pytest.mark.parametrize("name", sorted(PRESET_STATUS))
def test_presets_through_the_control_api(fake: FakeOpenRouter, client: httpx.Client, name: str) -> None:
    enqueue = {"path": "/chat/completions", "behaviour": {"kind": "preset", "name": name}}
    assert httpx.post(fake.control_url + "/enqueue", json=enqueue).json() == {"pending": 1}
    response = client.post("/chat/completions", json=chat_body())
    assert response.status_code == PRESET_STATUS[name]
    if name in {"html_not_found", "captive_portal"}:
        assert response.headers["content-type"].startswith("text/html")
        if name == "captive_portal":
            assert response.headers["location"] == "http://portal.example/login"
    else:
        error = response.json()["error"]
        assert error["code"] == PRESET_STATUS[name] and error["message"]
    if name in {"rate_limited", "capacity_exhausted", "unavailable", "in_flight_budget"}:
        assert int(response.headers["retry-after"]) > 0
    if name == "rate_limited_in_body":
        assert "retry-after" not in response.headers
        assert response.json()["error"]["metadata"]["retry_after_seconds"] > 0


def test_stream_empty_choices_and_empty_content(client: httpx.Client, fake: FakeOpenRouter) -> None:
    fake.enqueue("/chat/completions", EmptyChoices())
    _, pieces = stream(client, chat_body())
    _, events = parse_sse(b"".join(pieces))
    assert len(events) == 2 and events[0]["choices"] == [] and "usage" in events[0] and events[1] == "[DONE]"
    fake.enqueue("/chat/completions", EmptyContent())
    _, pieces = stream(client, chat_body())
    _, events = parse_sse(b"".join(pieces))
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1] if e["choices"]) == ""
    assert events[-1] == "[DONE]" and events[-3]["choices"][0]["finish_reason"] == "stop"


def test_non_stream_truncated_body(client: httpx.Client, fake: FakeOpenRouter) -> None:
    fake.enqueue("/chat/completions", Truncate())
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/chat/completions", json=chat_body())
    assert fake.completions == []


def test_audio_output_streams_base64_fragments(client: httpx.Client) -> None:
    body = {
        **chat_body("say hi"),
        "model": "openai/gpt-4o-audio-preview",
        "modalities": ["text", "audio"],
        "audio": {"voice": "alloy", "format": "wav"},
    }
    assert client.post("/chat/completions", json=body).status_code == 400  # streaming is required
    _, pieces = stream(client, body)
    _, events = parse_sse(b"".join(pieces))
    audio = [
        e["choices"][0]["delta"]["audio"]
        for e in events[:-1]
        if e["choices"] and "audio" in e["choices"][0]["delta"]
    ]
    transcript = "".join(a.get("transcript", "") for a in audio)
    wav = base64.b64decode("".join(a.get("data", "") for a in audio))
    assert transcript == "Echo: say hi" and wav[:4] == b"RIFF" and wav[8:12] == b"WAVE"


def test_aborted_generation_is_marked_cancelled(
    fake: FakeOpenRouter, client: httpx.Client, clock: Clock
) -> None:
    fake.enqueue("/chat/completions", Stall(seconds=5, after_tokens=1))
    with client.stream("POST", "/chat/completions", json=chat_body("a b c", stream=True)) as r:
        gen_id = r.headers["x-generation-id"]
        next(r.iter_raw())
    for _ in range(200):
        if fake.aborted:
            break
        threading.Event().wait(0.02)
    assert fake.aborted == [gen_id]
    clock.now += 2
    data = client.get("/generation", params={"id": gen_id}).json()["data"]
    assert data["cancelled"] is True and data["streamed"] is True


def test_offline_for_some_seconds_through_the_control_api(fake: FakeOpenRouter) -> None:
    control = fake.control_url
    assert httpx.post(control + "/offline", json={"seconds": 0.3}).json() == {"online": False}
    with pytest.raises(httpx.ConnectError):
        httpx.get(fake.base_url + "/models")
    for _ in range(200):
        if fake.online:
            break
        threading.Event().wait(0.02)
    assert httpx.get(fake.base_url + "/models").status_code == 200


def test_wrong_behaviour_for_a_path_fails_loudly(client: httpx.Client, fake: FakeOpenRouter) -> None:
    fake.enqueue("/chat/completions", VideoJob())
    response = client.post("/chat/completions", json=chat_body())
    assert response.status_code == 500 and "does not apply" in response.json()["error"]["message"]


def test_glob_paths_and_per_job_errors(client: httpx.Client, fake: FakeOpenRouter) -> None:
    job = client.post("/videos", json={"model": "google/veo-3.1", "prompt": "x"}).json()
    fake.enqueue("/videos/*", HttpError(500, "Internal Server Error"))
    assert client.get(f"/videos/{job['id']}").status_code == 500
    assert client.get(f"/videos/{job['id']}").status_code == 200
    assert client.get("/videos/job-unknown").status_code == 404


def test_process_handle_drives_the_control_api(fake_openrouter_process: FakeOpenRouterProcess) -> None:  # noqa: F811
    fake = fake_openrouter_process
    auth = {"Authorization": "Bearer sk-or-v1-" + "0" * 64}
    fake.enqueue("/chat/completions", StreamError(after_tokens=1, code="server_error"))
    fake.enqueue("/videos", VideoJob(outcome="failed"))
    with httpx.Client(base_url=fake.base_url, headers=auth) as c:
        with c.stream("POST", "/chat/completions", json=chat_body(stream=True)) as r:
            _, events = parse_sse(r.read())
        assert events[-1]["error"]["code"] == "server_error"
        job = c.post("/videos", json={"model": "google/veo-3.1", "prompt": "x"}).json()
        assert [c.get(job["polling_url"]).json()["status"] for _ in range(3)][-1] == "failed"
        fake.add_key("sk-or-v1-extra", limit=5)
        assert c.get("/key", headers={"Authorization": "Bearer sk-or-v1-extra"}).json()["data"]["limit"] == 5
        fake.revoke_key("sk-or-v1-extra")
        assert c.get("/key", headers={"Authorization": "Bearer sk-or-v1-extra"}).status_code == 401
        fake.go_offline()
        with pytest.raises(httpx.ConnectError):
            httpx.get(fake.base_url + "/models")
        fake.go_online()
        assert c.get("/models").status_code == 200
    assert fake.stats()["by_path"]["/videos/" + job["id"]] == {"200": 3}
    assert fake.completions() == [] and len(fake.requests()) == 8
    fake.reset()
    assert fake.requests() == []


def test_misc_endpoints(fake: FakeOpenRouter, client: httpx.Client) -> None:
    assert httpx.get(fake.base_url + "/models/user").status_code == 401
    assert client.get("/models/user").status_code == 200
    fake.add_key("sk-or-v1-mgmt", is_management_key=True, total_credits=50.0)
    credits = httpx.get(fake.base_url + "/credits", headers={"Authorization": "Bearer sk-or-v1-mgmt"}).json()
    assert credits == {"data": {"total_credits": 50.0, "total_usage": 0.0}}
    assert {m["id"] for m in client.get("/images/models").json()["data"]} >= {"google/gemini-2.5-flash-image"}
    fake.enqueue("/auth", HttpError(500, "Internal Server Error"))
    assert (
        httpx.get(fake.site_url + "/auth", params={"callback_url": "http://localhost:1/cb"}).status_code
        == 500
    )
    assert client.get("/generation").status_code == 400
    fake.enqueue("/chat/completions", Stall(seconds=0.05, then="close"))
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/chat/completions", json=chat_body())
    video_chat = client.post("/chat/completions", json={**chat_body(), "model": "google/veo-3.1"})
    assert video_chat.status_code == 400
    assert video_chat.json()["error"]["availability"]["code"] == "wrong_endpoint"


def test_in_band_error_can_carry_usage_and_a_stated_wait(client: httpx.Client, fake: FakeOpenRouter) -> None:
    fake.enqueue(
        "/chat/completions",
        StreamError(after_tokens=1, code=429, message="Token limit reached", usage=True,
                    metadata={"retry_after_seconds": 4}),
    )
    _, pieces = stream(client, chat_body())
    _, events = parse_sse(b"".join(pieces))
    error_chunk = events[-1]
    assert error_chunk["error"]["metadata"]["retry_after_seconds"] == 4
    usage = error_chunk["usage"]
    assert usage["completion_tokens"] == 1 and usage["cost"] > 0


def test_byok_answers_cost_zero_with_the_upstream_cost(client: httpx.Client, fake: FakeOpenRouter) -> None:
    fake.byok = True
    usage = client.post("/chat/completions", json=chat_body()).json()["usage"]
    assert usage["is_byok"] is True and usage["cost"] == 0
    assert usage["cost_details"]["upstream_inference_cost"] > 0
    _, pieces = stream(client, chat_body())
    _, events = parse_sse(b"".join(pieces))
    streamed = events[-2]["usage"]
    assert streamed["cost"] == 0 and streamed["cost_details"]["upstream_inference_cost"] > 0
