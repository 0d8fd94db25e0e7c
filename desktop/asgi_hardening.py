"""The outermost layer of the API server: every answer carries the security headers, including the answers
uvicorn would otherwise write itself (docs/security.md, "The local servers").

uvicorn writes some answers without going through the app: its 503 when over ``limit_concurrency``, its 500
when an exception escapes the app (or the app returns without answering), and its 400s for malformed requests.
The 400s (and the 431 for a head too large) are written by the server's protocol class with the headers
(``desktop/servers.py``); the other two are taken over here: :class:`SecureAsgi` counts the requests in
flight and answers the 503 itself (uvicorn's own limit is left off), and catches what the app raises before
it answered. Pure ASGI, so streamed answers pass through untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sized
from typing import Any

log = logging.getLogger(__name__)


def _encoded(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]


class SecureAsgi:
    """Adds ``headers`` to every answer that does not set them itself (an answer's own, stricter CSP wins),
    answers 503 when ``limit`` requests are in flight or ``connections`` holds more than ``limit`` connections, and
    500 when the app raises or returns before answering. ``error_headers`` go on those two only."""

    def __init__(self, app: Any, *, headers: list[tuple[str, str]], error_headers: list[tuple[str, str]],
                 limit: int | None = None, connections: Callable[[], Sized] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.connections = connections
        self._headers = _encoded(headers)
        self._names = {name for name, _ in self._headers}
        self._error_headers = _encoded(error_headers)
        #: Requests being answered now.
        self.active = 0

    def _over_limit(self) -> bool:
        if self.limit is None:
            return False
        connections = len(self.connections()) if self.connections is not None else 0
        # The connection of this request is one of ``connections``.
        return self.active >= self.limit or connections > self.limit

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._over_limit():
            log.warning("over the limit of %s requests at once: answered 503", self.limit)
            await self._plain(send, 503, b"Service Unavailable")
            return
        started = False

        async def send_secured(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                own = {bytes(name).lower() for name, _ in message.get("headers", [])}
                extra = [(name, value) for name, value in self._headers if name not in own]
                if extra:
                    message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        self.active += 1
        try:
            await self.app(scope, receive, send_secured)
        except Exception:
            if started:
                raise  # part of the answer is out: the server cuts the connection
            log.exception("unhandled error answering %s %s", scope.get("method"), scope.get("path"))
            await self._plain(send, 500, b"Internal Server Error")
            return
        finally:
            self.active -= 1
        if not started:
            log.error("no answer to %s %s", scope.get("method"), scope.get("path"))
            await self._plain(send, 500, b"Internal Server Error")

    async def _plain(self, send: Callable, status: int, text: bytes) -> None:
        body = text + b"\n"
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close"), *self._headers,
                   *[(n, v) for n, v in self._error_headers if n not in self._names]]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})
