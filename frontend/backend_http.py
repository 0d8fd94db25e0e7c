"""How the UI reaches the Atelier backend (FastAPI, ``/api/v1``) over loopback HTTP: one connection pool, the
launch token, timeouts, and the backend's answers turned into values or errors. The calls themselves, one per
endpoint, are in ``backend_client.py``.

Every call carries the launch token as a bearer token. Errors come back as :class:`BackendError`
(the backend's ``{"error": {...}}`` body, parsed) or :class:`BackendUnavailable` when the backend
cannot be reached at all, so views can tell "OpenRouter is offline" from "the engine is not running".
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import httpx

#: Loopback calls are fast; a backend that takes longer than this to accept a connection is not running.
CONNECT_TIMEOUT = 2.0
#: Ordinary JSON calls (lists, settings, status).
READ_TIMEOUT = 20.0
#: A non-streamed generation (image, or text without JavaScript) waits for the model to finish.
GENERATION_TIMEOUT = 600.0
#: Streams may idle between events while a model thinks; the backend closes them when done.
STREAM_READ_TIMEOUT = 600.0


class BackendError(Exception):
    """The backend answered with an error (``{"error": {"code", "message", ...}}``)."""

    def __init__(self, status: int, code: str, message: str, payload: Mapping[str, Any] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.payload: dict[str, Any] = dict(payload or {})

    @property
    def error(self) -> dict[str, Any]:
        """The ``error`` object of the response (at least ``code`` and ``message``)."""
        error = self.payload.get("error")
        if isinstance(error, dict):
            return error
        return {"code": self.code, "message": self.message}

    @property
    def generation(self) -> dict[str, Any] | None:
        """The generation record some errors carry (502: queued for later; 400: kept as failed)."""
        generation = self.payload.get("generation")
        return generation if isinstance(generation, dict) else None


class BackendUnavailable(BackendError):
    """The backend could not be reached (not running, crashed, or timed out)."""

    def __init__(self, message: str):
        super().__init__(
            503,
            "backend_unreachable",
            message,
            {"error": {"code": "backend_unreachable", "message": message}},
        )


def _error_from_response(response: httpx.Response) -> BackendError:
    """Build a :class:`BackendError` from a non-2xx backend response (tolerating non-JSON bodies)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        return BackendError(
            response.status_code,
            str(error.get("code") or "error"),
            str(error.get("message") or "The request failed."),
            body,
        )
    if isinstance(body, dict) and "detail" in body:  # framework-level errors (e.g. FastAPI 422)
        message = body["detail"] if isinstance(body["detail"], str) else "The request was not valid."
        return BackendError(response.status_code, "invalid_request", message, {"error": {
            "code": "invalid_request", "message": message}})
    message = f"The Atelier engine answered HTTP {response.status_code}."
    return BackendError(response.status_code, "http_error", message,
                        {"error": {"code": "http_error", "message": message}})


def _unavailable(exc: httpx.TransportError) -> BackendUnavailable:
    if isinstance(exc, httpx.TimeoutException):
        return BackendUnavailable("The Atelier engine did not answer in time. Try again.")
    return BackendUnavailable("The Atelier engine is not running. Restart Atelier to reconnect.")


def segment(value: str) -> str:
    """Quote one path segment so an id can never change the path it is put in."""
    return quote(value, safe="")


#: Connections to the backend at most: more than the UI server's worker threads (desktop/servers.py, 128).
POOL_CONNECTIONS = 160


class BackendHttp:
    """A synchronous connection to the backend's local API. Thread-safe (one ``httpx.Client``)."""

    def __init__(self, api_url: str, token: str, *, transport: httpx.BaseTransport | None = None):
        self.api_url = api_url.rstrip("/")
        self._client = httpx.Client(
            base_url=f"{self.api_url}/api/v1",
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT),
            follow_redirects=False,
            transport=transport,
            trust_env=False,  # never route loopback calls through a configured HTTP proxy
            # One connection per UI worker thread (each streamed answer holds one while it streams), all kept
            # alive: with httpx's default (100, 20 kept) a page's call waited while 100 streams ran, and a
            # burst of streams reconnected to the backend each time.
            limits=httpx.Limits(max_connections=POOL_CONNECTIONS, max_keepalive_connections=POOL_CONNECTIONS),
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | Iterator[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Send one request (a JSON body, or raw ``content``) and return the decoded JSON answer (``None`` for
        204)."""
        clean_params = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        kwargs: dict[str, Any] = {"params": clean_params}
        if json is not None:
            kwargs["json"] = json
        if content is not None:
            kwargs["content"] = content
        if headers:
            kwargs["headers"] = dict(headers)
        if timeout is not None:
            kwargs["timeout"] = httpx.Timeout(timeout, connect=CONNECT_TIMEOUT)
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise _unavailable(exc) from exc
        if response.status_code >= 400:
            raise _error_from_response(response)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise BackendError(502, "bad_response", "The Atelier engine sent an unreadable answer.") from exc

    @contextmanager
    def open_stream(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Iterator[httpx.Response]:
        """Open a streamed response (SSE, asset bytes). Raises :class:`BackendError` on non-2xx.

        The caller iterates ``response.iter_raw()``; the response is closed when the block exits.
        """
        timeout = httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT, read=STREAM_READ_TIMEOUT)
        try:
            request = self._client.build_request(
                method, path, json=json, headers=dict(headers or {}), params=params, timeout=timeout
            )
            response = self._client.send(request, stream=True)
        except httpx.TransportError as exc:
            raise _unavailable(exc) from exc
        try:
            if response.status_code >= 400:
                response.read()
                raise _error_from_response(response)
            yield response
        finally:
            response.close()
