"""The OpenRouter client against real loopback HTTP servers.

Most tests use ``WireServer``, a tiny raw-socket HTTP server defined here whose handlers write exact bytes
(odd splits, stalls, truncation) and can observe the client hanging up. Integration tests against the shared
fake (``tests/fakes/openrouter.py``) live at the end of this file.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from backend.openrouter import (
    ChatResult,
    ImageDelta,
    KeepAlive,
    OpenRouterClient,
    ReasoningDelta,
    StreamFinished,
    StreamStarted,
    TextDelta,
    UpstreamError,
    parse_retry_after,
)

SENTINEL_KEY = "sk-or-v1-SENTINEL-0123456789abcdef0123456789abcdef"
OTHER_KEY_FRAGMENT = "SENTINEL-0123456789"

# ------------------------------------------------------------------------------------------------------------
# A raw loopback HTTP/1.1 server


@dataclass
class Recorded:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    def json(self) -> Any:
        return json.loads(self.body)


class Conn:
    """The server side of one request: write raw bytes, watch for the client hanging up."""

    def __init__(self, sock: socket.socket, server: WireServer) -> None:
        self.sock = sock
        self.server = server

    def send(self, data: bytes) -> bool:
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            self.server.client_closed.set()
            return False

    def respond(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        head = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", "Connection: close"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.send(("\r\n".join(head) + "\r\n\r\n").encode() + body)

    def json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self.respond(
            status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})}
        )

    def start_sse(self, headers: dict[str, str] | None = None) -> None:
        # No Content-Length and Connection: close, so the end of the body is the socket closing.
        head = ["HTTP/1.1 200 OK", "Content-Type: text/event-stream", "Connection: close"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.send(("\r\n".join(head) + "\r\n\r\n").encode())

    def send_pieces(self, data: bytes, sizes: tuple[int, ...] = (1, 2, 3, 5, 7)) -> None:
        pos, i = 0, 0
        while pos < len(data):
            size = sizes[i % len(sizes)]
            if not self.send(data[pos : pos + size]):
                return
            pos += size
            i += 1

    def wait_for_hangup(self, timeout: float = 10.0) -> bool:
        """Block until the client closes the connection (True) or ``timeout`` passes (False)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                if not self.sock.recv(4096):
                    self.server.client_closed.set()
                    return True
        except TimeoutError:
            return False
        except OSError:
            self.server.client_closed.set()
            return True


Handler = Callable[[Recorded, Conn], None]


class WireServer:
    """A threaded HTTP server on 127.0.0.1; ``handler(request, conn)`` writes the answer."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[Recorded] = []
        self.client_closed = threading.Event()
        self.handler_done = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/api/v1"

    def _serve(self) -> None:
        while not self._stop:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(sock,), daemon=True).start()

    def _handle(self, sock: socket.socket) -> None:
        with sock:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            while len(rest) < length:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                rest += chunk
            request = Recorded(method, target, headers, rest)
            self.requests.append(request)
            try:
                self.handler(request, Conn(sock, self))
            finally:
                self.handler_done.set()

    def close(self) -> None:
        self._stop = True
        self._listener.close()


@pytest.fixture
def wire():
    servers: list[WireServer] = []

    def make(handler: Handler) -> WireServer:
        server = WireServer(handler)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def run(coro):
    return asyncio.run(coro)


async def with_client(base_url: str, fn, **kwargs):
    client = OpenRouterClient(base_url, **kwargs)
    try:
        return await fn(client)
    finally:
        await client.aclose()


def capture_error(base_url: str, fn, **kwargs) -> UpstreamError:
    async def go(client):
        with pytest.raises(UpstreamError) as info:
            await fn(client)
        return info.value

    err = run(with_client(base_url, go, **kwargs))
    ALL_ERRORS.append(err)
    return err


ALL_ERRORS: list[UpstreamError] = []


def sse(payload: Any) -> bytes:
    text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {text}\n\n".encode()


def chunk(content: str | None = None, *, finish: str | None = None, **delta: Any) -> dict:
    d = dict(delta)
    if content is not None:
        d["content"] = content
    return {
        "id": "gen-1-abc",
        "model": "openai/gpt-4o",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": d, "finish_reason": finish}],
    }


USAGE_CHUNK = {
    "id": "gen-1-abc",
    "choices": [],
    "usage": {"prompt_tokens": 9, "completion_tokens": 3, "cost": 0.0002},
}
KEEPALIVE = b": OPENROUTER PROCESSING\n\n"


def full_stream(text_parts: list[str]) -> bytes:
    out = KEEPALIVE + KEEPALIVE + sse(chunk("", role="assistant"))
    for i, part in enumerate(text_parts):
        out += sse(chunk(part, finish="stop" if i == len(text_parts) - 1 else None))
    return out + sse(USAGE_CHUNK) + sse("[DONE]")


async def collect(client: OpenRouterClient, body: dict | None = None, key: str = SENTINEL_KEY) -> list:
    events = []
    async with contextlib.aclosing(
        client.chat_stream(key, body or {"model": "openai/gpt-4o", "messages": []})
    ) as s:
        async for event in s:
            events.append(event)
    return events


def stream_error(base_url: str, **kwargs) -> tuple[UpstreamError, list]:
    received: list = []

    async def go(client):
        with pytest.raises(UpstreamError) as info:
            async with contextlib.aclosing(
                client.chat_stream(SENTINEL_KEY, {"model": "openai/gpt-4o", "messages": []})
            ) as s:
                async for event in s:
                    received.append(event)
        return info.value

    err = run(with_client(base_url, go, **kwargs))
    ALL_ERRORS.append(err)
    return err, received


CHAT_BODY = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50}

# ------------------------------------------------------------------------------------------------------------
# Headers, auth, request shape


def test_chat_sends_key_and_attribution_headers_and_parses_result(wire) -> None:
    answer = {
        "id": "gen-42",
        "model": "openai/gpt-4o-2024",
        "provider": "OpenAI",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {
                    "role": "assistant",
                    "content": "Hello ✓",
                    "reasoning": "thinking",
                    "images": [
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                        {"image_url": {"url": "data:image/png;base64,AAAA"}},
                    ],
                },
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 4, "cost": 0.00014, "future_field": {"x": 1}},
        "unknown_top_level": True,
    }
    server = wire(lambda req, conn: conn.json(200, answer, {"X-Generation-Id": "gen-42"}))
    result = run(
        with_client(
            server.base_url,
            lambda c: c.chat(SENTINEL_KEY, {**CHAT_BODY, "stream": True}),
            app_url="https://example.org/atelier",
            app_title="Atelier Test",
            categories="creative-writing",
        )
    )
    assert isinstance(result, ChatResult)
    assert result.text == "Hello ✓" and result.reasoning == "thinking"
    assert result.images == ["data:image/png;base64,iVBORw0KGgo=", "data:image/png;base64,AAAA"]
    assert result.upstream_id == "gen-42" and result.model == "openai/gpt-4o-2024"
    assert result.finish_reason == "stop"
    assert result.usage is not None and result.usage.cost_usd == pytest.approx(0.00014)
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (10, 4)
    assert result.usage.raw["future_field"] == {"x": 1}

    (req,) = server.requests
    assert (req.method, req.path) == ("POST", "/api/v1/chat/completions")
    assert req.headers["authorization"] == f"Bearer {SENTINEL_KEY}"
    assert req.headers["http-referer"] == "https://example.org/atelier"
    assert req.headers["x-openrouter-title"] == "Atelier Test"
    assert req.headers["x-title"] == "Atelier Test"
    assert req.headers["x-openrouter-categories"] == "creative-writing"
    assert req.headers["content-type"] == "application/json"
    sent = req.json()
    assert "stream" not in sent  # chat() is the non-streamed call whatever the body says
    assert sent["max_tokens"] == 50 and sent["messages"] == CHAT_BODY["messages"]
    assert SENTINEL_KEY not in req.target


def test_get_key_info_models_and_video_models(wire) -> None:
    def handler(req: Recorded, conn: Conn) -> None:
        if req.path == "/api/v1/key":
            conn.json(200, {"data": {"label": "sk-or-v1-abc...", "limit": None, "usage": 1.5}})
        elif req.path == "/api/v1/models":
            conn.json(200, {"data": [{"id": "a/b", "output": req.target}], "links": {"next": None}})
        elif req.path == "/api/v1/videos/models":
            conn.json(200, {"data": [{"id": "google/veo-3.1"}, "junk"]})

    server = wire(handler)

    async def go(client: OpenRouterClient):
        return (
            await client.get_key_info(SENTINEL_KEY),
            await client.list_models("image"),
            await client.video_models(SENTINEL_KEY),
        )

    info, models, videos = run(with_client(server.base_url, go))
    assert info == {"label": "sk-or-v1-abc...", "limit": None, "usage": 1.5}
    assert models[0]["output"] == "/api/v1/models?output_modalities=image"
    assert videos == [{"id": "google/veo-3.1"}]
    assert "authorization" not in server.requests[1].headers  # list_models without a key sends none
    assert server.requests[2].headers["authorization"] == f"Bearer {SENTINEL_KEY}"


def test_get_key_info_401_is_invalid_key(wire) -> None:
    server = wire(lambda req, conn: conn.json(401, {"error": {"code": 401, "message": "User not found."}}))
    err = capture_error(server.base_url, lambda c: c.get_key_info(SENTINEL_KEY))
    assert (err.code, err.disposition, err.upstream_status) == ("invalid_key", "reject", 401)
    assert "Paste a new key in Settings" in err.message


# ------------------------------------------------------------------------------------------------------------
# HTTP error forms


RAW_OBJECT = {"error": {"message": "Upstream says: model overloaded, try later", "type": "overloaded"}}
HTTP_CASES = [
    # (status, body, headers, expected code, expected disposition)
    (
        400,
        {"error": {"code": 400, "message": "acme/fake-1.0 is not a valid model ID"}},
        {},
        "model_not_found",
        "reject",
    ),
    (
        400,
        {
            "error": {
                "code": 400,
                "message": "too long",
                "metadata": {"error_type": "context_length_exceeded"},
            }
        },
        {},
        "context_too_long",
        "reject",
    ),
    (400, {"error": {"code": 400, "message": "bad temperature"}}, {}, "bad_request", "reject"),
    (401, {"error": {"code": 401, "message": "No auth credentials found"}}, {}, "invalid_key", "reject"),
    (
        402,
        {
            "error": {
                "code": 402,
                "message": "This request requires more credits",
                "metadata": {"provider_name": None},
            }
        },
        {},
        "insufficient_credits",
        "reject",
    ),
    (
        403,
        {
            "error": {
                "code": 403,
                "message": "flagged",
                "metadata": {"reasons": ["violence"], "flagged_input": "…", "provider_name": "OpenAI"},
            }
        },
        {},
        "content_blocked",
        "reject",
    ),
    (
        404,
        {
            "error": {
                "code": 404,
                "message": "No endpoints found",
                "error_type": "not_found",
                "http_status": 404,
                "availability": {"code": "no_endpoints", "retryable": False, "requested_models": ["x/y"]},
            }
        },
        {},
        "model_not_found",
        "reject",
    ),
    (
        408,
        {"error": {"code": 408, "message": "Operation timed out. Please try again later."}},
        {},
        "timeout",
        "retry",
    ),
    (413, {"error": {"code": 413, "message": "Payload too large"}}, {}, "bad_request", "reject"),
    (422, {"error": {"code": 422, "message": "Unprocessable"}}, {}, "bad_request", "reject"),
    (
        429,
        {"error": {"code": 429, "message": "Rate limit exceeded: free-models-per-min"}},
        {
            "Retry-After": "7",
            "X-RateLimit-Limit": "20",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": "1791331200000",
        },
        "rate_limited",
        "retry",
    ),
    (500, {"error": {"code": 500, "message": "Internal Server Error"}}, {}, "upstream_unavailable", "retry"),
    (
        502,
        {
            "error": {
                "code": 502,
                "message": "Provider returned error",
                "metadata": {"provider_name": "X", "raw": "boom"},
            }
        },
        {},
        "upstream_unavailable",
        "retry",
    ),
    (503, {"error": {"code": 503, "message": "No available providers"}}, {}, "upstream_unavailable", "retry"),
    (504, {"error": {"code": 504, "message": "Gateway timeout"}}, {}, "timeout", "retry"),
    (
        524,
        {"error": {"code": 524, "message": "Request timed out. Please try again later."}},
        {},
        "timeout",
        "retry",
    ),
    (529, {"error": {"code": 529, "message": "Provider overloaded"}}, {}, "upstream_unavailable", "retry"),
    (
        400,
        {"error": {"code": "400", "message": "bad", "metadata": {"error_type": "invalid_image"}}},
        {},
        "bad_request",
        "reject",
    ),
]


@pytest.mark.parametrize(("status", "body", "headers", "code", "disposition"), HTTP_CASES)
def test_http_errors_are_classified(wire, status, body, headers, code, disposition) -> None:
    server = wire(lambda req, conn: conn.json(status, body, headers))
    err = capture_error(server.base_url, lambda c: c.chat(SENTINEL_KEY, CHAT_BODY))
    assert (err.code, err.disposition, err.upstream_status) == (code, disposition, status)
    assert err.message and not err.output_started


@pytest.mark.parametrize(("status", "body", "headers", "code", "disposition"), HTTP_CASES)
def test_http_errors_before_a_stream_are_classified_the_same(
    wire, status, body, headers, code, disposition
) -> None:
    server = wire(lambda req, conn: conn.json(status, body, headers))
    err, received = stream_error(server.base_url)
    assert (err.code, err.disposition, err.upstream_status) == (code, disposition, status)
    assert received == []


def test_human_messages(wire) -> None:
    cases = {
        401: "OpenRouter rejected the API key (revoked or mistyped). Paste a new key in Settings.",
        402: "Not enough OpenRouter credits for this request. Add credits at https://openrouter.ai/credits "
        "or lower max tokens.",
    }
    for status, message in cases.items():
        server = wire(lambda req, conn, s=status: conn.json(s, {"error": {"code": s, "message": "nope"}}))
        assert capture_error(server.base_url, lambda c: c.chat(SENTINEL_KEY, CHAT_BODY)).message == message
    server = wire(
        lambda req, conn: conn.json(400, {"error": {"code": 400, "message": "x/y is not a valid model ID"}})
    )
    err = capture_error(server.base_url, lambda c: c.chat(SENTINEL_KEY, {**CHAT_BODY, "model": "x/y"}))
    assert err.message == "OpenRouter does not know the model 'x/y'. Pick another model."


@pytest.mark.parametrize(
    "raw",
    [
        "model overloaded, try later",
        json.dumps(RAW_OBJECT),
        RAW_OBJECT,
    ],
)
def test_metadata_raw_gives_a_better_message(wire, raw) -> None:
    body = {
        "error": {
            "code": 502,
            "message": "Provider returned error",
            "metadata": {"provider_name": "Acme", "raw": raw},
        }
    }
    server = wire(lambda req, conn: conn.json(502, body))
    err = capture_error(server.base_url, lambda c: c.chat(SENTINEL_KEY, CHAT_BODY))
    assert "model overloaded, try later" in err.message
    assert "Acme" in err.message
    assert err.metadata["provider_name"] == "Acme"


def test_availability_error_with_fields_at_error_level(wire) -> None:
    body = {
        "error": {
            "code": 503,
            "message": "Temporarily unavailable",
            "error_type": "provider_unavailable",
            "http_status": 503,
            "availability": {"code": "temporarily_unavailable", "retryable": True, "retry_after": 12},
        }
    }
    server = wire(lambda req, conn: conn.json(503, body))
    err = capture_error(server.base_url, lambda c: c.chat(SENTINEL_KEY, CHAT_BODY))
    assert (err.code, err.disposition, err.retry_after) == ("upstream_unavailable", "retry", 12.0)
    assert err.metadata["availability"]["code"] == "temporarily_unavailable"


def test_deprecated_model_suggests_fallbacks(wire) -> None:
    body = {
        "error": {
            "code": 404,
            "message": "deprecated",
            "availability": {
                "code": "model_deprecated",
                "retryable": False,
                "fallback_models": ["new/model"],
            },
        }
    }
    server = wire(lambda req, conn: conn.json(404, body))
    err = capture_error(server.base_url, lambda c: c.chat(SENTINEL_KEY, {**CHAT_BODY, "model": "old/model"}))
    assert err.code == "model_not_found" and "'old/model' has been retired" in err.message
    assert "new/model" in err.message


def test_retry_after_http_date_and_rate_limit_metadata(wire) -> None:
    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    server = wire(
        lambda req, conn: conn.json(
            429,
            {
                "error": {
                    "code": 429,
                    "message": "slow down",
                    "metadata": {"headers": {"X-RateLimit-Reset": "1791331200"}},
                }
            },
            {"Retry-After": when},
        )
    )
    err = capture_error(server.base_url, lambda c: c.chat(SENTINEL_KEY, CHAT_BODY))
    assert err.code == "rate_limited"
    assert err.retry_after is not None and 60 < err.retry_after <= 121
    assert err.metadata["rate_limit"]["reset_at"] == 1791331200.0


def test_retry_after_seconds_and_ms_reset(wire) -> None:
    headers = {
        "Retry-After": "7",
        "X-RateLimit-Limit": "20",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "1791331200000",
    }
    server = wire(lambda req, conn: conn.json(429, {"error": {"code": 429, "message": "x"}}, headers))
    err = capture_error(server.base_url, lambda c: c.chat(SENTINEL_KEY, CHAT_BODY))
    assert err.retry_after == 7.0
    assert err.metadata["rate_limit"] == {"limit": 20, "remaining": 0, "reset_at": 1791331200.0}


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("nan") is None


@pytest.mark.parametrize("status", [404, 502])
def test_html_error_bodies(wire, status) -> None:
    page = b"<!DOCTYPE html><html><head><title>Not here</title></head><body>oops</body></html>"
    server = wire(lambda req, conn: conn.respond(status, page, {"Content-Type": "text/html"}))
    err = capture_error(server.base_url, lambda c: c.chat(SENTINEL_KEY, CHAT_BODY))
    assert err.upstream_status == status
    if status == 404:
        assert (err.code, err.disposition) == ("bad_request", "reject")
        assert "base URL" in err.message
    else:
        assert (err.code, err.disposition) == ("upstream_unavailable", "retry")
    assert "<html" not in err.message


# ------------------------------------------------------------------------------------------------------------
# 200 answers that are not successes


@pytest.mark.parametrize(
    ("error", "code", "disposition"),
    [
        (
            {"code": 502, "message": "This content was flagged for possible cybersecurity risk"},
            "upstream_unavailable",
            "retry",
        ),
        ({"code": "server_error", "message": "Generation failed"}, "upstream_unavailable", "retry"),
        ({"code": 402, "message": "Insufficient credits"}, "insufficient_credits", "reject"),
    ],
)
def test_200_with_error_body(wire, error, code, disposition) -> None:
    server = wire(lambda req, conn: conn.json(200, {"error": error, "user_id": "user_x"}))
    err = capture_error(server.base_url, lambda c: c.chat(SENTINEL_KEY, CHAT_BODY))
    assert (err.code, err.disposition, err.output_started) == (code, disposition, False)


def test_choice_level_error_keeps_partial_text(wire) -> None:
    answer = {
        "id": "gen-7",
        "choices": [
            {
                "index": 0,
                "finish_reason": "error",
                "error": {
                    "code": 502,
                    "message": "provider died",
                    "metadata": {"error_type": "provider_unavailable"},
                },
                "message": {"role": "assistant", "content": "Once upon a ti"},
            }
        ],
    }
    server = wire(lambda req, conn: conn.json(200, answer))
    err = capture_error(server.base_url, lambda c: c.chat(SENTINEL_KEY, CHAT_BODY))
    assert (err.code, err.disposition, err.output_started) == ("stream_broken", "reject", True)
    assert err.partial_text == "Once upon a ti"
    assert err.metadata["generation_id"] == "gen-7"


def test_choice_level_error_without_content_is_retryable(wire) -> None:
    answer = {
        "choices": [
            {"finish_reason": "error", "error": {"code": 502, "message": "x"}, "message": {"content": ""}}
        ]
    }
    server = wire(lambda req, conn: conn.json(200, answer))
    err = capture_error(server.base_url, lambda c: c.chat(SENTINEL_KEY, CHAT_BODY))
    assert (err.code, err.disposition, err.output_started) == ("upstream_unavailable", "retry", False)


@pytest.mark.parametrize(
    "answer",
    [
        {"id": "gen-1", "choices": []},
        {"id": "gen-1", "choices": [{"finish_reason": "stop", "message": {"content": ""}}]},
        {"id": "gen-1", "choices": [{"finish_reason": "stop", "message": {"content": None}}]},
    ],
)
def test_empty_answers(wire, answer) -> None:
    server = wire(lambda req, conn: conn.json(200, answer))
    err = capture_error(server.base_url, lambda c: c.chat(SENTINEL_KEY, CHAT_BODY))
    assert (err.code, err.disposition) == ("empty_response", "retry")


def test_content_filter_without_content_is_blocked(wire) -> None:
    answer = {"choices": [{"finish_reason": "content_filter", "message": {"content": ""}}]}
    server = wire(lambda req, conn: conn.json(200, answer))
    err = capture_error(server.base_url, lambda c: c.chat(SENTINEL_KEY, CHAT_BODY))
    assert (err.code, err.disposition) == ("content_blocked", "reject")


def test_reasoning_only_answer_is_not_empty(wire) -> None:
    answer = {"choices": [{"finish_reason": "length", "message": {"content": None, "reasoning": "hmm"}}]}
    server = wire(lambda req, conn: conn.json(200, answer))
    result = run(with_client(server.base_url, lambda c: c.chat(SENTINEL_KEY, CHAT_BODY)))
    assert (result.text, result.reasoning, result.finish_reason) == ("", "hmm", "length")


def test_200_that_is_not_json(wire) -> None:
    server = wire(
        lambda req, conn: conn.respond(200, b"<html>captive portal</html>", {"Content-Type": "text/html"})
    )
    err = capture_error(server.base_url, lambda c: c.chat(SENTINEL_KEY, CHAT_BODY))
    assert (err.code, err.disposition) == ("upstream_error", "retry")


# ------------------------------------------------------------------------------------------------------------
# Transport failures


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return s.getsockname()[1]


def test_connection_refused_is_network_retry() -> None:
    err = capture_error(f"http://127.0.0.1:{free_port()}/api/v1", lambda c: c.chat(SENTINEL_KEY, CHAT_BODY))
    assert (err.code, err.disposition) == ("network", "retry")
    assert err.message == (
        "OpenRouter cannot be reached; Atelier keeps the request and sends it when the connection is back."
    )
    stream_err, _ = stream_error(f"http://127.0.0.1:{free_port()}/api/v1")
    assert (stream_err.code, stream_err.disposition) == ("network", "retry")


def test_a_socket_gone_while_connecting_is_network_retry(monkeypatch) -> None:
    """The server closes a new connection before httpcore has set it up: the layer under httpx then fails on the
    vanished socket with an AttributeError instead of a ConnectError. Nothing was sent: network, retry (it
    failed a batch item as "unexpected" before)."""
    import httpcore
    from httpcore._async.connection import AsyncHTTPConnection

    class Gone(httpcore.AsyncNetworkStream):
        def get_extra_info(self, info: str) -> Any:
            raise AttributeError("'NoneType' object has no attribute 'getpeername'")

        async def aclose(self) -> None:
            return None

    async def connect(self, request):
        return Gone()

    monkeypatch.setattr(AsyncHTTPConnection, "_connect", connect)
    err = capture_error(f"http://127.0.0.1:{free_port()}/api/v1", lambda c: c.chat(SENTINEL_KEY, CHAT_BODY))
    assert (err.code, err.disposition) == ("network", "retry")
    stream_err, _ = stream_error(f"http://127.0.0.1:{free_port()}/api/v1")
    assert (stream_err.code, stream_err.disposition) == ("network", "retry")


def test_an_attribute_error_of_atelier_itself_is_not_taken_for_the_network() -> None:
    """Only failures raised inside the network layer are mapped; a bug of Atelier's own stays a bug."""
    class Broken(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            raise AttributeError("a bug")

    async def go() -> None:
        async with OpenRouterClient("http://127.0.0.1:9/api/v1", transport=Broken()) as client:
            await client.chat(SENTINEL_KEY, CHAT_BODY)

    with pytest.raises(AttributeError, match="a bug"):
        run(go())


def test_read_timeout_after_sending_is_unknown(wire) -> None:
    server = wire(lambda req, conn: conn.wait_for_hangup())
    err = capture_error(server.base_url, lambda c: c.chat(SENTINEL_KEY, CHAT_BODY), read_timeout=0.3)
    assert (err.code, err.disposition) == ("timeout", "unknown")


def test_read_timeout_on_a_get_is_retryable(wire) -> None:
    server = wire(lambda req, conn: conn.wait_for_hangup())
    err = capture_error(server.base_url, lambda c: c.get_video(SENTINEL_KEY, "job-1"), read_timeout=0.3)
    assert (err.code, err.disposition) == ("timeout", "retry")


def test_connection_dropped_after_request_is_unknown(wire) -> None:
    server = wire(lambda req, conn: None)  # reads the request, then closes without answering
    err = capture_error(server.base_url, lambda c: c.chat(SENTINEL_KEY, CHAT_BODY))
    assert (err.code, err.disposition) == ("network", "unknown")


def test_body_cut_short_is_unknown(wire) -> None:
    def handler(req: Recorded, conn: Conn) -> None:
        conn.send(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"id": ')

    server = wire(handler)
    err = capture_error(server.base_url, lambda c: c.chat(SENTINEL_KEY, CHAT_BODY))
    assert (err.code, err.disposition) == ("network", "unknown")


def test_tls_failure_is_reported_as_certificate_problem(tmp_path) -> None:
    import ssl
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        with contextlib.suppress(OSError):
            sock, _ = listener.accept()
            with (
                contextlib.suppress(OSError, ssl.SSLError),
                server_ctx.wrap_socket(sock, server_side=True) as tls,
            ):
                tls.recv(1024)

    threading.Thread(target=serve, daemon=True).start()
    try:
        # Default SSL context: the OS trust store, which does not know this self-signed certificate.
        err = capture_error(f"https://127.0.0.1:{port}/api/v1", lambda c: c.chat(SENTINEL_KEY, CHAT_BODY))
    finally:
        listener.close()
    assert (err.code, err.disposition) == ("network", "retry")
    assert err.metadata.get("tls") is True and "certificate" in err.message


# ------------------------------------------------------------------------------------------------------------
# Streaming


def test_stream_through_odd_byte_splits_with_keepalives(wire) -> None:
    parts = ["Grü", "ße 世界 ", "🎨", " done"]

    def handler(req: Recorded, conn: Conn) -> None:
        conn.start_sse({"X-Generation-Id": "gen-1-abc"})
        conn.send_pieces(full_stream(parts))

    server = wire(handler)
    events = run(with_client(server.base_url, collect))
    assert isinstance(events[0], KeepAlive) and isinstance(events[1], KeepAlive)
    assert events[2] == StreamStarted(upstream_id="gen-1-abc", model="openai/gpt-4o")
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "".join(parts)
    final = events[-1]
    assert isinstance(final, StreamFinished)
    assert final.finish_reason == "stop" and final.model == "openai/gpt-4o"
    assert final.usage is not None and final.usage.cost_usd == pytest.approx(0.0002)
    req = server.requests[0]
    assert req.json()["stream"] is True and req.headers["accept"] == "text/event-stream"


def test_stream_with_crlf_reasoning_and_images(wire) -> None:
    body = (
        KEEPALIVE
        + sse(chunk(reasoning="Let me think"))
        + sse(
            chunk("Here", images=[{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA="}}])
        )
        + sse(chunk(None, images=[{"image_url": {"url": "data:image/png;base64,BBB="}}], finish="stop"))
        + sse("[DONE]")
    ).replace(b"\n", b"\r\n")

    def handler(req: Recorded, conn: Conn) -> None:
        conn.start_sse()
        conn.send_pieces(body, (3, 1, 4, 1, 5, 9, 2, 6))

    server = wire(handler)
    events = run(with_client(server.base_url, collect))
    kinds = [type(e) for e in events]
    assert kinds == [
        KeepAlive,
        StreamStarted,
        ReasoningDelta,
        TextDelta,
        ImageDelta,
        ImageDelta,
        StreamFinished,
    ]
    assert [e.data_url for e in events if isinstance(e, ImageDelta)] == [
        "data:image/png;base64,AAA=",
        "data:image/png;base64,BBB=",
    ]


def test_in_band_error_before_first_token_is_retryable(wire) -> None:
    error_chunk = {
        "id": "gen-1-abc",
        "error": {
            "code": 502,
            "message": "Provider returned error",
            "metadata": {"error_type": "provider_unavailable"},
        },
        "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
    }

    def handler(req: Recorded, conn: Conn) -> None:
        conn.start_sse()
        conn.send(KEEPALIVE + KEEPALIVE + sse(error_chunk) + sse("[DONE]"))

    server = wire(handler)
    err, received = stream_error(server.base_url)
    assert (err.code, err.disposition, err.output_started) == ("upstream_unavailable", "retry", False)
    assert all(isinstance(e, KeepAlive) for e in received)


@pytest.mark.parametrize("with_done", [True, False])
@pytest.mark.parametrize("error_code", [429, "server_error"])
def test_in_band_error_after_tokens_is_stream_broken(wire, with_done, error_code) -> None:
    error_chunk = {
        "id": "gen-1-abc",
        "error": {
            "code": error_code,
            "message": "Rate limited mid-way",
            "metadata": {"error_type": "rate_limit_exceeded"},
        },
        "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
    }

    def handler(req: Recorded, conn: Conn) -> None:
        conn.start_sse()
        conn.send(
            sse(chunk("", role="assistant")) + sse(chunk("Partial ")) + sse(chunk("text")) + sse(error_chunk)
        )
        if with_done:
            conn.send(sse("[DONE]"))

    server = wire(handler)
    err, received = stream_error(server.base_url)
    assert (err.code, err.disposition, err.output_started) == ("stream_broken", "reject", True)
    assert "".join(e.text for e in received if isinstance(e, TextDelta)) == "Partial text"
    assert err.metadata["generation_id"] == "gen-1-abc"


def test_choice_level_stream_error_without_top_level_error(wire) -> None:
    bad = {
        "id": "g",
        "choices": [
            {"index": 0, "delta": {}, "finish_reason": "error", "error": {"code": 502, "message": "x"}}
        ],
    }

    def handler(req: Recorded, conn: Conn) -> None:
        conn.start_sse()
        conn.send(sse(chunk("a")) + sse(bad))

    server = wire(handler)
    err, _ = stream_error(server.base_url)
    assert (err.code, err.output_started) == ("stream_broken", True)


def test_truncated_stream_after_text_is_stream_broken(wire) -> None:
    def handler(req: Recorded, conn: Conn) -> None:
        conn.start_sse()
        conn.send(sse(chunk("", role="assistant")) + sse(chunk("Half an ans")) + b'data: {"id": "gen-1-ab')

    server = wire(handler)
    err, received = stream_error(server.base_url)
    assert (err.code, err.disposition, err.output_started) == ("stream_broken", "reject", True)
    assert [e.text for e in received if isinstance(e, TextDelta)] == ["Half an ans"]


def test_truncated_stream_before_text_is_unknown(wire) -> None:
    def handler(req: Recorded, conn: Conn) -> None:
        conn.start_sse()
        conn.send(KEEPALIVE + sse(chunk("", role="assistant")))

    server = wire(handler)
    err, _ = stream_error(server.base_url)
    assert (err.code, err.disposition, err.output_started) == ("stream_broken", "unknown", False)


def test_stream_ending_with_finish_reason_but_no_done_is_complete(wire) -> None:
    def handler(req: Recorded, conn: Conn) -> None:
        conn.start_sse()
        conn.send(sse(chunk("All", finish="stop")) + sse(USAGE_CHUNK))

    server = wire(handler)
    events = run(with_client(server.base_url, collect))
    assert isinstance(events[-1], StreamFinished) and events[-1].usage is not None


@pytest.mark.parametrize(
    "body",
    [
        KEEPALIVE
        + sse({"id": "g", "choices": [], "usage": {"prompt_tokens": 3, "cost": 0.0}})
        + sse("[DONE]"),
        sse(chunk("", role="assistant")) + sse(chunk("", finish="stop")) + sse("[DONE]"),
    ],
)
def test_empty_stream_is_empty_response(wire, body) -> None:
    def handler(req: Recorded, conn: Conn) -> None:
        conn.start_sse()
        conn.send(body)

    server = wire(handler)
    err, _ = stream_error(server.base_url)
    assert (err.code, err.disposition) == ("empty_response", "retry")


def test_json_answer_to_a_stream_request_is_converted(wire) -> None:
    answer = {
        "id": "gen-9",
        "model": "m/x",
        "choices": [{"finish_reason": "stop", "message": {"content": "whole"}}],
    }
    server = wire(lambda req, conn: conn.json(200, answer))
    events = run(with_client(server.base_url, collect))
    assert [type(e) for e in events] == [StreamStarted, TextDelta, StreamFinished]
    server2 = wire(lambda req, conn: conn.json(200, {"error": {"code": 503, "message": "busy"}}))
    err, _ = stream_error(server2.base_url)
    assert (err.code, err.disposition) == ("upstream_unavailable", "retry")


def test_idle_timeout_on_a_stalled_stream(wire) -> None:
    def handler(req: Recorded, conn: Conn) -> None:
        conn.start_sse()
        conn.send(sse(chunk("", role="assistant")) + sse(chunk("Start")))
        conn.wait_for_hangup()

    server = wire(handler)
    err, received = stream_error(server.base_url, stream_idle_timeout=0.3)
    assert (err.code, err.disposition, err.output_started) == ("timeout", "reject", True)
    assert [e.text for e in received if isinstance(e, TextDelta)] == ["Start"]
    assert server.client_closed.wait(10)


def test_keepalives_reset_the_idle_timeout(wire) -> None:
    # 0.05 s between keep-alives against a 1 s idle timeout: the stream survives past 1 s in total.
    def handler(req: Recorded, conn: Conn) -> None:
        conn.start_sse()
        for _ in range(30):
            conn.send(KEEPALIVE)
            time.sleep(0.05)
        conn.send(sse(chunk("ok", finish="stop")) + sse("[DONE]"))

    server = wire(handler)
    events = run(with_client(server.base_url, collect, stream_idle_timeout=1.0))
    assert sum(isinstance(e, KeepAlive) for e in events) == 30
    assert isinstance(events[-1], StreamFinished)


def endless_stream(req: Recorded, conn: Conn) -> None:
    conn.start_sse()
    conn.send(sse(chunk("", role="assistant")) + sse(chunk("first")))
    while conn.send(KEEPALIVE):  # keep going until the client hangs up
        time.sleep(0.02)


def test_aclose_closes_the_upstream_socket(wire) -> None:
    server = wire(endless_stream)

    async def go(client: OpenRouterClient) -> None:
        stream = client.chat_stream(SENTINEL_KEY, CHAT_BODY)
        async for event in stream:
            if isinstance(event, TextDelta):
                break
        await stream.aclose()

    run(with_client(server.base_url, go))
    assert server.client_closed.wait(10)


def test_cancelling_the_task_closes_the_upstream_socket(wire) -> None:
    server = wire(endless_stream)

    async def go(client: OpenRouterClient) -> None:
        got_text = asyncio.Event()

        async def consume() -> None:
            async with contextlib.aclosing(client.chat_stream(SENTINEL_KEY, CHAT_BODY)) as stream:
                async for event in stream:
                    if isinstance(event, TextDelta):
                        got_text.set()

        task = asyncio.create_task(consume())
        await got_text.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The hang-up is observed while the client is still open: it was the cancel, not aclose().
        assert await asyncio.to_thread(server.client_closed.wait, 10)

    run(with_client(server.base_url, go))


# ------------------------------------------------------------------------------------------------------------
# Redirects, other hosts, downloads, video


def test_api_calls_do_not_follow_redirects(wire) -> None:
    elsewhere = wire(lambda req, conn: conn.json(200, {"data": {"label": "stolen"}}))
    server = wire(lambda req, conn: conn.respond(302, b"", {"Location": f"{elsewhere.base_url}/key"}))
    err = capture_error(server.base_url, lambda c: c.get_key_info(SENTINEL_KEY))
    assert (err.code, err.disposition, err.upstream_status) == ("upstream_error", "retry", 302)
    assert "redirect" in err.message
    assert elsewhere.requests == []


def test_video_polling_relative_and_absolute_urls(wire) -> None:
    other = wire(lambda req, conn: conn.json(200, {"id": "job-1", "status": "in_progress"}))

    def handler(req: Recorded, conn: Conn) -> None:
        if req.method == "POST":
            conn.json(202, {"id": "job-1", "polling_url": "/api/v1/videos/job-1", "status": "pending"})
        else:
            conn.json(
                200, {"id": "job-1", "status": "completed", "unsigned_urls": ["x"], "usage": {"cost": 0.25}}
            )

    server = wire(handler)

    async def go(client: OpenRouterClient):
        job = await client.submit_video(SENTINEL_KEY, {"model": "google/veo-3.1", "prompt": "a dog"})
        relative = await client.get_video(SENTINEL_KEY, job["id"], job["polling_url"])
        absolute = await client.get_video(SENTINEL_KEY, "job-1", f"{server.base_url}/videos/job-1")
        default = await client.get_video(SENTINEL_KEY, "job/1 ?")
        foreign = await client.get_video(SENTINEL_KEY, "job-1", f"{other.base_url}/videos/job-1")
        return job, relative, absolute, default, foreign

    job, relative, absolute, default, foreign = run(with_client(server.base_url, go))
    assert job["status"] == "pending"
    assert relative["status"] == absolute["status"] == default["status"] == "completed"
    assert foreign["status"] == "in_progress"
    posts, *gets = server.requests
    assert posts.path == "/api/v1/videos" and posts.json()["prompt"] == "a dog"
    assert [g.target for g in gets] == [
        "/api/v1/videos/job-1",
        "/api/v1/videos/job-1",
        "/api/v1/videos/job%2F1%20%3F",
    ]
    assert all(r.headers["authorization"] == f"Bearer {SENTINEL_KEY}" for r in server.requests)
    assert "authorization" not in other.requests[0].headers


def test_non_http_polling_url_is_refused(wire) -> None:
    server = wire(lambda req, conn: conn.json(200, {}))
    for url in ("file:///etc/passwd", "javascript:alert(1)", "ftp://example.org/x"):
        err = capture_error(server.base_url, lambda c, u=url: c.get_video(SENTINEL_KEY, "job", u))
        assert (err.code, err.disposition) == ("bad_request", "reject")
    assert server.requests == []


def test_video_poll_404_and_submit_errors(wire) -> None:
    server = wire(lambda req, conn: conn.json(404, {"error": {"code": 404, "message": "Job not found"}}))
    err = capture_error(server.base_url, lambda c: c.get_video(SENTINEL_KEY, "job-x"))
    assert (err.code, err.disposition) == ("bad_request", "reject") and "video job" in err.message
    server2 = wire(lambda req, conn: conn.json(402, {"error": {"code": 402, "message": "more credits"}}))
    err2 = capture_error(
        server2.base_url, lambda c: c.submit_video(SENTINEL_KEY, {"model": "m", "prompt": "p"})
    )
    assert err2.code == "insufficient_credits"
    server3 = wire(lambda req, conn: None)
    err3 = capture_error(
        server3.base_url, lambda c: c.submit_video(SENTINEL_KEY, {"model": "m", "prompt": "p"})
    )
    assert err3.disposition == "unknown"  # the job may exist: the outbox must not submit it twice


async def read_all(client: OpenRouterClient, url: str, max_bytes: int, key: str = SENTINEL_KEY) -> bytes:
    out = b""
    async for piece in client.download(key, url, max_bytes=max_bytes):
        out += piece
    return out


def test_download_same_host_with_key_and_other_host_without(wire) -> None:
    payload = bytes(range(256)) * 40
    other = wire(lambda req, conn: conn.respond(200, payload, {"Content-Type": "video/mp4"}))
    server = wire(lambda req, conn: conn.respond(200, payload, {"Content-Type": "video/mp4"}))

    async def go(client: OpenRouterClient):
        return (
            await read_all(client, "/api/v1/videos/job-1/content?index=0", 1_000_000),
            await read_all(client, f"{other.origin}/files/v.mp4", 1_000_000),
        )

    same, foreign = run(with_client(server.base_url, go))
    assert same == foreign == payload
    assert server.requests[0].target == "/api/v1/videos/job-1/content?index=0"
    assert server.requests[0].headers["authorization"] == f"Bearer {SENTINEL_KEY}"
    assert "authorization" not in other.requests[0].headers


def test_download_redirect_to_other_host_drops_the_key(wire) -> None:
    storage = wire(lambda req, conn: conn.respond(200, b"video-bytes"))
    server = wire(lambda req, conn: conn.respond(302, b"", {"Location": f"{storage.origin}/signed/abc"}))
    data = run(with_client(server.base_url, lambda c: read_all(c, "videos/j/content", 1000)))
    assert data == b"video-bytes"
    assert server.requests[0].headers["authorization"] == f"Bearer {SENTINEL_KEY}"
    assert storage.requests[0].target == "/signed/abc"
    assert "authorization" not in storage.requests[0].headers


def test_download_size_cap_declared_and_streamed(wire) -> None:
    big = b"x" * 5000
    declared = wire(lambda req, conn: conn.respond(200, big))

    def undeclared_handler(req: Recorded, conn: Conn) -> None:
        conn.send(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
        for _ in range(50):
            if not conn.send(b"y" * 1000):
                return

    undeclared = wire(undeclared_handler)
    for server in (declared, undeclared):
        err = capture_error(server.base_url, lambda c, s=server: read_all(c, f"{s.origin}/f.mp4", 4096))
        assert (err.code, err.disposition) == ("upstream_error", "reject")
        assert err.metadata["max_bytes"] == 4096
    assert run(with_client(declared.base_url, lambda c: read_all(c, f"{declared.origin}/f", 5000))) == big


def test_download_errors(wire) -> None:
    server = wire(
        lambda req, conn: conn.json(401, {"error": {"code": 401, "message": "Missing Authentication header"}})
    )
    err = capture_error(server.base_url, lambda c: read_all(c, "videos/j/content", 100))
    assert err.code == "invalid_key"
    err = capture_error(server.base_url, lambda c: read_all(c, "data:video/mp4;base64,AAAA", 100))
    assert err.code == "bad_request"


# ------------------------------------------------------------------------------------------------------------
# Images


# ------------------------------------------------------------------------------------------------------------
# Probe, constructor


def test_probe(wire) -> None:
    server = wire(lambda req, conn: conn.respond(401, b"<html>no</html>"))
    assert run(with_client(server.base_url, lambda c: c.probe())) is True
    assert "authorization" not in server.requests[0].headers
    assert run(with_client(f"http://127.0.0.1:{free_port()}/api/v1", lambda c: c.probe())) is False


def test_base_url_must_be_http() -> None:
    with pytest.raises(ValueError):
        OpenRouterClient("ftp://openrouter.ai/api/v1")


def test_custom_transport_is_used() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"data": {"label": "k"}})

    info = run(
        with_client(
            "https://openrouter.ai/api/v1",
            lambda c: c.get_key_info(SENTINEL_KEY),
            transport=httpx.MockTransport(handle),
        )
    )
    assert info == {"label": "k"} and str(seen[0].url) == "https://openrouter.ai/api/v1/key"


def test_injected_transport_carries_every_request_even_with_proxy_variables(monkeypatch) -> None:
    # httpx would route around an injected transport through a proxy mount; the environment must not apply.
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, json={"data": [{"id": "openai/gpt-4o"}]})

    models = run(
        with_client("https://openrouter.ai/api/v1", lambda c: c.list_models(), transport=httpx.MockTransport(handle))
    )
    assert models == [{"id": "openai/gpt-4o"}] and seen == ["/api/v1/models"]


def test_transport_and_network_settings_are_exclusive() -> None:
    # A proxy would be mounted in front of the injected transport and bypass it; refuse the mix loudly.
    with pytest.raises(ValueError):
        OpenRouterClient(transport=httpx.MockTransport(lambda r: httpx.Response(200)), proxy="http://127.0.0.1:9")


# ------------------------------------------------------------------------------------------------------------
# Integration with the shared fake OpenRouter (tests/fakes/openrouter.py)

from tests.fakes.behaviours import (  # noqa: E402 - the fake is only needed from here on
    Body200Error,
    ChoiceError,
    EmptyChoices,
    HttpError,
    Stall,
    StreamError,
    StreamStyle,
    Truncate,
    VideoJob,
    capacity_exhausted,
    html_not_found,
    insufficient_credits,
    model_not_found,
    moderation,
    provider_error,
    rate_limited,
    unavailable,
)
from tests.fakes.openrouter import FakeOpenRouter  # noqa: E402

FAKE_KEY = "sk-or-v1-" + "5e" * 32
TEXT_MODEL = "openai/gpt-4o-mini"


@pytest.fixture
def fake():
    with FakeOpenRouter(
        keys={FAKE_KEY: {}}, token_delay=0.0, reply_text="Grüße aus 世界 🎨, line two"
    ) as server:
        yield server


def fake_body(**extra: Any) -> dict:
    return {
        "model": TEXT_MODEL,
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 64,
        **extra,
    }


async def fake_stream_events(client: OpenRouterClient) -> list:
    return await collect(client, fake_body(), key=FAKE_KEY)


def fake_stream_error(fake: FakeOpenRouter, **kwargs) -> tuple[UpstreamError, list]:
    received: list = []

    async def go(client):
        with pytest.raises(UpstreamError) as info:
            async with contextlib.aclosing(client.chat_stream(FAKE_KEY, fake_body())) as s:
                async for event in s:
                    received.append(event)
        return info.value

    err = run(with_client(fake.base_url, go, **kwargs))
    ALL_ERRORS.append(err)
    return err, received


def fake_chat_error(fake: FakeOpenRouter, **kwargs) -> UpstreamError:
    err = capture_error(fake.base_url, lambda c: c.chat(FAKE_KEY, fake_body(**kwargs)))
    return err


def test_fake_chat_and_attribution(fake) -> None:
    result = run(with_client(fake.base_url, lambda c: c.chat(FAKE_KEY, fake_body())))
    assert result.text == "Grüße aus 世界 🎨, line two"
    assert result.usage is not None and result.usage.cost_usd is not None and result.usage.cost_usd > 0
    assert result.upstream_id and result.upstream_id.startswith("gen-")
    (req,) = fake.requests
    assert req.referer == "https://github.com/atelier-studio/atelier"
    assert req.header("x-openrouter-title") == req.header("x-title") == "Atelier"
    assert req.categories == ["creative-writing", "image-gen"]
    assert [c.id for c in fake.completions] == [result.upstream_id]


@pytest.mark.parametrize(
    "style",
    [
        StreamStyle(split="odd", keepalives_before=2, keepalive_every=2),
        StreamStyle(split="byte", crlf=True),
        StreamStyle(split="random", seed=7, framing="close"),
    ],
)
def test_fake_stream_with_odd_splits(fake, style) -> None:
    fake.stream_style = style
    events = run(with_client(fake.base_url, fake_stream_events))
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Grüße aus 世界 🎨, line two"
    assert sum(isinstance(e, StreamStarted) for e in events) == 1
    assert any(isinstance(e, KeepAlive) for e in events)
    final = events[-1]
    assert isinstance(final, StreamFinished) and final.usage is not None and final.usage.cost_usd is not None
    started = next(e for e in events if isinstance(e, StreamStarted))
    assert started.upstream_id == fake.completions[0].id


@pytest.mark.parametrize(
    ("behaviour", "code", "disposition"),
    [
        (model_not_found(TEXT_MODEL), "model_not_found", "reject"),
        (model_not_found(TEXT_MODEL, availability=False), "model_not_found", "reject"),
        (insufficient_credits(), "insufficient_credits", "reject"),
        (moderation(), "content_blocked", "reject"),
        (rate_limited(retry_after=3), "rate_limited", "retry"),
        (rate_limited(retry_after=30, http_date=True), "rate_limited", "retry"),
        (capacity_exhausted(), "rate_limited", "retry"),
        (unavailable(), "upstream_unavailable", "retry"),
        (provider_error(), "upstream_unavailable", "retry"),
        (provider_error(raw={"message": "upstream exploded"}), "upstream_unavailable", "retry"),
        (html_not_found(), "bad_request", "reject"),
        (Body200Error(), "upstream_unavailable", "retry"),
        (EmptyChoices(), "empty_response", "retry"),
    ],
)
def test_fake_error_forms(fake, behaviour, code, disposition) -> None:
    fake.enqueue("/chat/completions", behaviour)
    err = fake_chat_error(fake)
    assert (err.code, err.disposition) == (code, disposition)
    if code == "rate_limited":
        assert err.retry_after is not None and 0 < err.retry_after <= 31  # HTTP-dates have 1 s resolution
    if isinstance(behaviour, HttpError) and behaviour.status == 502:
        assert "upstream exploded" in err.message


def test_fake_choice_error_keeps_partial(fake) -> None:
    fake.enqueue("/chat/completions", ChoiceError(partial="Half"))
    err = fake_chat_error(fake)
    assert (err.code, err.output_started, err.partial_text) == ("stream_broken", True, "Half")


def test_fake_revoked_key(fake) -> None:
    fake.revoke_key(FAKE_KEY)
    err = capture_error(fake.base_url, lambda c: c.get_key_info(FAKE_KEY))
    assert (err.code, err.disposition) == ("invalid_key", "reject")


def test_fake_in_band_error_before_and_after_tokens(fake) -> None:
    fake.enqueue("/chat/completions", StreamError(after_tokens=0, code="server_error"))
    err, received = fake_stream_error(fake)
    assert (err.disposition, err.output_started) == ("retry", False)
    assert not any(isinstance(e, TextDelta) for e in received)

    fake.enqueue("/chat/completions", StreamError(after_tokens=3, code=429, done=True, empty_choices=True))
    err, received = fake_stream_error(fake)
    assert (err.code, err.disposition, err.output_started) == ("stream_broken", "reject", True)
    assert len([e for e in received if isinstance(e, TextDelta)]) == 3


@pytest.mark.parametrize("mid_event", [False, True])
def test_fake_truncated_stream(fake, mid_event) -> None:
    fake.enqueue("/chat/completions", Truncate(after_tokens=2, mid_event=mid_event))
    err, received = fake_stream_error(fake)
    assert (err.code, err.output_started) == ("stream_broken", True)
    assert len([e for e in received if isinstance(e, TextDelta)]) == 2


def test_fake_stall_hits_the_idle_timeout_and_aborts(fake) -> None:
    fake.enqueue("/chat/completions", Stall(seconds=30, after_tokens=1))
    err, _ = fake_stream_error(fake, stream_idle_timeout=0.3)
    assert (err.code, err.output_started) == ("timeout", True)
    deadline = time.monotonic() + 10
    while not fake.aborted and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(fake.aborted) == 1


def test_fake_keepalives_during_a_stall(fake) -> None:
    fake.enqueue("/chat/completions", Stall(seconds=1.5, keepalive_interval=0.1, after_tokens=0))
    events = run(with_client(fake.base_url, fake_stream_events, stream_idle_timeout=1.2))
    assert sum(isinstance(e, KeepAlive) for e in events) >= 5
    assert isinstance(events[-1], StreamFinished)


def test_fake_records_the_abort_when_the_generator_closes(fake) -> None:
    fake.token_delay = 0.05

    async def go(client: OpenRouterClient) -> None:
        stream = client.chat_stream(FAKE_KEY, fake_body())
        async for event in stream:
            if isinstance(event, TextDelta):
                break
        await stream.aclose()

    run(with_client(fake.base_url, go))
    deadline = time.monotonic() + 10
    while not fake.aborted and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(fake.aborted) == 1 and fake.completions == []


def test_fake_offline_then_online(fake) -> None:
    fake.go_offline()

    async def go(client: OpenRouterClient):
        offline_probe = await client.probe()
        with pytest.raises(UpstreamError) as info:
            await client.chat(FAKE_KEY, fake_body())
        fake.go_online()
        return offline_probe, info.value, await client.probe(), await client.chat(FAKE_KEY, fake_body())

    offline_probe, err, online_probe, result = run(with_client(fake.base_url, go))
    assert offline_probe is False and online_probe is True
    assert (err.code, err.disposition) == ("network", "retry")
    assert result.text


@pytest.mark.parametrize("relative", [False, True])
def test_fake_video_job_to_download(fake, relative) -> None:
    fake.enqueue("/videos", VideoJob(polls_per_stage=1, relative_polling_url=relative))

    async def go(client: OpenRouterClient):
        job = await client.submit_video(FAKE_KEY, {"model": "google/veo-3.1", "prompt": "a dog on a beach"})
        statuses = []
        for _ in range(10):
            state = await client.get_video(FAKE_KEY, job["id"], job["polling_url"])
            statuses.append(state["status"])
            if state["status"] == "completed":
                break
        data = b""
        async for piece in client.download(FAKE_KEY, state["unsigned_urls"][0], max_bytes=10_000_000):
            data += piece
        with pytest.raises(UpstreamError) as too_big:
            async for _ in client.download(FAKE_KEY, state["unsigned_urls"][0], max_bytes=100):
                pass
        return job, statuses, state, data, too_big.value

    job, statuses, state, data, too_big = run(with_client(fake.base_url, go))
    assert job["polling_url"].startswith("/api/v1/videos/") == relative
    assert statuses[-1] == "completed" and "in_progress" in statuses
    assert state["usage"]["cost"] == 0.25
    assert data[4:8] == b"ftyp"
    assert too_big.metadata["max_bytes"] == 100


def test_fake_image_and_video_models(fake) -> None:
    async def go(client: OpenRouterClient):
        return await client.list_models("image", FAKE_KEY), await client.video_models(FAKE_KEY)

    image_models, video_models = run(with_client(fake.base_url, go))
    assert any(m["id"] == "black-forest-labs/flux.2-pro" for m in image_models)
    assert {m["id"] for m in video_models} >= {"google/veo-3.1"}


def test_fake_chat_images_as_data_urls(fake) -> None:
    body = {
        "model": "google/gemini-2.5-flash-image",
        "messages": [{"role": "user", "content": "a cat"}],
        "modalities": ["image", "text"],
    }
    result = run(with_client(fake.base_url, lambda c: c.chat(FAKE_KEY, body)))
    assert result.images and all(u.startswith("data:image/png;base64,") for u in result.images)
    events = run(with_client(fake.base_url, lambda c: collect(c, body, key=FAKE_KEY)))
    assert any(isinstance(e, ImageDelta) for e in events)


def test_fake_key_info(fake) -> None:
    info = run(with_client(fake.base_url, lambda c: c.get_key_info(FAKE_KEY)))
    assert "limit" in info and "usage" in info


# ------------------------------------------------------------------------------------------------------------
# The key never leaks


def test_key_never_appears_in_errors_or_logs(wire, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    echo_key = wire(
        lambda req, conn: conn.json(
            502,
            {
                "error": {
                    "code": 502,
                    "message": f"bad header {req.headers.get('authorization')}",
                    "metadata": {"raw": req.headers.get("authorization")},
                }
            },
        )
    )
    err = capture_error(echo_key.base_url, lambda c: c.chat(SENTINEL_KEY, CHAT_BODY))
    assert "[redacted]" in err.message

    def stream_then_echo(req: Recorded, conn: Conn) -> None:
        conn.start_sse()
        conn.send(sse(chunk("x")) + sse({"error": {"code": 500, "message": req.headers["authorization"]}}))

    stream_error(wire(stream_then_echo).base_url)
    capture_error(f"http://127.0.0.1:{free_port()}/api/v1", lambda c: c.chat(SENTINEL_KEY, CHAT_BODY))
    assert ALL_ERRORS, "the scenarios above must have produced errors"
    for error in ALL_ERRORS:
        for text in (
            str(error),
            repr(error),
            json.dumps(error.metadata, default=str),
            error.partial_text,
            str(error.args),
        ):
            assert OTHER_KEY_FRAGMENT not in text and FAKE_KEY not in text, text
        assert error.__cause__ is None
        context = error.__context__
        while context is not None:
            assert OTHER_KEY_FRAGMENT not in str(context) and OTHER_KEY_FRAGMENT not in repr(context)
            context = context.__context__
    assert OTHER_KEY_FRAGMENT not in caplog.text and FAKE_KEY not in caplog.text


def test_root_relative_polling_url_keeps_a_gateway_prefix() -> None:
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"id": "job-1", "status": "pending"})

    async def go(client: OpenRouterClient) -> None:
        await client.get_video(SENTINEL_KEY, "job-1", "/api/v1/videos/job-1")
        await client.get_video(SENTINEL_KEY, "job-1", "/other/job-1")

    run(with_client("https://gw.example/openrouter/api/v1", go, transport=httpx.MockTransport(handle)))
    assert seen == ["https://gw.example/openrouter/api/v1/videos/job-1", "https://gw.example/other/job-1"]
