"""The OpenRouter client: the only code in Atelier that talks to OpenRouter.

Everything that can go wrong on the wire is turned into one exception type, :class:`UpstreamError`
(``errors.py``; OpenRouter's own error answers are read in ``classification.py``).

Security rules kept here (docs/security.md, "The API key"): the API key travels only in the
``Authorization`` header and only to the origin of ``base_url``; redirects are never followed for API calls;
certificates are verified against the OS trust store; the key never appears in an exception's text, ``repr`` or
metadata.

The network is reached through an ``httpx.AsyncBaseTransport``: by default httpx's own (with the proxy and
TLS settings given here); tests and the composition root may inject another one (``httpx.MockTransport``,
``httpx.ASGITransport``), which then carries every request.
"""

from __future__ import annotations

import json
import ssl
import urllib.parse
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import httpx
import truststore

from backend.core.settings import DEFAULT_BASE_URL
from backend.openrouter.answers import chat_result, data_list
from backend.openrouter.classification import error_from_http, in_band_error
from backend.openrouter.errors import (
    UpstreamError,
    answer_too_large,
    too_large,
    transport_error,
    unexpected_answer,
)
from backend.openrouter.results import (
    ChatResult,
    ImageDelta,
    ReasoningDelta,
    StreamEvent,
    StreamFinished,
    StreamStarted,
    TextDelta,
    as_int,
)
from backend.openrouter.stream import StreamState, read_stream

__all__ = ["OpenRouterClient"]

# Error bodies are read for their message only; a misbehaving server must not make us buffer megabytes.
_MAX_ERROR_BODY = 256 * 1024
# Writes of large requests (images as data URLs) may be slow on a poor uplink; this bounds each write call.
_WRITE_TIMEOUT = 60.0
#: Connections to OpenRouter: httpx's default pool (100, 20 kept alive) made the 101st simultaneous stream wait
#: for a free connection, and reconnect after a burst. A Studio request sent at once never waits for a slot
#: (docs/outbox.md); the outbox's own concurrency bounds the rest.
_POOL = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
_MAX_DOWNLOAD_REDIRECTS = 5
# Account and catalogue answers (JSON lists of models, key details) are small; this only stops a runaway.
_MAX_JSON_BYTES = 64 * 2**20


class OpenRouterClient:
    """An async OpenRouter client with one connection pool for its whole life; close it with ``aclose()``.

    ``transport`` replaces the network: every request goes through it (an ``httpx.MockTransport`` in tests,
    for example), and ``proxy`` / ``ssl_context`` must then be left unset, since they configure the default
    transport only.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        connect_timeout: float = 15,
        read_timeout: float = 600,
        stream_idle_timeout: float = 180,
        proxy: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        app_url: str = "https://github.com/atelier-studio/atelier",
        app_title: str = "Atelier",
        categories: str = "creative-writing,image-gen",
        max_answer_bytes: int = 8 * 2**20,
        max_media_bytes: int = 200 * 2**20,
    ) -> None:
        base = httpx.URL(base_url.rstrip("/") + "/")
        if base.scheme not in ("http", "https") or not base.host:
            raise ValueError("The OpenRouter base URL must be an http(s) URL")
        self._base = base
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._stream_idle_timeout = stream_idle_timeout
        self._max_answer_bytes = max_answer_bytes
        self._max_media_bytes = max_media_bytes
        self._timeout = httpx.Timeout(
            connect=connect_timeout, read=read_timeout, write=_WRITE_TIMEOUT, pool=connect_timeout
        )
        self._stream_timeout = httpx.Timeout(
            connect=connect_timeout, read=stream_idle_timeout, write=_WRITE_TIMEOUT, pool=connect_timeout
        )
        if transport is not None and (proxy is not None or ssl_context is not None):
            # httpx would mount a proxy transport in front of the injected one (bypassing it), and the TLS
            # context would be silently unused: the injected transport owns the whole network path.
            raise ValueError("Give either a transport or proxy/TLS settings, not both")
        if transport is None and ssl_context is None:
            # The OS trust store, so TLS-inspecting corporate proxies work once IT installs their CA.
            ssl_context = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self._http = httpx.AsyncClient(
            timeout=self._timeout,
            follow_redirects=False,
            limits=_POOL,
            verify=ssl_context if ssl_context is not None else True,
            proxy=proxy,
            transport=transport,
            # With an injected transport nothing from the environment (proxies, SSL_CERT_FILE) applies.
            trust_env=transport is None,
            headers={
                "HTTP-Referer": app_url,
                "X-OpenRouter-Title": app_title,
                "X-Title": app_title,
                "X-OpenRouter-Categories": categories,
                "User-Agent": f"{app_title} ({app_url})",
            },
        )

    @property
    def base_url(self) -> str:
        """The API base URL (no trailing slash)."""
        return str(self._base).rstrip("/")

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> OpenRouterClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ---- URLs and requests ----

    def _url(self, path_or_url: str) -> httpx.URL:
        """Resolve an API path ("key", "/api/v1/videos/x") or an absolute URL; refuse anything but http(s)."""
        prefix = "/api/v1/"
        if path_or_url.startswith(prefix) and self._base.path.endswith(prefix):
            # OpenRouter's root-relative links ("/api/v1/videos/…") keep a gateway's path prefix when the
            # base URL is not OpenRouter's own (e.g. https://gateway.example/openrouter/api/v1).
            path_or_url = path_or_url[len(prefix) :]
        url = self._base.join(path_or_url)  # absolute URLs replace the base, as in a browser
        if url.scheme not in ("http", "https") or not url.host:
            raise UpstreamError(
                "bad_request",
                "reject",
                "OpenRouter returned a link that is not an http(s) address; it was not opened.",
                metadata={"scheme": url.scheme},
            )
        return url

    def _same_origin(self, url: httpx.URL) -> bool:
        return (url.scheme, url.host, url.port) == (self._base.scheme, self._base.host, self._base.port)

    def _headers(
        self, url: httpx.URL, api_key: str | None, accept: str = "application/json"
    ) -> dict[str, str]:
        headers = {"Accept": accept}
        # The key goes only to the configured OpenRouter origin, never to a host a response pointed us at.
        if api_key and self._same_origin(url):
            headers["Authorization"] = f"Bearer {api_key}"
        return headers

    async def _send(
        self,
        method: str,
        url: httpx.URL,
        api_key: str | None,
        *,
        json_body: dict | None = None,
        params: dict | None = None,
        stream: bool = False,
        accept: str = "application/json",
        timeout: httpx.Timeout | None = None,
        idempotent: bool,
    ) -> httpx.Response:
        request = self._http.build_request(
            method,
            url,
            params=params,
            json=json_body,
            headers=self._headers(url, api_key, accept),
            timeout=timeout or self._timeout,
        )
        error: UpstreamError | None = None
        try:
            return await self._http.send(request, stream=stream)
        except httpx.TransportError as exc:
            read = (timeout or self._timeout).read
            # httpx sends the whole request before it reads: a read-side failure means it went out.
            sent = isinstance(exc, httpx.ReadError | httpx.ReadTimeout | httpx.RemoteProtocolError)
            error = transport_error(exc, sent=sent, idempotent=idempotent, timeout=read)
        # Raised outside the except block so the httpx exception (which holds the request and its headers)
        # is not chained to our error.
        raise error.scrubbed(api_key)

    async def _json_call(
        self,
        method: str,
        path_or_url: str,
        api_key: str | None,
        *,
        context: str,
        json_body: dict | None = None,
        params: dict | None = None,
        model: str | None = None,
        ok: tuple[int, ...] = (200,),
        max_bytes: int = _MAX_JSON_BYTES,
    ) -> tuple[httpx.Response, Any]:
        """Send a request, read the whole answer (at most ``max_bytes``), raise UpstreamError unless it is
        ``ok`` JSON."""
        url = self._url(path_or_url)
        idempotent = method == "GET"
        response = await self._send(
            method, url, api_key, json_body=json_body, params=params, stream=True, idempotent=idempotent
        )
        error: UpstreamError | None = None
        payload: Any = None
        try:
            if response.status_code in ok:
                body = await read_capped(response, max_bytes + 1)
                if len(body) > max_bytes:
                    error = answer_too_large(max_bytes, partial_kept=False)
                else:
                    try:
                        payload = json.loads(body)
                    except (ValueError, UnicodeDecodeError):
                        error = unexpected_answer(response.status_code, "not JSON")
            else:
                body = await read_capped(response, _MAX_ERROR_BODY)
                error = self._status_error(response, body, model=model, context=context)
        except httpx.TransportError as exc:
            error = transport_error(exc, sent=True, idempotent=idempotent, timeout=self._read_timeout)
        finally:
            await response.aclose()
        if error is not None:
            raise error.scrubbed(api_key)
        return response, payload

    def _status_error(
        self, response: httpx.Response, body: bytes, *, model: str | None, context: str
    ) -> UpstreamError:
        if 300 <= response.status_code < 400:
            # Something answered, so this is not "offline" (which would retry at once, without backoff): it
            # is an upstream error, sent again with the normal backoff.
            target = httpx.URL(response.headers.get("location", ""))
            return UpstreamError(
                "upstream_error",
                "retry",
                "OpenRouter's address answered with a redirect"
                + (f" to {target.host}" if target.host else "")
                + " instead of the API, so the request will be sent again later; if this goes on, a captive "
                "portal or proxy is intercepting the connection or the OpenRouter base URL in Settings is wrong.",
                upstream_status=response.status_code,
                metadata={"location_host": target.host} if target.host else {},
            )
        return error_from_http(response.status_code, response.headers, body, model=model, context=context)

    def _answer_limit(self, body: dict) -> int:
        """Most bytes a chat answer to ``body`` may have: text, plus room for images when it asks for them
        (they come inline, base64-encoded; each is checked against the media limit when stored)."""
        modalities = body.get("modalities")
        wants_images = isinstance(modalities, list) and "image" in modalities
        return self._max_answer_bytes + (2 * self._max_media_bytes if wants_images else 0)

    def _check_text_size(self, result: ChatResult) -> None:
        size = len(result.text.encode()) + len((result.reasoning or "").encode())
        if size > self._max_answer_bytes:
            err = answer_too_large(self._max_answer_bytes, partial_kept=False)
            err.usage = result.usage
            raise err

    # ---- account and catalogue ----

    async def probe(self) -> bool:
        """Is OpenRouter reachable? Any HTTP answer counts; connection failures and timeouts do not."""
        url = self._url("key")
        timeout = httpx.Timeout(
            connect=self._connect_timeout, read=self._connect_timeout, write=10, pool=self._connect_timeout
        )
        try:
            response = await self._http.send(
                self._http.build_request("GET", url, headers=self._headers(url, None), timeout=timeout),
                stream=True,
            )
        except httpx.TransportError:
            return False
        await response.aclose()
        return True

    async def get_key_info(self, api_key: str) -> dict:
        """``GET /key``: the key's ``data`` object (label, limit, usage, is_free_tier, …)."""
        _, payload = await self._json_call("GET", "key", api_key, context="key")
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, dict):
            raise unexpected_answer(200, "no key data").scrubbed(api_key)
        return data

    async def exchange_oauth_code(self, code: str, verifier: str) -> str:
        """``POST /auth/keys`` (PKCE, no Authorization header): the user-controlled key for ``code``."""
        _, payload = await self._json_call(
            "POST", "auth/keys", None, context="oauth",
            json_body={"code": code, "code_verifier": verifier, "code_challenge_method": "S256"},
        )
        key = payload.get("key") if isinstance(payload, dict) else None
        if not isinstance(key, str) or not key:
            raise unexpected_answer(200, "no key in the sign-in answer")
        return key

    async def list_models(self, output: str = "text", api_key: str | None = None) -> list[dict]:
        """``GET /models?output_modalities=<output>``: the model catalogue entries."""
        _, payload = await self._json_call(
            "GET", "models", api_key, context="models", params={"output_modalities": output}
        )
        return data_list(payload, api_key)

    async def video_models(self, api_key: str | None = None) -> list[dict]:
        """``GET /videos/models``: video models with their supported resolutions, durations, …"""
        _, payload = await self._json_call("GET", "videos/models", api_key, context="models")
        return data_list(payload, api_key)

    # ---- chat ----

    async def chat(self, api_key: str, body: dict) -> ChatResult:
        """A non-streamed chat completion. Raises UpstreamError for every failure form, including 200 answers
        that carry an error, a choice-level error, or no content at all."""
        request_body = {key: value for key, value in body.items() if key != "stream"}
        model = body.get("model") if isinstance(body.get("model"), str) else None
        response, payload = await self._json_call(
            "POST",
            "chat/completions",
            api_key,
            context="chat",
            json_body=request_body,
            model=model,
            max_bytes=self._answer_limit(request_body),
        )
        try:
            result = chat_result(payload, response.headers, model=model)
            self._check_text_size(result)
        except UpstreamError as err:
            raise err.scrubbed(api_key) from None
        return result

    def chat_stream(self, api_key: str, body: dict) -> AsyncGenerator[StreamEvent, None]:
        """A streamed chat completion as an async generator of stream events.

        Events: KeepAlive (any time), StreamStarted (once, before the first delta), TextDelta /
        ReasoningDelta / ImageDelta, then StreamFinished. Failures raise UpstreamError; deltas already yielded
        stay with the caller (``output_started`` tells it they exist). Closing the generator (``aclose()``,
        leaving an ``aclosing`` block, cancelling the task) closes the upstream connection at once, which
        stops generation (and billing) at providers that support cancellation.
        """
        return self._chat_stream(api_key, {**body, "stream": True})

    async def _chat_stream(self, api_key: str, body: dict) -> AsyncGenerator[StreamEvent, None]:
        model = body.get("model") if isinstance(body.get("model"), str) else None
        url = self._url("chat/completions")
        response = await self._send(
            "POST",
            url,
            api_key,
            json_body=body,
            stream=True,
            accept="text/event-stream",
            timeout=self._stream_timeout,
            idempotent=False,
        )
        state = StreamState(
            model=model,
            generation_id=response.headers.get("x-generation-id"),
            max_text_bytes=self._max_answer_bytes,
        )
        try:
            if response.status_code != 200:
                error: UpstreamError | None = None
                try:
                    body_bytes = await read_capped(response, _MAX_ERROR_BODY)
                    error = self._status_error(response, body_bytes, model=model, context="chat")
                except httpx.TransportError as exc:
                    error = transport_error(
                        exc, sent=True, idempotent=False, timeout=self._stream_idle_timeout
                    )
                raise error.scrubbed(api_key)
            content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type == "application/json":
                # Some errors (and some gateways) answer a stream request with a plain JSON body.
                async for event in self._json_instead_of_stream(response, api_key, model, self._answer_limit(body)):
                    yield event
                return
            if content_type == "text/html":
                # A web page (captive portal, proxy, wrong base URL) answered, not OpenRouter: nothing ran.
                raise unexpected_answer(200, "a web page instead of an event stream").scrubbed(api_key)
            reading = read_stream(
                response,
                state,
                api_key,
                idle_timeout=self._stream_idle_timeout,
                max_event_bytes=self._answer_limit(body),
            )
            async for event in reading:
                yield event
        finally:
            # Closing the response without reading it to the end closes the socket: the upstream sees the
            # abort and stops generating.
            await response.aclose()

    async def _json_instead_of_stream(
        self, response: httpx.Response, api_key: str, model: str | None, max_bytes: int
    ) -> AsyncIterator[StreamEvent]:
        error: UpstreamError | None = None
        result: ChatResult | None = None
        try:
            body = await read_capped(response, max_bytes + 1)
            if len(body) > max_bytes:
                raise answer_too_large(max_bytes, partial_kept=False)
            payload = json.loads(body)
            result = chat_result(payload, response.headers, model=model)
            self._check_text_size(result)
        except (ValueError, UnicodeDecodeError):
            error = unexpected_answer(200, "not JSON")
        except UpstreamError as err:
            error = err
        except httpx.TransportError as exc:
            error = transport_error(exc, sent=True, idempotent=False, timeout=self._stream_idle_timeout)
        if error is not None or result is None:
            raise (error or unexpected_answer(200, "empty")).scrubbed(api_key)
        yield StreamStarted(upstream_id=result.upstream_id, model=result.model)
        if result.reasoning:
            yield ReasoningDelta(result.reasoning)
        if result.text:
            yield TextDelta(result.text)
        for url in result.images:
            yield ImageDelta(url)
        yield StreamFinished(
            usage=result.usage, finish_reason=result.finish_reason, model=result.model, tool_calls=result.tool_calls
        )

    # ---- video ----

    async def submit_video(self, api_key: str, body: dict) -> dict:
        """``POST /videos``: start a video job; returns ``{"id", "polling_url", "status", …}`` (with
        ``generation_id`` from the ``X-Generation-Id`` header when OpenRouter sends one)."""
        model = body.get("model") if isinstance(body.get("model"), str) else None
        response, payload = await self._json_call(
            "POST", "videos", api_key, context="video_submit", json_body=body, model=model, ok=(200, 201, 202)
        )
        if isinstance(payload, dict) and "error" in payload and "id" not in payload:
            raise in_band_error(
                payload["error"], model=model, context="video_submit", output_started=False
            ).scrubbed(api_key)
        if not isinstance(payload, dict) or not isinstance(payload.get("id"), str) or not payload["id"]:
            # The job may exist upstream, but without its id it cannot be followed.
            error = unexpected_answer(200, "no job id")
            error.disposition = "unknown"
            raise error.scrubbed(api_key)
        if not payload.get("generation_id") and response.headers.get("x-generation-id"):
            # The generation id names the job in the user's OpenRouter activity, even before it finishes.
            payload["generation_id"] = response.headers["x-generation-id"]
        return payload

    async def get_video(self, api_key: str, job_id: str, polling_url: str | None = None) -> dict:
        """Poll a video job. ``polling_url`` may be absolute or relative to the OpenRouter origin; without
        it, ``/videos/<job_id>`` is used. The key is sent only when the URL is on the OpenRouter origin."""
        target = polling_url or "videos/" + urllib.parse.quote(job_id, safe="")
        _, payload = await self._json_call("GET", target, api_key, context="video_poll")
        if not isinstance(payload, dict) or not isinstance(payload.get("status"), str):
            raise unexpected_answer(200, "no job status").scrubbed(api_key)
        return payload

    async def download(self, api_key: str, url: str, *, max_bytes: int) -> AsyncIterator[bytes]:
        """Stream a file (a video's ``unsigned_urls`` entry, …) in chunks.

        Redirects are followed here (storage links often redirect), at most a few, only to http(s), never
        from https to http, and the key is dropped as soon as the URL leaves the OpenRouter origin. Raises
        UpstreamError when the file is larger than ``max_bytes``.
        """
        current = self._url(url)
        for _ in range(_MAX_DOWNLOAD_REDIRECTS + 1):
            response = await self._send(
                "GET",
                current,
                api_key,
                stream=True,
                accept="*/*",
                timeout=self._stream_timeout,
                idempotent=True,
            )
            error: UpstreamError | None = None
            try:
                if response.is_redirect and "location" in response.headers:
                    next_url = current.join(response.headers["location"])
                    if next_url.scheme not in ("http", "https") or (
                        current.scheme == "https" and next_url.scheme == "http"
                    ):
                        error = UpstreamError(
                            "upstream_error",
                            "reject",
                            "The download link redirected to an address Atelier does not open.",
                            upstream_status=response.status_code,
                        )
                    else:
                        current = next_url
                        continue
                elif response.status_code != 200:
                    body = await read_capped(response, _MAX_ERROR_BODY)
                    error = error_from_http(
                        response.status_code, response.headers, body, model=None, context="video_poll"
                    )
                else:
                    declared = as_int(response.headers.get("content-length"))
                    if declared is not None and declared > max_bytes:
                        error = too_large(max_bytes)
                    else:
                        received = 0
                        try:
                            async for chunk in response.aiter_bytes():
                                received += len(chunk)
                                if received > max_bytes:
                                    error = too_large(max_bytes)
                                    break
                                yield chunk
                        except httpx.TransportError as exc:
                            error = transport_error(
                                exc, sent=True, idempotent=True, timeout=self._stream_idle_timeout
                            )
                        if error is None:
                            return
            finally:
                await response.aclose()
            if error is not None:
                raise error.scrubbed(api_key)
        raise UpstreamError(
            "upstream_error", "reject", "The download link redirected too many times; it was not followed."
        )


async def read_capped(response: httpx.Response, limit: int) -> bytes:
    """Read at most ``limit`` bytes of a streamed response body (the rest is dropped)."""
    buffer = bytearray()
    async for chunk in response.aiter_bytes():
        buffer += chunk
        if len(buffer) >= limit:
            break
    return bytes(buffer[:limit])
