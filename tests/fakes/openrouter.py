"""A fake OpenRouter: a real HTTP/1.1 server on 127.0.0.1 that behaves like the real API.

It follows docs/openrouter.md (its last section, "What the fake reproduces") closely enough that a
client tested against it is honest against the real thing: keep-alive comments, SSE events cut at odd byte
boundaries (mid-UTF-8 too), CRLF line endings, usage chunks with ``choices: []``, in-band and mid-stream
errors, truncated streams, stalls, client aborts, 200-with-error bodies, ``Retry-After``, images as data
URLs, async video jobs, OAuth PKCE. Standard library only; every byte is written by hand so tests control
exactly how it hits the socket.

In-process use::

    with FakeOpenRouter(token_delay=0.0) as fake:
        client = httpx.Client(base_url=fake.base_url, headers={"Authorization": f"Bearer {fake.key}"})
        fake.enqueue("/chat/completions", rate_limited(retry_after=2))   # the next chat request gets a 429
        ...
        assert fake.count("/chat/completions", status=200) == 1
        assert [c.id for c in fake.completions] == [...]                  # exactly-once delivery

Normal answers are deterministic: the text is ``"Echo: <last user message>"`` (or ``reply_text``), token
counts come from character counts, ``cost`` from the catalogue's per-token prices (``catalogue.py``).
Scripted one-shot behaviours (``behaviours.py``) are consumed FIFO per path; without one, a request gets
the normal answer. Everything the fake saw is in ``requests``; chat completions that finished are in
``completions``, streams the client closed early in ``aborted``.

API paths (under ``/api/v1``): ``POST /chat/completions``, ``GET /models`` (``?output_modalities=``),
``GET /models/user``, ``GET /key`` and its alias ``/auth/key``, ``GET /credits``, ``GET /generation?id=``,
``POST /images``, ``GET /images/models``, ``POST /videos``, ``GET /videos/{id}``,
``GET /videos/{id}/content?index=0``, ``GET /videos/models``, ``POST /auth/keys``. On the site root:
``GET /auth`` (OAuth consent, auto-approved). Anything else gets the website's HTML 404.

Control API (JSON, loopback, not recorded) under ``/_fake/`` on the API port and, when ``control_port`` is
set, on a second port that stays up while the API port is offline: ``POST /_fake/offline`` ``{"seconds": n}``
(omit ``seconds`` to stay offline), ``POST /_fake/online``, ``POST /_fake/enqueue`` ``{"path", "behaviour"}``
(behaviour in its JSON form), ``POST /_fake/keys`` ``{"key", ...info}``, ``POST /_fake/revoke`` ``{"key"}``,
``GET /_fake/requests``, ``GET /_fake/completions``, ``GET /_fake/stats``, ``POST /_fake/reset``.

Standalone, for browser tests and benchmarks::

    python -m tests.fakes.openrouter --port 0 --control-port 0 --key sk-or-v1-test --token-delay 0.01

prints one JSON line ``{"base_url", "control_url", "site_url", "port", "control_port", "keys"}`` and serves
until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import datetime as dt
import fnmatch
import hashlib
import itertools
import json
import math
import random
import re
import select
import signal
import socket
import string
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tests.fakes import catalogue
from tests.fakes.behaviours import (
    HTML_404,
    Behaviour,
    Body200Error,
    ChoiceError,
    EmptyChoices,
    EmptyContent,
    HttpError,
    PrimaryFails,
    Reply,
    Stall,
    StreamError,
    StreamStyle,
    Truncate,
    VideoJob,
    behaviour_from_json,
    context_length_exceeded,
    insufficient_credits,
    model_not_found,
    resolve_headers,
    unavailable,
)
from tests.fakes.media import fake_mp4, fake_png, fake_wav, solid_png

__all__ = ["DEFAULT_KEY", "Completion", "FakeOpenRouter", "ReceivedMedia", "RecordedRequest", "main"]

DEFAULT_KEY = "sk-or-v1-" + "fa4e" * 16
OAUTH_CODE_TTL = 600.0  # seconds; codes expire 10 minutes after issue (§9)
_ODD_SIZES = (1, 2, 3, 5, 7, 11, 13)
_TOKEN_RE = re.compile(r"\s*\S+|\s+")
_ALNUM = string.ascii_letters + string.digits
_COMPACT = (",", ":")  # the real API sends compact JSON


@dataclass
class RecordedRequest:
    """One request the fake received.

    ``path`` is relative to ``/api/v1`` for API calls (``/chat/completions``) and the raw path otherwise
    (``/auth``); ``headers`` has lower-case names; ``status`` is set once answered; ``stream_writes`` holds
    the SSE body exactly as it was cut into socket writes (without HTTP chunk framing).
    """

    method: str
    path: str
    full_path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    body: bytes
    time: float
    status: int | None = None
    stream_writes: list[bytes] = field(default_factory=list, repr=False)

    def header(self, name: str) -> str | None:
        """A request header by case-insensitive name."""
        return self.headers.get(name.lower())

    @property
    def referer(self) -> str | None:
        """The ``HTTP-Referer`` attribution header."""
        return self.header("http-referer")

    @property
    def title(self) -> str | None:
        """``X-OpenRouter-Title``, or the legacy ``X-Title``."""
        return self.header("x-openrouter-title") or self.header("x-title")

    @property
    def categories(self) -> list[str]:
        """``X-OpenRouter-Categories`` split on commas."""
        raw = self.header("x-openrouter-categories") or ""
        return [part.strip() for part in raw.split(",") if part.strip()]

    def to_json(self) -> dict[str, Any]:
        """JSON form (body bytes omitted) for the control API."""
        return {
            "method": self.method,
            "path": self.path,
            "full_path": self.full_path,
            "query": self.query,
            "headers": self.headers,
            "json": self.json,
            "time": self.time,
            "status": self.status,
        }


@dataclass
class Completion:
    """A generation that finished successfully (chat text, or an image from ``/images``)."""

    id: str
    model: str
    text: str | None
    stream: bool
    key: str
    prompt: str
    cost: float
    time: float


@dataclass
class ReceivedMedia:
    """A media reference (data URL or URL) the fake received in a request, e.g. a reference image."""

    path: str
    kind: str
    url: str


@dataclass
class _VideoState:
    id: str
    generation_id: str
    model: str
    prompt: str
    key: str
    created: float
    script: VideoJob
    polls: int = 0
    finished: bool = False


@dataclass
class _OAuthCode:
    challenge: str | None
    method: str | None
    issued: float
    label: str | None
    used: bool = False


@dataclass
class _Chat:
    """Everything needed to answer one chat request."""

    id: str
    model: str
    provider: str
    created: int
    key: str
    prompt: str
    stream: bool
    text: str | None
    reasoning: str | None
    images: list[str]
    untyped_image: bool
    tool_calls: list[dict[str, Any]]
    audio: bytes | None
    finish_reason: str
    native_finish_reason: str
    prompt_tokens: int
    pricing: dict[str, str]
    debug_echo: dict[str, Any] | None
    byok: bool = False

    def tokens(self, per_chunk: int = 1) -> list[str]:
        pieces = _TOKEN_RE.findall(self.text or "")
        per_chunk = max(1, per_chunk)
        return ["".join(pieces[i : i + per_chunk]) for i in range(0, len(pieces), per_chunk)]

    def usage(self, *, completion_text: str | None = None, images: int | None = None) -> dict[str, Any]:
        text = self.text if completion_text is None else completion_text
        n_images = len(self.images) if images is None else images
        content_tokens = len(_TOKEN_RE.findall(text or ""))
        reasoning_tokens = len(_TOKEN_RE.findall(self.reasoning or "")) if completion_text is None else 0
        image_tokens = 1290 * n_images
        completion_tokens = content_tokens + reasoning_tokens + image_tokens
        prompt_price = float(self.pricing.get("prompt", "0"))
        completion_price = float(self.pricing.get("completion", "0"))
        image_price = float(self.pricing.get("image_output", self.pricing.get("completion", "0")))
        prompt_cost = self.prompt_tokens * prompt_price
        completion_cost = (content_tokens + reasoning_tokens) * completion_price + image_tokens * image_price
        provider_cost = round(prompt_cost + completion_cost, 12)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": self.prompt_tokens + completion_tokens,
            "prompt_tokens_details": {
                "cached_tokens": 0,
                "cache_write_tokens": 0,
                "audio_tokens": 0,
                "video_tokens": 0,
            },
            "completion_tokens_details": {
                "reasoning_tokens": reasoning_tokens,
                "audio_tokens": 0,
                "image_tokens": image_tokens,
            },
            # Bring-your-own-key: OpenRouter charges nothing here; the provider bills the user's own account.
            "cost": 0 if self.byok else provider_cost,
            "is_byok": self.byok,
            "cost_details": {
                "upstream_inference_cost": provider_cost if self.byok else None,
                "upstream_inference_prompt_cost": round(prompt_cost, 12),
                "upstream_inference_completions_cost": round(completion_cost, 12),
            },
        }


class _ClientGone(Exception):
    """The peer closed the connection (or the fake dropped it) while a response was being written."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # A real server's accept queue, not socketserver's 5: a hundred requests arriving at once (the app's group
    # commit sends them together) would otherwise overflow it and see resets no real OpenRouter sends.
    request_queue_size = 512

    def __init__(self, address: tuple[str, int], fake: FakeOpenRouter, *, control_only: bool) -> None:
        self.fake = fake
        self.control_only = control_only
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Peers vanishing and connections the fake drops on purpose are normal here, not worth a traceback.
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError | _ClientGone):
            return
        super().handle_error(request, client_address)


class FakeOpenRouter:
    """A controllable fake of the OpenRouter API served over real HTTP on loopback.

    ``keys`` maps valid API keys to ``/key`` fields (``label``, ``limit``, ``limit_remaining``, ``usage``,
    ``is_free_tier``, ``is_management_key``); by default one key, :data:`DEFAULT_KEY`. ``token_delay`` is
    the pause before each streamed content chunk. ``clock`` drives OAuth expiry, ``/generation``
    visibility and time-based video jobs, so tests can move time without sleeping. ``stream_style`` is the
    default SSE wire style, ``reply_text`` a fixed answer instead of the echo, ``generation_delay`` how long
    ``/generation`` answers 404 after a completion, ``control_port`` opens the control API on a second port.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        keys: dict[str, dict[str, Any]] | None = None,
        token_delay: float = 0.0,
        stream_style: StreamStyle | None = None,
        reply_text: str | None = None,
        clock: Callable[[], float] = time.time,
        generation_delay: float = 1.0,
        control_port: int | None = None,
        seed: int | None = None,
    ) -> None:
        self.port = port
        self.token_delay = token_delay
        #: Bytes served as every finished video's content (default: small per-job MP4-looking bytes).
        self.video_content: bytes | None = None
        self.stream_style = stream_style or StreamStyle()
        self.reply_text = reply_text
        self.clock = clock
        self.generation_delay = generation_delay
        self.unavailable_models: set[str] = set()
        #: Answer as for an account with its own provider keys (BYOK): ``usage.cost`` 0, ``is_byok: true`` and
        #: the provider's charge in ``usage.cost_details.upstream_inference_cost``.
        self.byok = False
        self._initial_keys = copy.deepcopy(keys if keys is not None else {DEFAULT_KEY: {}})
        self._control_port = control_port
        self._lock = threading.RLock()
        self._lifecycle = threading.Lock()
        self._api: _Server | None = None
        self._control: _Server | None = None
        self._threads: list[threading.Thread] = []
        self._connections: dict[socket.socket, _Server] = {}
        self._dropped: set[int] = set()
        self._online_timer: threading.Timer | None = None
        self._started = False
        # Ids are never reused, not even across reset(): a client that stored an old id must not find it
        # pointing at a new generation or job. Pass ``seed`` for a reproducible sequence.
        self._rng = random.Random(seed)
        self._init_state()

    def _init_state(self) -> None:
        with self._lock:
            self._keys: dict[str, dict[str, Any]] = {}
            for key, info in copy.deepcopy(self._initial_keys).items():
                self._keys[key] = self._key_defaults(key, info)
            self._queues: dict[str, deque[Behaviour]] = {}
            self._requests: list[RecordedRequest] = []
            self._completions: list[Completion] = []
            self._image_generations: list[Completion] = []
            self._aborted: list[str] = []
            self._received_media: list[ReceivedMedia] = []
            self._generations: dict[str, tuple[float, dict[str, Any]]] = {}
            self._videos: dict[str, _VideoState] = {}
            self._oauth_codes: dict[str, _OAuthCode] = {}

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> FakeOpenRouter:
        """Bind 127.0.0.1 (port 0 picks a free one) and serve in background threads."""
        with self._lifecycle:
            if self._started:
                return self
            self._started = True
            self._api = self._serve(self.port, control_only=False)
            self.port = self._api.server_address[1]
            if self._control_port is not None and self._control is None:
                self._control = self._serve(self._control_port, control_only=True)
                self._control_port = self._control.server_address[1]
        return self

    def stop(self) -> None:
        """Stop serving and close every socket (idempotent)."""
        self._cancel_timer()
        with self._lifecycle:
            self._started = False
            for attr in ("_api", "_control"):
                server = getattr(self, attr)
                if server is not None:
                    setattr(self, attr, None)
                    self._shutdown(server)
            for thread in self._threads:
                thread.join(timeout=5)
            self._threads.clear()

    def __enter__(self) -> FakeOpenRouter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def go_offline(self, *, keep: socket.socket | None = None) -> None:
        """Close the API listener and drop open connections: new connections get ECONNREFUSED."""
        self._cancel_timer()
        with self._lifecycle:
            server, self._api = self._api, None
            if server is not None:
                self._shutdown(server, keep=keep)

    def go_online(self) -> None:
        """Re-bind the same port and serve again."""
        self._cancel_timer()
        with self._lifecycle:
            if not self._started:
                raise RuntimeError("start() the fake before bringing it online")
            if self._api is None:
                self._api = self._serve(self.port, control_only=False)

    def offline_for(self, seconds: float, *, keep: socket.socket | None = None) -> None:
        """Go offline now and back online after ``seconds`` (real time)."""
        self.go_offline(keep=keep)
        timer = threading.Timer(seconds, self._timed_online)
        timer.daemon = True
        with self._lock:
            self._online_timer = timer
        timer.start()

    def _timed_online(self) -> None:
        if self._started:  # stop() may have raced with the timer
            self.go_online()

    @property
    def online(self) -> bool:
        """Whether the API port is accepting connections."""
        return self._api is not None

    def _cancel_timer(self) -> None:
        with self._lock:
            timer, self._online_timer = self._online_timer, None
        if timer is not None and timer is not threading.current_thread():
            timer.cancel()

    def _serve(self, port: int, *, control_only: bool) -> _Server:
        server = _Server(("127.0.0.1", port), self, control_only=control_only)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-openrouter-{server.server_address[1]}",
            daemon=True,
        )
        thread.start()
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        return server

    def _shutdown(self, server: _Server, *, keep: socket.socket | None = None) -> None:
        server.shutdown()
        server.server_close()
        with self._lock:
            doomed = [s for s, owner in self._connections.items() if owner is server and s is not keep]
            self._dropped.update(id(s) for s in doomed)
        for sock in doomed:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _track(self, sock: socket.socket, server: _Server) -> None:
        with self._lock:
            self._connections[sock] = server

    def _untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections.pop(sock, None)
            self._dropped.discard(id(sock))

    def _was_dropped(self, sock: socket.socket) -> bool:
        with self._lock:
            return id(sock) in self._dropped

    # -- addresses -------------------------------------------------------------------------------------

    @property
    def site_url(self) -> str:
        """The website root, e.g. ``http://127.0.0.1:51234`` (``/auth`` lives here)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The API base URL, ``http://127.0.0.1:<port>/api/v1``."""
        return f"{self.site_url}/api/v1"

    @property
    def control_url(self) -> str:
        """The control API root (second port when ``control_port`` was given, else the API port)."""
        port = self._control_port if self._control is not None else self.port
        return f"http://127.0.0.1:{port}/_fake"

    @property
    def key(self) -> str:
        """The first configured API key (``DEFAULT_KEY`` unless ``keys`` was given)."""
        with self._lock:
            return next(iter(self._keys), DEFAULT_KEY)

    # -- keys ------------------------------------------------------------------------------------------

    def _key_defaults(self, key: str, info: dict[str, Any]) -> dict[str, Any]:
        info = dict(info)
        limit = info.get("limit")
        if "limit_remaining" in info and info["limit_remaining"] is not None:
            if limit is None:
                limit = info["limit_remaining"]
            info.setdefault("usage", round(limit - info["limit_remaining"], 12))
        info.pop("limit_remaining", None)
        out = {
            "label": f"{key[:12]}...{key[-3:]}",
            "limit": limit,
            "limit_reset": None,
            "include_byok_in_limit": False,
            "usage": 0.0,
            "is_free_tier": False,
            "is_management_key": False,
            "is_provisioning_key": False,
            "expires_at": None,
            "creator_user_id": "user_fake0000000000000000000",
        }
        out.update(info)
        out["limit"] = limit
        return out

    def add_key(self, key: str, **key_info: Any) -> None:
        """Make ``key`` valid; ``key_info`` sets ``/key`` fields (e.g. ``limit``, ``limit_remaining``)."""
        with self._lock:
            self._keys[key] = self._key_defaults(key, key_info)

    def revoke_key(self, key: str) -> None:
        """Invalidate ``key``: later requests with it get 401 ``"User not found."``."""
        with self._lock:
            self._keys.pop(key, None)

    def key_info(self, key: str) -> dict[str, Any] | None:
        """The ``/key`` ``data`` object for ``key``, or ``None`` if it is not valid."""
        with self._lock:
            info = self._keys.get(key)
            if info is None:
                return None
            data = {k: v for k, v in info.items()}
        usage = round(data["usage"], 12)
        data["usage"] = usage
        data["limit_remaining"] = None if data["limit"] is None else round(data["limit"] - usage, 12)
        for period in ("daily", "weekly", "monthly"):
            data.setdefault(f"usage_{period}", usage)
            data.setdefault(f"byok_usage_{period}", 0)
        data.setdefault("byok_usage", 0)
        data["rate_limit"] = {
            "requests": 1000,
            "interval": "1h",
            "note": "This field is deprecated and safe to ignore.",
        }
        return data

    def _charge(self, key: str, cost: float) -> None:
        with self._lock:
            if key in self._keys:
                self._keys[key]["usage"] = self._keys[key]["usage"] + cost

    def _out_of_credits(self, key: str) -> bool:
        info = self.key_info(key)
        return bool(info and info["limit_remaining"] is not None and info["limit_remaining"] <= 0)

    # -- scripting and recordings ----------------------------------------------------------------------

    def enqueue(self, path: str, behaviour: Behaviour | dict[str, Any]) -> None:
        """Queue a one-shot behaviour for the next request to ``path`` (relative to ``/api/v1``; globs ok)."""
        if isinstance(behaviour, dict):
            behaviour = behaviour_from_json(behaviour)
        if not isinstance(behaviour, Behaviour):
            raise TypeError(f"not a behaviour: {behaviour!r}")
        with self._lock:
            self._queues.setdefault(path, deque()).append(behaviour)

    def pending(self, path: str) -> int:
        """How many behaviours are still queued for ``path``."""
        with self._lock:
            return len(self._queues.get(path, ()))

    def _pop(self, path: str) -> Behaviour | None:
        with self._lock:
            queue = self._queues.get(path)
            if queue:
                return queue.popleft()
            for pattern, queue in self._queues.items():
                if queue and pattern != path and fnmatch.fnmatchcase(path, pattern):
                    return queue.popleft()
        return None

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received (control API calls excluded), oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def completions(self) -> list[Completion]:
        """Chat completions that finished successfully (non-stream sent, or stream reached ``[DONE]``)."""
        with self._lock:
            return list(self._completions)

    @property
    def image_generations(self) -> list[Completion]:
        """Images delivered by ``POST /images`` (one entry per image)."""
        with self._lock:
            return list(self._image_generations)

    @property
    def aborted(self) -> list[str]:
        """Generation ids whose response the client closed before it was complete."""
        with self._lock:
            return list(self._aborted)

    @property
    def received_media(self) -> list[ReceivedMedia]:
        """Media URLs/data URLs received in chat parts, ``/images`` references and ``/videos`` frames."""
        with self._lock:
            return list(self._received_media)

    def count(self, path: str, *, status: int | None = None) -> int:
        """How many requests hit ``path`` (API-relative or full), only those answered ``status``."""
        with self._lock:
            return sum(
                1
                for r in self._requests
                if path in (r.path, r.full_path) and (status is None or r.status == status)
            )

    def video_status(self, job_id: str) -> str | None:
        """The status a video job would report right now (without counting as a poll)."""
        with self._lock:
            job = self._videos.get(job_id)
            return None if job is None else self._video_stage(job, advance=False)

    def reset(self) -> None:
        """Forget recordings, queues, jobs and codes, restore the initial keys and go back online."""
        self.unavailable_models.clear()
        self._init_state()
        if self._started and self._api is None:
            self.go_online()

    def stats(self) -> dict[str, Any]:
        """Counters for the control API and benchmarks."""
        with self._lock:
            by_path: dict[str, dict[str, int]] = {}
            for r in self._requests:
                by_status = by_path.setdefault(r.path, {})
                by_status[str(r.status)] = by_status.get(str(r.status), 0) + 1
            return {
                "online": self._api is not None,
                "requests": len(self._requests),
                "by_path": by_path,
                "completions": len(self._completions),
                "image_generations": len(self._image_generations),
                "aborted": list(self._aborted),
                "videos": {job.id: self._video_stage(job, advance=False) for job in self._videos.values()},
                "pending": {path: len(q) for path, q in self._queues.items() if q},
                "keys": len(self._keys),
            }

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _media(self, path: str, kind: str, url: str) -> None:
        with self._lock:
            self._received_media.append(ReceivedMedia(path, kind, url))

    def _random(self, length: int, alphabet: str = _ALNUM) -> str:
        """Seeded random characters: ids differ per request but a run is reproducible."""
        with self._lock:
            return "".join(self._rng.choice(alphabet) for _ in range(length))

    def _new_id(self, prefix: str, length: int = 20) -> str:
        """``gen-<unix>-<rand>`` for generations (the real format), ``<prefix>-<rand>`` otherwise."""
        rand = self._random(length)
        return f"{prefix}-{int(self.clock())}-{rand}" if prefix == "gen" else f"{prefix}-{rand}"

    def _store_generation(self, gen_id: str, data: dict[str, Any]) -> None:
        with self._lock:
            self._generations[gen_id] = (self.clock() + self.generation_delay, data)

    def _generation(self, gen_id: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._generations.get(gen_id)
        if entry is None or self.clock() < entry[0]:
            return None
        return entry[1]

    def _finish_chat(
        self, chat: _Chat, *, text: str | None, usage: dict[str, Any], outcome: str, headers: dict[str, str]
    ) -> None:
        """Book-keeping once a chat answer is over: generation stats, credits, completions/aborted."""
        cancelled = outcome == "aborted"
        self._store_generation(
            chat.id,
            {
                "id": chat.id,
                "total_cost": usage["cost"],
                "usage": usage["cost"],
                "model": chat.model,
                "provider_name": chat.provider,
                "created_at": dt.datetime.fromtimestamp(chat.created, dt.UTC).isoformat(),
                "streamed": chat.stream,
                "cancelled": cancelled,
                "finish_reason": "error"
                if outcome == "error"
                else (None if cancelled else chat.finish_reason),
                "native_finish_reason": None if cancelled else chat.native_finish_reason,
                "tokens_prompt": usage["prompt_tokens"],
                "tokens_completion": usage["completion_tokens"],
                "native_tokens_prompt": usage["prompt_tokens"],
                "native_tokens_completion": usage["completion_tokens"],
                "native_tokens_reasoning": usage["completion_tokens_details"]["reasoning_tokens"],
                "native_tokens_cached": 0,
                "native_tokens_completion_images": usage["completion_tokens_details"]["image_tokens"],
                "num_media_prompt": None,
                "num_media_completion": len(chat.images) or None,
                "latency": 120,
                "generation_time": 340,
                "is_byok": chat.byok,
                "upstream_inference_cost": usage["cost_details"]["upstream_inference_cost"],
                "api_type": "completions",
                "http_referer": headers.get("http-referer"),
                "app_id": None,
                "origin": headers.get("http-referer") or "",
            },
        )
        if outcome in {"ok", "aborted"}:
            self._charge(chat.key, usage["cost"])
        with self._lock:
            if outcome == "ok":
                self._completions.append(
                    Completion(
                        chat.id,
                        chat.model,
                        text,
                        chat.stream,
                        chat.key,
                        chat.prompt,
                        usage["cost"],
                        self.clock(),
                    )
                )
            elif cancelled:
                self._aborted.append(chat.id)

    # -- video jobs ------------------------------------------------------------------------------------

    def _video_stage(self, job: _VideoState, *, advance: bool) -> str:
        script = job.script
        if script.seconds is not None:
            elapsed = self.clock() - job.created
            if elapsed >= script.seconds:
                return script.outcome
            return "pending" if elapsed < script.seconds / 4 else "in_progress"
        polls = job.polls + 1 if advance else job.polls
        if advance:
            job.polls = polls
        if polls == 0:
            return "pending"
        stage = (polls - 1) // max(1, script.polls_per_stage)
        return ("pending", "in_progress")[stage] if stage < 2 else script.outcome


# =========================================================================================================
# Request handling


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    server_version = "fake-openrouter/1.0"
    sys_version = ""

    # -- plumbing --------------------------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        # Each write must leave as its own segment so clients really see events cut at odd places.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.fake._track(self.connection, self.server)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.fake._untrack(self.connection)

    @property
    def fake(self) -> FakeOpenRouter:
        return self.server.fake

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature from the base class
        """Silence the per-request access log."""

    def send_response(self, code: int, message: str | None = None) -> None:
        rec = getattr(self, "_rec", None)
        if rec is not None:
            rec.status = code
        super().send_response(code, message)

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch()

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch()

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch()

    def do_PATCH(self) -> None:  # noqa: N802
        self._dispatch()

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj, separators=_COMPACT).encode("utf-8"), "application/json", headers)

    def _error(self, status: int, message: str, **extra: Any) -> None:
        self._json(status, {"error": {"code": status, "message": message, **extra}})

    def _html(self, status: int, html: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, html.encode("utf-8"), "text/html; charset=utf-8", headers)

    def _send_behaviour_error(self, err: HttpError) -> None:
        headers = resolve_headers(err.headers)
        if err.raw_body is not None:
            self._send(err.status, err.raw_body.encode("utf-8"), err.content_type, headers)
        else:
            self._send(
                err.status,
                json.dumps(err.body(), separators=_COMPACT).encode("utf-8"),
                err.content_type,
                headers,
            )

    def _not_applicable(self, behaviour: Behaviour, path: str) -> None:
        # A loud failure for a test that queued the wrong behaviour, rather than a silent normal answer.
        self._error(500, f"fake-openrouter: behaviour {behaviour.kind!r} does not apply to {path}")

    def _wait(self, seconds: float) -> None:
        """Sleep, but notice promptly if the client closes the connection meanwhile."""
        deadline = time.monotonic() + seconds
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            readable, _, _ = select.select([self.connection], [], [], min(remaining, 0.05))
            if readable:
                try:
                    peeked = self.connection.recv(1, socket.MSG_PEEK)
                except OSError as exc:
                    raise _ClientGone from exc
                if not peeked:
                    raise _ClientGone
                time.sleep(min(remaining, 0.01))  # the client sent bytes (pipelining): just keep waiting

    def _hard_close(self) -> None:
        """Drop the connection without finishing the HTTP body."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _json_body(self) -> dict[str, Any] | None:
        """The request body as a JSON object; sends a 400 and returns ``None`` when it is not one."""
        rec = self._rec
        if not isinstance(rec.json, dict):
            self._error(400, "Invalid JSON body: expected an object")
            return None
        return rec.json

    def _auth(self) -> str | None:
        """The caller's valid API key; sends the real API's 401 and returns ``None`` otherwise."""
        header = self.headers.get("Authorization") or ""
        scheme, _, key = header.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            self._error(401, "No auth credentials found")
            return None
        if self.fake.key_info(key) is None:
            self._error(401, "User not found.")
            return None
        return key

    # -- dispatch --------------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        self._rec = None
        split = urlsplit(self.path)
        path = split.path
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        body = self._read_body()
        if path.startswith("/_fake/"):
            self._control(path, body)
            return
        if self.server.control_only:
            self._html(404, HTML_404)
            return
        api_path = path[len("/api/v1") :] if path.startswith("/api/v1/") else None
        try:
            parsed: Any = json.loads(body) if body else None
        except ValueError:
            parsed = None
        self._rec = RecordedRequest(
            method=self.command,
            path=api_path or path,
            full_path=path,
            query=query,
            headers={k.lower(): v for k, v in self.headers.items()},
            json=parsed,
            body=body,
            time=self.fake.clock(),
        )
        self.fake._record(self._rec)
        self._query = query
        try:
            self._route(self.command, api_path, path)
        except _ClientGone:
            self.close_connection = True

    def _route(self, method: str, api_path: str | None, path: str) -> None:
        if api_path is None:
            if path == "/auth":
                self._oauth_authorize() if method == "GET" else self._html(405, "<h1>405</h1>")
            else:
                self._html(404, HTML_404)
            return
        routes: list[tuple[str, str, Callable[..., None]]] = [
            ("POST", r"/chat/completions", self._chat),
            ("GET", r"/models", self._models),
            ("GET", r"/models/user", self._models_user),
            ("GET", r"/key", self._key),
            ("GET", r"/auth/key", self._key),
            ("GET", r"/credits", self._credits),
            ("GET", r"/generation", self._generation),
            ("POST", r"/images", self._images),
            ("GET", r"/images/models", self._image_models),
            ("GET", r"/videos/models", self._video_models),
            ("POST", r"/videos", self._video_submit),
            ("GET", r"/videos/(?P<job>[^/]+)", self._video_poll),
            ("GET", r"/videos/(?P<job>[^/]+)/content", self._video_content),
            ("POST", r"/auth/keys", self._auth_keys),
        ]
        allowed = []
        for route_method, pattern, handler in routes:
            match = re.fullmatch(pattern, api_path)
            if match:
                if route_method == method or (method == "HEAD" and route_method == "GET"):
                    handler(**match.groupdict())
                    return
                allowed.append(route_method)
        if allowed:
            self._json(
                405,
                {"error": {"code": 405, "message": f"Method {method} not allowed"}},
                {"Allow": ", ".join(allowed)},
            )
        else:
            self._html(404, HTML_404)

    def _simple_behaviour(self, path: str) -> bool:
        """Apply a queued ``HttpError`` for ``path``; returns True when the response was sent."""
        behaviour = self.fake._pop(path)
        if behaviour is None:
            return False
        if isinstance(behaviour, HttpError):
            self._send_behaviour_error(behaviour)
        else:
            self._not_applicable(behaviour, path)
        return True

    # -- chat ------------------------------------------------------------------------------------------

    def _chat(self) -> None:
        key = self._auth()
        if key is None:
            return
        req = self._json_body()
        if req is None:
            return
        behaviour = self.fake._pop("/chat/completions")
        if isinstance(behaviour, HttpError):
            self._send_behaviour_error(behaviour)
            return
        if isinstance(behaviour, VideoJob):
            self._not_applicable(behaviour, "/chat/completions")
            return
        messages = req.get("messages")
        if not isinstance(messages, list) or not messages:
            self._error(400, 'Input required: specify "prompt" or "messages"')
            return
        candidates = self._candidates(req)
        for model_id in candidates:
            if catalogue.find_model(model_id) is None:
                self._send_behaviour_error(model_not_found(model_id))
                return
        chosen = self._pick_model(candidates, behaviour)
        if chosen is None:
            return
        entry = catalogue.find_model(chosen)
        assert entry is not None
        outputs = entry["architecture"]["output_modalities"]
        if "text" not in outputs and "image" not in outputs:
            self._json(
                400,
                {
                    "error": {
                        "code": 400,
                        "message": f"{chosen} does not support chat completions; use its own endpoint",
                        "error_type": "invalid_request",
                        "http_status": 400,
                        "availability": {
                            "code": "wrong_endpoint",
                            "retryable": False,
                            "requested_models": [chosen],
                        },
                    }
                },
            )
            return
        if self.fake._out_of_credits(key):
            self._send_behaviour_error(
                insufficient_credits(requested=int(req.get("max_tokens") or 16384), affordable=0)
            )
            return
        chat = self._build_chat(req, key, chosen, entry, behaviour)
        if chat.audio is not None and not chat.stream:
            self._error(400, "Audio output requires streaming: set stream to true")
            return
        if chat.prompt_tokens > entry["context_length"]:
            self._send_behaviour_error(context_length_exceeded(entry["context_length"], chat.prompt_tokens))
            return
        if chat.stream:
            self._chat_stream(chat, behaviour)
        else:
            self._chat_json(chat, behaviour)

    def _candidates(self, req: dict[str, Any]) -> list[str]:
        model = req.get("model")
        fallbacks = [m for m in req.get("models") or [] if isinstance(m, str)]
        if isinstance(model, str) and model:
            return [model] + [m for m in fallbacks if m != model]
        return fallbacks or [catalogue.DEFAULT_MODEL]

    def _pick_model(self, candidates: list[str], behaviour: Behaviour | None) -> str | None:
        """The model that answers; ``None`` (after sending the error) when every candidate failed."""
        failures: list[HttpError] = []
        for index, model_id in enumerate(candidates):
            if index == 0 and isinstance(behaviour, PrimaryFails):
                failures.append(
                    HttpError(
                        behaviour.status,
                        behaviour.message,
                        metadata={"provider_name": catalogue.provider_of(model_id)},
                    )
                )
                continue
            if model_id in self.fake.unavailable_models:
                failures.append(unavailable(model_id))
                continue
            return model_id
        self._send_behaviour_error(failures[-1])
        return None

    def _build_chat(
        self, req: dict[str, Any], key: str, model: str, entry: dict[str, Any], behaviour: Behaviour | None
    ) -> _Chat:
        messages = req["messages"]
        prompt = ""
        chars = 0
        for message in messages:
            text = self._message_text(message)
            chars += len(text)
            if isinstance(message, dict) and message.get("role") == "user":
                prompt = text
        reply = behaviour if isinstance(behaviour, Reply) else Reply()
        text = (
            reply.text
            if reply.text is not None
            else (self.fake.reply_text if self.fake.reply_text is not None else f"Echo: {prompt}")
        )
        outputs = entry["architecture"]["output_modalities"]
        requested = req.get("modalities") if isinstance(req.get("modalities"), list) else ["text"]
        images: list[str] = []
        if "image" in outputs and "image" in requested:
            n_images = 1 if reply.images is None else reply.images
            aspect = str((req.get("image_config") or {}).get("aspect_ratio") or "1:1")
            for i in range(n_images):
                if reply.image_pixels:
                    png = solid_png(*reply.image_pixels)
                else:
                    png = fake_png(f"{model}|{prompt}|{i}", aspect)
                images.append("data:image/png;base64," + base64.b64encode(png).decode("ascii"))
        elif reply.images:
            images = [
                "data:image/png;base64," + base64.b64encode(fake_png(f"{model}|{prompt}|{i}")).decode()
                for i in range(reply.images)
            ]
        if "text" not in outputs:
            text = ""
        audio = None
        if "audio" in outputs and "audio" in requested:
            audio = fake_wav(f"{model}|{prompt}")
        tool_calls = [
            {
                "id": f"call_{i}_{self.fake._random(8)}",
                "type": "function",
                "function": {"name": call["name"], "arguments": call.get("arguments", "{}")},
            }
            for i, call in enumerate(reply.tool_calls or [])
        ]
        finish = reply.finish_reason or ("tool_calls" if tool_calls else "stop")
        model_out = reply.model or model
        debug = req.get("debug") if isinstance(req.get("debug"), dict) else {}
        return _Chat(
            id=self.fake._new_id("gen"),
            model=model_out,
            provider=reply.provider or catalogue.provider_of(model),
            created=int(self.fake.clock()),
            key=key,
            prompt=prompt,
            stream=bool(req.get("stream")),
            text=text,
            reasoning=reply.reasoning,
            images=images,
            untyped_image=reply.untyped_image,
            tool_calls=tool_calls,
            audio=audio,
            finish_reason=finish,
            native_finish_reason=reply.native_finish_reason or ("STOP" if "google" in model else finish),
            prompt_tokens=sum(3 for _ in messages) + math.ceil(chars / 4),
            pricing=entry["pricing"],
            debug_echo={k: v for k, v in req.items() if k != "messages"}
            if debug.get("echo_upstream_body")
            else None,
            byok=self.fake.byok,
        )

    def _message_text(self, message: Any) -> str:
        """Concatenated text of a message; media parts are recorded in ``received_media``."""
        if not isinstance(message, dict):
            return ""
        content = message.get("content")
        if isinstance(content, str):
            return content
        texts = []
        for part in content if isinstance(content, list) else []:
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind == "text":
                texts.append(str(part.get("text", "")))
            elif kind in {"image_url", "video_url", "input_video"}:
                url = (part.get(kind if kind != "input_video" else "video_url") or {}).get("url", "")
                self.fake._media("/chat/completions", "image" if kind == "image_url" else "video", url)
            elif kind == "input_audio":
                self.fake._media(
                    "/chat/completions", "audio", (part.get("input_audio") or {}).get("data", "")
                )
            elif kind == "file":
                self.fake._media("/chat/completions", "file", (part.get("file") or {}).get("file_data", ""))
        return "\n".join(texts)

    def _image_entries(self, chat: _Chat, images: list[str]) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": url}} for url in images]
        if entries and chat.untyped_image:
            del entries[-1]["type"]
        return entries

    def _chat_json(self, chat: _Chat, behaviour: Behaviour | None) -> None:
        headers = {"X-Generation-Id": chat.id}
        if isinstance(behaviour, Reply) and behaviour.delay:
            self._wait_or_abort(chat, behaviour.delay)
        if isinstance(behaviour, Stall):
            self._wait_or_abort(chat, behaviour.seconds)
            if behaviour.then == "close":
                self._hard_close()
                return
        if isinstance(behaviour, Body200Error):
            body: dict[str, Any] = {"error": {"code": behaviour.code, "message": behaviour.message}}
            if behaviour.user_id:
                body["user_id"] = behaviour.user_id
            self._json(200, body)
            return
        usage = chat.usage()
        message: dict[str, Any] = {
            "role": "assistant",
            "content": chat.text,
            "refusal": None,
            "reasoning": chat.reasoning,
        }
        if chat.reasoning:
            message["reasoning_details"] = [
                {"type": "reasoning.text", "text": chat.reasoning, "format": "unknown", "index": 0}
            ]
        if chat.images:
            message["images"] = self._image_entries(chat, chat.images)
        if chat.tool_calls:
            message["tool_calls"] = chat.tool_calls
        choice: dict[str, Any] = {
            "index": 0,
            "logprobs": None,
            "finish_reason": chat.finish_reason,
            "native_finish_reason": chat.native_finish_reason,
            "message": message,
        }
        outcome = "ok"
        if isinstance(behaviour, ChoiceError | StreamError):
            partial = (
                behaviour.partial
                if isinstance(behaviour, ChoiceError)
                else ("".join(chat.tokens()[: behaviour.after_tokens]))
            )
            error_type = behaviour.error_type
            message["content"] = partial
            message.pop("images", None)
            choice.update(
                finish_reason="error",
                native_finish_reason="error",
                error={
                    "code": behaviour.code,
                    "message": behaviour.message,
                    "metadata": {"error_type": error_type} if error_type else {},
                },
            )
            usage = chat.usage(completion_text=partial, images=0)
            outcome = "error"
        elif isinstance(behaviour, EmptyContent):
            message["content"] = None if behaviour.null else ""
            message.pop("images", None)
            usage = chat.usage(completion_text="", images=0)
        body = {
            "id": chat.id,
            "object": "chat.completion",
            "created": chat.created,
            "model": chat.model,
            "provider": chat.provider,
            "system_fingerprint": None,
            "choices": [] if isinstance(behaviour, EmptyChoices) else [choice],
            "usage": chat.usage(completion_text="", images=0)
            if isinstance(behaviour, EmptyChoices)
            else usage,
            # Not part of any schema: clients must ignore fields they do not know.
            "x_fake_unknown_field": {"note": "ignore me"},
        }
        if isinstance(behaviour, EmptyChoices):
            outcome = "empty"
        data = json.dumps(body, ensure_ascii=False, separators=_COMPACT).encode("utf-8")
        if isinstance(behaviour, Truncate):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Generation-Id", chat.id)
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self._hard_close()
            return
        # Booked before the bytes go out, so a client that has the answer also finds it in the recordings.
        text = None if outcome == "empty" else message["content"]
        self.fake._finish_chat(
            chat, text=text, usage=body["usage"], outcome=outcome, headers=self._rec.headers
        )
        self._send(200, data, "application/json", headers)

    def _wait_or_abort(self, chat: _Chat, seconds: float) -> None:
        try:
            self._wait(seconds)
        except _ClientGone:
            if not self.fake._was_dropped(self.connection):
                self.fake._finish_chat(
                    chat,
                    text=None,
                    usage=chat.usage(completion_text="", images=0),
                    outcome="aborted",
                    headers=self._rec.headers,
                )
            raise

    def _chunk(self, chat: _Chat, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {
            "id": chat.id,
            "provider": chat.provider,
            "model": chat.model,
            "object": "chat.completion.chunk",
            "created": chat.created,
            "choices": choices,
            **extra,
        }

    @staticmethod
    def _delta(delta: dict[str, Any], finish: str | None = None, native: str | None = None) -> dict[str, Any]:
        return {
            "index": 0,
            "delta": delta,
            "finish_reason": finish,
            "native_finish_reason": native,
            "logprobs": None,
        }

    def _chat_stream(self, chat: _Chat, behaviour: Behaviour | None) -> None:
        style = getattr(behaviour, "style", None) or self.fake.stream_style
        token_delay = self.fake.token_delay
        if isinstance(behaviour, Reply):
            if behaviour.token_delay is not None:
                token_delay = behaviour.token_delay
            if behaviour.delay:
                self._wait_or_abort(chat, behaviour.delay)
        if isinstance(behaviour, Body200Error | ChoiceError):
            self._not_applicable(behaviour, "/chat/completions (stream)")
            return
        writer = _SseWriter(self, style)
        sent: list[str] = []
        self._booked = False  # whether the outcome is already recorded
        try:
            writer.begin({"X-Generation-Id": chat.id})
            keepalives = (
                behaviour.keepalives if isinstance(behaviour, StreamError) else style.keepalives_before
            )
            for _ in range(keepalives):
                writer.comment()
            if chat.debug_echo is not None:
                writer.event(self._chunk(chat, [], debug={"echo_upstream_body": chat.debug_echo}))
            if isinstance(behaviour, EmptyChoices):
                self._booked = True
                self.fake._finish_chat(
                    chat,
                    text=None,
                    usage=chat.usage(completion_text="", images=0),
                    outcome="empty",
                    headers=self._rec.headers,
                )
                writer.event(self._chunk(chat, [], usage=chat.usage(completion_text="", images=0)))
                writer.done()
                writer.finish()
                return
            tokens = chat.tokens(style.tokens_per_chunk)
            if isinstance(behaviour, EmptyContent):
                tokens = []
            trigger = min(getattr(behaviour, "after_tokens", 0), len(tokens))
            stop_at = trigger if isinstance(behaviour, StreamError | Truncate | Stall) else None
            if stop_at == 0 and self._interrupt(chat, behaviour, writer, sent, tokens):
                self._booked = True
                return
            writer.event(
                self._chunk(chat, [self._delta({"role": "assistant", "content": ""})], x_fake_unknown_field=1)
            )
            if chat.reasoning:
                for piece in _TOKEN_RE.findall(chat.reasoning):
                    writer.event(
                        self._chunk(
                            chat,
                            [
                                self._delta(
                                    {
                                        "reasoning": piece,
                                        "reasoning_details": [
                                            {
                                                "type": "reasoning.text",
                                                "text": piece,
                                                "format": "unknown",
                                                "index": 0,
                                            }
                                        ],
                                    }
                                )
                            ],
                        )
                    )
            tail = bool(chat.images or chat.tool_calls or chat.audio)
            for index, token in enumerate(tokens):
                if index and stop_at == index and self._interrupt(chat, behaviour, writer, sent, tokens):
                    return
                if token_delay:
                    writer.flush()
                    self._wait(token_delay)
                if index and style.keepalive_every and index % style.keepalive_every == 0:
                    writer.comment()
                last = index == len(tokens) - 1 and not tail
                delta: dict[str, Any] = {"content": token}
                if chat.audio is not None:
                    delta = {"content": "", "audio": {"transcript": token}}
                writer.event(
                    self._chunk(
                        chat,
                        [
                            self._delta(
                                delta,
                                chat.finish_reason if last else None,
                                chat.native_finish_reason if last else None,
                            )
                        ],
                    )
                )
                sent.append(token)
            if (
                stop_at is not None
                and stop_at == len(tokens)
                and stop_at > 0
                and self._interrupt(chat, behaviour, writer, sent, tokens)
            ):
                return
            self._stream_tail(chat, writer, finished_text=bool(tokens))
            usage = (
                chat.usage(completion_text="".join(sent))
                if not isinstance(behaviour, EmptyContent)
                else chat.usage(completion_text="", images=0)
            )
            # Booked before the usage chunk and [DONE] go out: a client that saw [DONE] finds it recorded.
            self._booked = True
            self.fake._finish_chat(
                chat, text="".join(sent), usage=usage, outcome="ok", headers=self._rec.headers
            )
            writer.event(self._chunk(chat, [], usage=usage))
            writer.done()
            writer.finish()
        except _ClientGone:
            self.close_connection = True
            if not self._booked and not self.fake._was_dropped(self.connection):
                self.fake._finish_chat(
                    chat,
                    text="".join(sent),
                    usage=chat.usage(completion_text="".join(sent)),
                    outcome="aborted",
                    headers=self._rec.headers,
                )

    def _stream_tail(self, chat: _Chat, writer: _SseWriter, *, finished_text: bool) -> None:
        """Images, tool calls, audio and the finishing chunk, after the text."""
        parts: list[dict[str, Any]] = []
        for entry in self._image_entries(chat, chat.images):
            parts.append({"content": "", "images": [entry]})
        for index, call in enumerate(chat.tool_calls):
            args = call["function"]["arguments"]
            third = max(1, len(args) // 3)
            parts.append(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": call["function"]["name"], "arguments": ""},
                        }
                    ]
                }
            )
            for start in range(0, len(args), third):
                parts.append(
                    {"tool_calls": [{"index": index, "function": {"arguments": args[start : start + third]}}]}
                )
        if chat.audio is not None:
            encoded = base64.b64encode(chat.audio).decode("ascii")
            step = 4 * max(1, len(encoded) // 12)  # base64 fragments on 4-char boundaries
            for start in range(0, len(encoded), step):
                parts.append({"audio": {"id": f"audio_{chat.id}", "data": encoded[start : start + step]}})
        if not parts:
            if not finished_text:
                writer.event(
                    self._chunk(
                        chat, [self._delta({"content": ""}, chat.finish_reason, chat.native_finish_reason)]
                    )
                )
            return
        for i, delta in enumerate(parts):
            last = i == len(parts) - 1
            writer.event(
                self._chunk(
                    chat,
                    [
                        self._delta(
                            delta,
                            chat.finish_reason if last else None,
                            chat.native_finish_reason if last else None,
                        )
                    ],
                )
            )

    def _book_error(self, chat: _Chat, sent: list[str]) -> None:
        """Record a stream that ends in an error (before its last bytes are written)."""
        self._booked = True
        self.fake._finish_chat(
            chat,
            text="".join(sent),
            usage=chat.usage(completion_text="".join(sent)),
            outcome="error",
            headers=self._rec.headers,
        )

    def _interrupt(
        self, chat: _Chat, behaviour: Behaviour | None, writer: _SseWriter, sent: list[str], tokens: list[str]
    ) -> bool:
        """Play a stall, truncation or in-band error; True when the stream is over."""
        if isinstance(behaviour, Stall):
            writer.flush()
            remaining = behaviour.seconds
            while remaining > 0:
                step = min(remaining, behaviour.keepalive_interval or remaining)
                self._wait(step)
                remaining -= step
                if behaviour.keepalive_interval and remaining > 0:
                    writer.comment()
                    writer.flush()
            if behaviour.then == "close":
                self._book_error(chat, sent)
                writer.flush()
                self._hard_close()
                return True
            return False
        if isinstance(behaviour, Truncate):
            self._book_error(chat, sent)
            if behaviour.mid_event and len(sent) < len(tokens):
                event = _SseWriter.encode_event(
                    self._chunk(chat, [self._delta({"content": tokens[len(sent)]})]), writer.newline
                )
                writer.raw(event[: len(event) // 2])
            writer.flush()
            self._hard_close()
            return True
        if isinstance(behaviour, StreamError):
            error: dict[str, Any] = {"code": behaviour.code, "message": behaviour.message}
            metadata = {}
            if behaviour.error_type:
                metadata["error_type"] = behaviour.error_type
            if behaviour.provider_code:
                metadata["provider_code"] = behaviour.provider_code
            metadata.update(behaviour.metadata or {})
            if metadata:
                error["metadata"] = metadata
            choices = [] if behaviour.empty_choices else [self._delta({"content": ""}, "error", "error")]
            self._book_error(chat, sent)
            extra: dict[str, Any] = {"error": error}
            if behaviour.usage:
                # A billed failure: the error chunk reports the tokens used so far and their cost.
                extra["usage"] = chat.usage(completion_text="".join(sent))
            writer.event(self._chunk(chat, choices, **extra))
            if behaviour.done:
                writer.done()
            writer.finish()
            return True
        return False

    # -- models, key, credits, generation --------------------------------------------------------------

    def _models(self) -> None:
        if self._simple_behaviour("/models"):
            return
        data = catalogue.list_models(self._query.get("output_modalities"))
        self._json(200, {"data": data})

    def _models_user(self) -> None:
        if self._auth() is None or self._simple_behaviour("/models/user"):
            return
        self._json(200, {"data": catalogue.list_models(self._query.get("output_modalities"))})

    def _key(self) -> None:
        key = self._auth()
        if key is None or self._simple_behaviour(self._rec.path):
            return
        self._json(200, {"data": self.fake.key_info(key)})

    def _credits(self) -> None:
        key = self._auth()
        if key is None or self._simple_behaviour("/credits"):
            return
        info = self.fake.key_info(key) or {}
        if not info.get("is_management_key"):
            self._error(403, "Only management keys can perform this operation")
            return
        self._json(
            200, {"data": {"total_credits": info.get("total_credits", 100.0), "total_usage": info["usage"]}}
        )

    def _generation(self) -> None:
        if self._auth() is None or self._simple_behaviour("/generation"):
            return
        gen_id = self._query.get("id")
        if not gen_id:
            self._error(400, "Missing required query parameter: id")
            return
        data = self.fake._generation(gen_id)
        if data is None:
            self._error(404, f"Generation {gen_id} not found")
            return
        self._json(200, {"data": data})

    # -- images ----------------------------------------------------------------------------------------

    def _image_models(self) -> None:
        if self._simple_behaviour("/images/models"):
            return
        self._json(200, {"data": catalogue.list_models("image")})

    def _images(self) -> None:
        key = self._auth()
        if key is None:
            return
        req = self._json_body()
        if req is None:
            return
        behaviour = self.fake._pop("/images")
        if isinstance(behaviour, HttpError):
            self._send_behaviour_error(behaviour)
            return
        if behaviour is not None and not isinstance(behaviour, StreamError):
            self._not_applicable(behaviour, "/images")
            return
        model_id = req.get("model")
        entry = catalogue.find_model(model_id) if isinstance(model_id, str) else None
        if entry is None:
            self._send_behaviour_error(model_not_found(str(model_id)))
            return
        if "image" not in entry["architecture"]["output_modalities"]:
            self._error(400, f"{model_id} does not support image output")
            return
        prompt = req.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            self._error(400, "prompt is required")
            return
        n = req.get("n", 1)
        if not isinstance(n, int) or not 1 <= n <= 10:
            self._error(400, "n must be an integer between 1 and 10")
            return
        for ref in req.get("input_references") or []:
            if isinstance(ref, dict):
                self.fake._media("/images", "image", (ref.get("image_url") or {}).get("url", ""))
        aspect = str(req.get("aspect_ratio") or "1:1")
        pngs = [fake_png(f"{model_id}|{prompt}|{i}", aspect) for i in range(n)]
        per_image = float(entry["pricing"].get("image", "0.04"))
        gen_id = self.fake._new_id("gen")
        created = int(self.fake.clock())

        def usage(count: int) -> dict[str, Any]:
            return {
                "prompt_tokens": 0,
                "completion_tokens": 4175 * count,
                "total_tokens": 4175 * count,
                "cost": round(per_image * count, 12),
            }

        def deliver(count: int) -> None:
            self.fake._charge(key, per_image * count)
            with self.fake._lock:
                for _ in range(count):
                    self.fake._image_generations.append(
                        Completion(
                            gen_id,
                            model_id,
                            None,
                            bool(req.get("stream")),
                            key,
                            prompt,
                            per_image,
                            self.fake.clock(),
                        )
                    )

        if not req.get("stream"):
            data = [
                {"b64_json": base64.b64encode(png).decode("ascii"), "media_type": "image/png"} for png in pngs
            ]
            deliver(n)
            self._json(
                200, {"created": created, "data": data, "usage": usage(n)}, {"X-Generation-Id": gen_id}
            )
            return
        writer = _SseWriter(self, self.fake.stream_style)
        try:
            writer.begin({"X-Generation-Id": gen_id})
            writer.comment()
            for i, png in enumerate(pngs):
                if isinstance(behaviour, StreamError) and i == behaviour.after_tokens:
                    writer.event(
                        {"type": "error", "error": {"message": behaviour.message, "code": behaviour.code}}
                    )
                    writer.done()
                    writer.finish()
                    return
                partial = fake_png(f"{model_id}|{prompt}|{i}|partial", "1:1")
                writer.event(
                    {
                        "type": "image_generation.partial_image",
                        "partial_image_index": i,
                        "b64_json": base64.b64encode(partial).decode("ascii"),
                    }
                )
                if self.fake.token_delay:
                    writer.flush()
                    self._wait(self.fake.token_delay)
                writer.event(
                    {
                        "type": "image_generation.completed",
                        "b64_json": base64.b64encode(png).decode(),
                        "media_type": "image/png",
                        "created": created,
                        "usage": usage(1),
                    }
                )
            if isinstance(behaviour, StreamError):
                writer.event(
                    {"type": "error", "error": {"message": behaviour.message, "code": behaviour.code}}
                )
            if not isinstance(behaviour, StreamError):
                deliver(n)
            writer.done()
            writer.finish()
        except _ClientGone:
            self.close_connection = True
            if not self.fake._was_dropped(self.connection):
                with self.fake._lock:
                    self.fake._aborted.append(gen_id)

    # -- videos ----------------------------------------------------------------------------------------

    def _video_models(self) -> None:
        if self._simple_behaviour("/videos/models"):
            return
        self._json(200, {"data": copy.deepcopy(catalogue.VIDEO_MODELS)})

    def _video_submit(self) -> None:
        key = self._auth()
        if key is None:
            return
        req = self._json_body()
        if req is None:
            return
        behaviour = self.fake._pop("/videos")
        if isinstance(behaviour, HttpError):
            self._send_behaviour_error(behaviour)
            return
        if isinstance(behaviour, Truncate):
            # The request arrived but the answer is lost: the client cannot know whether a job exists.
            self._hard_close()
            return
        if behaviour is not None and not isinstance(behaviour, VideoJob):
            self._not_applicable(behaviour, "/videos")
            return
        script = behaviour or VideoJob()
        model_id = req.get("model")
        spec = next((m for m in catalogue.VIDEO_MODELS if m["id"] == model_id), None)
        if spec is None:
            if isinstance(model_id, str) and catalogue.find_model(model_id) is not None:
                self._error(400, f"{model_id} does not support video generation")
            else:
                self._send_behaviour_error(model_not_found(str(model_id)))
            return
        frames = [f for f in req.get("frame_images") or [] if isinstance(f, dict)]
        prompt = req.get("prompt")
        if not (isinstance(prompt, str) and prompt.strip()) and not frames:
            self._error(400, "prompt is required")
            return
        for param, allowed in (
            ("resolution", spec["supported_resolutions"]),
            ("aspect_ratio", spec["supported_aspect_ratios"]),
            ("duration", spec["supported_durations"]),
        ):
            if req.get(param) is not None and req[param] not in allowed:
                self._error(400, f"Unsupported {param} {req[param]!r} for {model_id}; supported: {allowed}")
                return
        for ref in frames + [r for r in req.get("input_references") or [] if isinstance(r, dict)]:
            self.fake._media("/videos", "image", (ref.get("image_url") or {}).get("url", ""))
        job = _VideoState(
            id=self.fake._new_id("job", 16),
            generation_id=self.fake._new_id("gen"),
            model=model_id,
            prompt=str(prompt or ""),
            key=key,
            created=self.fake.clock(),
            script=script,
        )
        with self.fake._lock:
            self.fake._videos[job.id] = job
        self._json(202, {"id": job.id, "polling_url": self._polling_url(job), "status": "pending"})

    def _polling_url(self, job: _VideoState) -> str:
        path = f"/api/v1/videos/{job.id}"
        return path if job.script.relative_polling_url else self.fake.site_url + path

    def _video_job(self, job_id: str) -> _VideoState | None:
        with self.fake._lock:
            job = self.fake._videos.get(job_id)
        if job is None:
            self._error(404, f"Video job {job_id} not found")
        return job

    def _video_poll(self, job: str) -> None:
        if self._auth() is None or self._simple_behaviour(f"/videos/{job}"):
            return
        state = self._video_job(job)
        if state is None:
            return
        with self.fake._lock:
            status = self.fake._video_stage(state, advance=True)
            first_completion = status == "completed" and not state.finished
            if status in {"completed", "failed", "cancelled", "expired"}:
                state.finished = True
        body: dict[str, Any] = {
            "id": state.id,
            "generation_id": state.generation_id,
            "polling_url": self._polling_url(state),
            "status": status,
        }
        if status == "completed":
            body["unsigned_urls"] = [f"{self.fake.base_url}/videos/{state.id}/content?index=0"]
            body["usage"] = {"cost": state.script.cost, "is_byok": False}
        elif status == "failed":
            body["error"] = state.script.error
        if first_completion:
            self.fake._charge(state.key, state.script.cost)
            self.fake._store_generation(
                state.generation_id,
                {
                    "id": state.generation_id,
                    "total_cost": state.script.cost,
                    "model": state.model,
                    "api_type": "video",
                    "streamed": False,
                    "cancelled": False,
                    "finish_reason": "stop",
                },
            )
        self._json(200, body)

    def _video_content(self, job: str) -> None:
        if self._auth() is None or self._simple_behaviour(f"/videos/{job}/content"):
            return
        state = self._video_job(job)
        if state is None:
            return
        if self.fake._video_stage(state, advance=False) != "completed":
            self._error(404, f"Video job {job} has no content yet")
            return
        if self._query.get("index", "0") != "0":
            self._error(404, "No video at that index")
            return
        self._send(200, self.fake.video_content or fake_mp4(state.id), "video/mp4")

    # -- OAuth PKCE ------------------------------------------------------------------------------------

    def _oauth_authorize(self) -> None:
        if self._simple_behaviour("/auth"):  # e.g. the site failing while the user is mid-login
            return
        query = self._query
        callback = query.get("callback_url")
        challenge = query.get("code_challenge") or None
        method = query.get("code_challenge_method") or ("plain" if challenge else None)
        if method is not None and method not in {"S256", "plain"}:
            self._html(400, "<h1>Invalid code_challenge_method</h1>")
            return
        if callback is not None:
            parts = urlsplit(callback)
            loopback = parts.scheme == "http" and parts.hostname in {"localhost", "127.0.0.1"}
            if not (parts.scheme == "https" or loopback) or not parts.hostname:
                self._html(400, "<h1>Invalid callback_url</h1><p>Use https or a localhost URL.</p>")
                return
        elif not challenge:
            self._html(400, "<h1>code_challenge is required when no callback_url is given</h1>")
            return
        code = self.fake._random(24)
        with self.fake._lock:
            self.fake._oauth_codes[code] = _OAuthCode(
                challenge, method, self.fake.clock(), query.get("key_label")
            )
        if callback is None:
            self._html(
                200,
                "<!DOCTYPE html><html><body><h1>Your authorization code</h1>"
                f'<p>Paste it into your app:</p><code id="auth-code">{code}</code></body></html>',
            )
            return
        parts = urlsplit(callback)
        new_query = urlencode([*parse_qsl(parts.query, keep_blank_values=True), ("code", code)])
        location = urlunsplit((parts.scheme, parts.netloc, parts.path, new_query, parts.fragment))
        self._send(302, b"", "text/html; charset=utf-8", {"Location": location})

    def _auth_keys(self) -> None:
        if self._simple_behaviour("/auth/keys"):
            return
        req = self._json_body()
        if req is None:
            return
        code_value = req.get("code")
        if not isinstance(code_value, str) or not code_value:
            self._error(400, "Missing code")
            return
        with self.fake._lock:
            code = self.fake._oauth_codes.get(code_value)
        if code is None:
            self._error(403, "Invalid code or code_verifier")
            return
        if code.used:
            self._error(403, "Authorization code already used")
            return
        if self.fake.clock() - code.issued > OAUTH_CODE_TTL:
            self._error(403, "Authorization code expired")
            return
        if code.challenge is not None:
            # RFC 7636: an absent method means "plain".
            method = req.get("code_challenge_method") or "plain"
            if method != code.method:
                self._error(400, "Invalid code_challenge_method")
                return
            verifier = str(req.get("code_verifier") or "")
            if method == "S256":
                computed = (
                    base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
                )
            else:
                computed = verifier
            if computed != code.challenge:
                self._error(403, "Invalid code or code_verifier")
                return
        with self.fake._lock:
            if code.used:
                self._error(403, "Authorization code already used")
                return
            code.used = True
            new_key = "sk-or-v1-" + self.fake._random(64, "0123456789abcdef")
            user_id = "user_" + self.fake._random(27)
        self.fake.add_key(new_key, label=code.label or f"localhost:{self.fake.port}", creator_user_id=user_id)
        self._json(200, {"key": new_key, "user_id": user_id})

    # -- control API -----------------------------------------------------------------------------------

    def _control(self, path: str, body: bytes) -> None:
        fake = self.fake
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            self._error(400, "control API: body must be JSON")
            return
        name = path[len("/_fake/") :]
        method = self.command
        try:
            if method == "GET" and name == "requests":
                self._json(200, [r.to_json() for r in fake.requests])
            elif method == "GET" and name == "completions":
                self._json(200, [asdict(c) for c in fake.completions])
            elif method == "GET" and name == "stats":
                self._json(200, fake.stats())
            elif method == "POST" and name == "offline":
                seconds = payload.get("seconds")
                # Closed before answering, so the caller can rely on ECONNREFUSED right away; this very
                # connection is spared (it may belong to the listener being closed) and closed after.
                if seconds:
                    fake.offline_for(float(seconds), keep=self.connection)
                else:
                    fake.go_offline(keep=self.connection)
                self._json(200, {"online": False}, {"Connection": "close"})
                self.close_connection = True
            elif method == "POST" and name == "online":
                fake.go_online()
                self._json(200, {"online": True})
            elif method == "POST" and name == "enqueue":
                fake.enqueue(str(payload["path"]), behaviour_from_json(payload["behaviour"]))
                self._json(200, {"pending": fake.pending(str(payload["path"]))})
            elif method == "POST" and name == "keys":
                info = dict(payload)
                fake.add_key(str(info.pop("key")), **info)
                self._json(200, {"ok": True})
            elif method == "POST" and name == "revoke":
                fake.revoke_key(str(payload["key"]))
                self._json(200, {"ok": True})
            elif method == "POST" and name == "reset":
                fake.reset()
                self._json(200, {"ok": True})
            else:
                self._error(404, f"control API: no {method} /_fake/{name}")
        except (KeyError, TypeError, ValueError) as exc:
            self._error(400, f"control API: {exc}")


class _SseWriter:
    """Writes one SSE response exactly as ``StreamStyle`` says: framing, line endings, piece sizes."""

    def __init__(self, handler: _Handler, style: StreamStyle) -> None:
        self.handler = handler
        self.style = style
        self.newline = "\r\n" if style.crlf else "\n"
        self.buffer = bytearray()
        self.chunked = style.framing == "chunked"
        self._next: int | None = None
        self._sizes = self._size_source()

    def _size_source(self) -> Iterator[int]:
        if self.style.split == "odd":
            return itertools.cycle(_ODD_SIZES)
        if self.style.split == "byte":
            return itertools.repeat(1)
        rng = random.Random(self.style.seed)
        return (rng.randint(1, 17) for _ in itertools.count())

    def begin(self, headers: dict[str, str]) -> None:
        h = self.handler
        try:
            h.send_response(200)
            h.send_header("Content-Type", "text/event-stream")
            h.send_header("Cache-Control", "no-cache")
            h.send_header("X-Accel-Buffering", "no")
            for name, value in headers.items():
                h.send_header(name, value)
            if self.chunked:
                h.send_header("Transfer-Encoding", "chunked")
            else:
                h.send_header("Connection", "close")
                h.close_connection = True
            h.end_headers()
        except OSError as exc:
            raise _ClientGone from exc

    @staticmethod
    def encode_event(obj: dict[str, Any], newline: str) -> bytes:
        return (
            f"data: {json.dumps(obj, ensure_ascii=False, separators=(',', ':'))}{newline}{newline}".encode()
        )

    def comment(self) -> None:
        self.raw(f": OPENROUTER PROCESSING{self.newline}{self.newline}".encode())

    def event(self, obj: dict[str, Any]) -> None:
        self.raw(self.encode_event(obj, self.newline))

    def done(self) -> None:
        self.raw(f"data: [DONE]{self.newline}{self.newline}".encode())

    def raw(self, data: bytes) -> None:
        if self.style.split == "event":
            self._write(data)
            return
        self.buffer += data
        while True:
            if self._next is None:
                self._next = next(self._sizes)
            if len(self.buffer) < self._next:
                return
            piece = bytes(self.buffer[: self._next])
            del self.buffer[: self._next]
            self._next = None
            self._write(piece)

    def flush(self) -> None:
        """Send whatever is buffered (before a pause, so the client is not kept waiting on held bytes)."""
        if self.buffer:
            piece = bytes(self.buffer)
            self.buffer.clear()
            self._write(piece)

    def finish(self) -> None:
        self.flush()
        if self.chunked:
            self._send(b"0\r\n\r\n")

    def _write(self, piece: bytes) -> None:
        rec = self.handler._rec
        if rec is not None:
            rec.stream_writes.append(piece)
        self._send(b"%X\r\n%s\r\n" % (len(piece), piece) if self.chunked else piece)
        if self.style.piece_delay:
            self.handler._wait(self.style.piece_delay)

    def _send(self, data: bytes) -> None:
        try:
            self.handler.wfile.write(data)
            self.handler.wfile.flush()
        except OSError as exc:
            raise _ClientGone from exc


# =========================================================================================================
# Standalone mode


def main(argv: list[str] | None = None) -> int:
    """Run the fake until SIGTERM/SIGINT, printing its addresses as one JSON line on stdout."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.openrouter", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--port", type=int, default=0, help="API port (0 = any free port)")
    parser.add_argument("--control-port", type=int, default=0, help="control API port (0 = any free port)")
    parser.add_argument("--key", action="append", default=[], help="a valid API key (repeatable)")
    parser.add_argument("--token-delay", type=float, default=0.0, help="seconds before each streamed chunk")
    parser.add_argument(
        "--split",
        default="event",
        choices=["event", "odd", "random", "byte"],
        help="how SSE bytes are cut into writes",
    )
    parser.add_argument("--crlf", action="store_true", help="use CRLF line endings in SSE streams")
    parser.add_argument("--reply-text", default=None, help="fixed answer text instead of 'Echo: <prompt>'")
    parser.add_argument(
        "--generation-delay",
        type=float,
        default=1.0,
        help="seconds /generation answers 404 after a completion",
    )
    args = parser.parse_args(argv)
    fake = FakeOpenRouter(
        port=args.port,
        keys={key: {} for key in args.key} or None,
        token_delay=args.token_delay,
        stream_style=StreamStyle(split=args.split, crlf=args.crlf),
        reply_text=args.reply_text,
        generation_delay=args.generation_delay,
        control_port=args.control_port,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    fake.start()
    print(
        json.dumps(
            {
                "base_url": fake.base_url,
                "control_url": fake.control_url,
                "site_url": fake.site_url,
                "port": fake.port,
                "control_port": fake._control_port,
                "keys": list(fake._initial_keys),
            }
        ),
        flush=True,
    )
    while not stop.wait(0.2):
        pass
    fake.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
