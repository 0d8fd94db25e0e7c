"""The connection to OpenRouter: one connection pool, URLs, headers, sending, and HTTP statuses as errors.

Every request the client makes goes through :class:`Connection`. Security rules kept here (docs/security.md,
"The API key"): the API key travels only in the ``Authorization`` header and only to the origin of
``base_url``; redirects are never followed for API calls; certificates are verified against the OS trust store;
the key never appears in an exception's text, ``repr`` or metadata.

The network is reached through an ``httpx.AsyncBaseTransport``: by default httpx's own (with the proxy and
TLS settings given here); tests and the composition root may inject another one (``httpx.MockTransport``,
``httpx.ASGITransport``), which then carries every request.
"""

from __future__ import annotations

import json
import ssl
from typing import Any

import httpx
import truststore

from backend.openrouter.classification import error_from_http
from backend.openrouter.errors import UpstreamError, answer_too_large, transport_error, unexpected_answer

__all__ = ["MAX_ERROR_BODY", "Connection", "read_capped", "status_error"]

# Error bodies are read for their message only; a misbehaving server must not make us buffer megabytes.
MAX_ERROR_BODY = 256 * 1024
# Writes of large requests (images as data URLs) may be slow on a poor uplink; this bounds each write call.
_WRITE_TIMEOUT = 60.0
# Account and catalogue answers (JSON lists of models, key details) are small; this only stops a runaway.
_MAX_JSON_BYTES = 64 * 2**20
#: Connections to OpenRouter: httpx's default pool (100, 20 kept alive) made the 101st simultaneous stream wait
#: for a free connection, and reconnect after a burst. A Studio request sent at once never waits for a slot
#: (docs/outbox.md); the outbox's own concurrency bounds the rest.
_POOL = httpx.Limits(max_connections=1000, max_keepalive_connections=100)


class Connection:
    """One httpx connection pool to one OpenRouter base URL for the client's whole life.

    ``transport`` replaces the network (see the module docstring); ``proxy`` / ``ssl_context`` must then be
    left unset, since they configure the default transport only.
    """

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        stream_idle_timeout: float,
        proxy: str | None,
        ssl_context: ssl.SSLContext | None,
        transport: httpx.AsyncBaseTransport | None,
        headers: dict[str, str],
    ) -> None:
        base = httpx.URL(base_url.rstrip("/") + "/")
        if base.scheme not in ("http", "https") or not base.host:
            raise ValueError("The OpenRouter base URL must be an http(s) URL")
        self._base = base
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.stream_idle_timeout = stream_idle_timeout
        self.timeout = httpx.Timeout(
            connect=connect_timeout, read=read_timeout, write=_WRITE_TIMEOUT, pool=connect_timeout
        )
        # Streamed answers (chat streams, downloads) wait at most the idle timeout between two reads.
        self.stream_timeout = httpx.Timeout(
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
            timeout=self.timeout,
            follow_redirects=False,
            limits=_POOL,
            verify=ssl_context if ssl_context is not None else True,
            proxy=proxy,
            transport=transport,
            # With an injected transport nothing from the environment (proxies, SSL_CERT_FILE) applies.
            trust_env=transport is None,
            headers=headers,
        )

    @property
    def base_url(self) -> str:
        """The API base URL (no trailing slash)."""
        return str(self._base).rstrip("/")

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    def url(self, path_or_url: str) -> httpx.URL:
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

    def _headers(self, url: httpx.URL, api_key: str | None, accept: str = "application/json") -> dict[str, str]:
        headers = {"Accept": accept}
        # The key goes only to the configured OpenRouter origin, never to a host a response pointed us at.
        if api_key and self._same_origin(url):
            headers["Authorization"] = f"Bearer {api_key}"
        return headers

    async def reachable(self, path: str) -> bool:
        """Does anything answer ``GET path``? Any HTTP answer counts; connection failures and timeouts do not."""
        url = self.url(path)
        timeout = httpx.Timeout(
            connect=self.connect_timeout, read=self.connect_timeout, write=10, pool=self.connect_timeout
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

    async def send(
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
        """Send one request (redirects not followed); a transport failure raises a scrubbed UpstreamError."""
        request = self._http.build_request(
            method,
            url,
            params=params,
            json=json_body,
            headers=self._headers(url, api_key, accept),
            timeout=timeout or self.timeout,
        )
        error: UpstreamError | None = None
        try:
            return await self._http.send(request, stream=stream)
        except httpx.TransportError as exc:
            read = (timeout or self.timeout).read
            # httpx sends the whole request before it reads: a read-side failure means it went out.
            sent = isinstance(exc, httpx.ReadError | httpx.ReadTimeout | httpx.RemoteProtocolError)
            error = transport_error(exc, sent=sent, idempotent=idempotent, timeout=read)
        except (AttributeError, OSError) as exc:
            # A socket the server closed while the connection was still being set up: the network layer
            # below httpx then fails on the missing socket ("'NoneType' object has no attribute
            # 'getpeername'") instead of raising a ConnectError. Nothing was sent unless the HTTP layer ran.
            if not _in_network_layer(exc):
                raise
            sent = _reached_http_layer(exc)
            lost = httpx.RemoteProtocolError(str(exc)) if sent else httpx.ConnectError(str(exc))
            error = transport_error(lost, sent=sent, idempotent=idempotent, timeout=(timeout or self.timeout).read)
        # Raised outside the except block so the httpx exception (which holds the request and its headers)
        # is not chained to our error.
        raise error.scrubbed(api_key)

    async def json_call(
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
        url = self.url(path_or_url)
        idempotent = method == "GET"
        response = await self.send(
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
                body = await read_capped(response, MAX_ERROR_BODY)
                error = status_error(response, body, model=model, context=context)
        except httpx.TransportError as exc:
            error = transport_error(exc, sent=True, idempotent=idempotent, timeout=self.read_timeout)
        finally:
            await response.aclose()
        if error is not None:
            raise error.scrubbed(api_key)
        return response, payload


def status_error(response: httpx.Response, body: bytes, *, model: str | None, context: str) -> UpstreamError:
    """The error an API call's answer other than 200 stands for (a redirect, or OpenRouter's error answer)."""
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


async def read_capped(response: httpx.Response, limit: int) -> bytes:
    """Read at most ``limit`` bytes of a streamed response body (the rest is dropped)."""
    buffer = bytearray()
    async for chunk in response.aiter_bytes():
        buffer += chunk
        if len(buffer) >= limit:
            break
    return bytes(buffer[:limit])


def _frames(exc: BaseException) -> list[str]:
    """The file names of the frames ``exc`` went through, outermost first."""
    names = []
    tb = exc.__traceback__
    while tb is not None:
        names.append(tb.tb_frame.f_code.co_filename.replace("\\", "/"))
        tb = tb.tb_next
    return names


def _in_network_layer(exc: BaseException) -> bool:
    """Whether ``exc`` was raised inside httpcore's connection handling (not in Atelier's own code)."""
    return any("/httpcore/" in name for name in _frames(exc))


def _reached_http_layer(exc: BaseException) -> bool:
    """Whether httpcore had started the HTTP exchange (so the request may have gone out)."""
    return any(name.endswith(("/httpcore/_async/http11.py", "/httpcore/_async/http2.py")) for name in _frames(exc))
