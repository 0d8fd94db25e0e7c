"""The two local servers, each on 127.0.0.1 and a free port, each in its own thread.

Both are hardened against another local process tying them up with slow or idle connections:

* a request's headers must arrive within ``header_timeout`` seconds of its first byte (of the connection, for
  the first request); an idle keep-alive connection is closed after ``idle_timeout`` seconds;
* each server keeps at most ``max_connections`` connections: when a new one arrives above that, the oldest
  connections that are not being answered (idle, or still sending their request) are closed, so a flood of
  slow connections can neither stop a normal request from being accepted nor use up the file descriptors;
* the UI runs on waitress: request heads and bodies are read by one event loop, and only complete requests
  reach the bounded pool of worker threads, which write streamed responses straight to the socket (SSE);
* every answer of both servers carries the security headers (``SECURITY_HEADERS``: the pages'
  Content-Security-Policy, nosniff, frame and cross-origin rules), the servers' own answers too: on the API
  a malformed request line, a head too large (written by ``_ApiProtocol``), over the limit of requests at once
  (503) and an exception that escaped the app (500), both answered by ``SecureAsgi``
  (``desktop/asgi_hardening.py``) instead of uvicorn; on the UI waitress's 400, 413, 431 and 500
  (``_ErrorTask``). Absolute-form request targets are refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import socket
import sys
import threading
import time
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask, ThreadedTaskDispatcher

from desktop.asgi_hardening import SecureAsgi
from frontend.security import SECURITY_HEADERS

#: Seconds a client has to send a request's headers (and, on the UI, its body).
HEADER_TIMEOUT = 10.0
#: Seconds an idle keep-alive connection stays open.
IDLE_TIMEOUT = 30
#: Largest request head (request line and headers) either server reads.
MAX_HEADER_BYTES = 64 * 1024
#: Largest request body the UI server reads (the Flask app caps each route lower).
UI_MAX_BODY_BYTES = 128 * 2**20
#: Worker threads of the UI server (each streamed answer holds one while it streams).
UI_THREADS = 128
#: Headers every answer the servers write themselves carries (every other answer has ``SECURITY_HEADERS``).
SERVER_ERROR_HEADERS = [*SECURITY_HEADERS, ("Cache-Control", "no-store")]

_fd_limit_lock = threading.Lock()


def raise_fd_limit(wanted: int = 8192) -> int | None:
    """Raise the soft limit of open files towards ``wanted`` (macOS starts at 256); returns the soft limit.

    ``None`` where the platform has no such limit (Windows).
    """
    try:
        import resource
    except ImportError:  # Windows
        return None
    with _fd_limit_lock:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return None
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        while soft < target:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                return target
            except (ValueError, OSError):  # macOS refuses more than kern.maxfilesperproc: ask for less
                target //= 2
        return soft


def connection_cap(fd_limit: int | None) -> int:
    """Connections each server keeps, from the process's file descriptor limit.

    Each UI connection can lead to one more to the API (two descriptors, both in this process), and the
    database, logs and outgoing connections need some: a quarter of what is left after a reserve of 256 each.
    Never more than 400: waitress uses ``select()`` on Windows, which takes at most 512 sockets.
    """
    if fd_limit is None:
        return 400
    return max(32, min(400, (fd_limit - 256) // 4))


def _idle_first(candidates: list[Any], count: int, key: Any) -> list[Any]:
    return heapq.nsmallest(count, candidates, key=key) if count > 0 else []


# -- the API: uvicorn ----------------------------------------------------------------------------------------


class _ApiProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus a header deadline, a header size cap, origin-form targets only, and
    eviction of idle connections above the cap (uvicorn has none of these)."""

    header_timeout = HEADER_TIMEOUT
    max_header_bytes = MAX_HEADER_BYTES
    max_connections = 400

    _header_timer: asyncio.TimerHandle | None = None
    _refusal: tuple[int, str] | None = None
    _evicted = False
    _opened = 0.0
    _header_bytes = 0

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._opened = self.loop.time()
        self._start_header_timer()
        self._evict_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._header_timer is None and self._idle():
            self._start_header_timer()  # a new request begins on a kept-alive connection
        super().data_received(data)

    # -- parser callbacks
    def on_message_begin(self) -> None:
        self._header_bytes = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        if not (self.url.startswith(b"/") or self.url == b"*"):
            # Absolute-form (``GET http://other.host/path``): the Host check would never see that host.
            self._refusal = (400, "Only origin-form request targets (/path) are accepted.")
            raise ValueError("absolute-form request target")
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        status, text = self._refusal or (400, msg)
        body = (text + "\n").encode("ascii")
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        for name, value in SERVER_ERROR_HEADERS:
            head += [name.encode("ascii"), b": ", value.encode("ascii"), b"\r\n"]
        head += [b"content-type: text/plain; charset=utf-8\r\n", b"content-length: ", str(len(body)).encode(),
                 b"\r\nconnection: close\r\n\r\n", body]
        self.transport.write(b"".join(head))
        self.transport.close()

    # -- helpers
    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.max_header_bytes:
            self._refusal = (431, "Request header fields too large.")
            raise ValueError("request head too large")

    def _idle(self) -> bool:
        """No request of this connection is being answered (it may be sending one)."""
        return (self.cycle is None or self.cycle.response_complete) and not self.pipeline

    def _start_header_timer(self) -> None:
        if self._header_timer is None and self.header_timeout:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def _evict_idle(self) -> None:
        live = [c for c in self.connections if not getattr(c, "_evicted", False)]
        excess = len(live) - self.max_connections
        if excess <= 0:
            return
        idle = [c for c in live if c is not self and isinstance(c, _ApiProtocol) and c._idle()]
        for connection in _idle_first(idle, excess, key=lambda c: c._opened):
            connection._evicted = True
            connection.transport.close()



class ApiServer:
    """uvicorn serving the FastAPI app on a socket bound to 127.0.0.1:0."""

    def __init__(
        self,
        app: Any,
        *,
        log_level: str = "warning",
        header_timeout: float = HEADER_TIMEOUT,
        max_connections: int | None = None,
        max_requests: int | None = None,
    ):
        cap = max_connections or connection_cap(raise_fd_limit())
        # Created as IPPROTO_TCP so asyncio sets TCP_NODELAY on accepted connections: with protocol 0 it does
        # not, and every small reply waits ~40 ms for the client's delayed ACK.
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.max_connections = cap
        protocol = type("ApiProtocol", (_ApiProtocol,), {"header_timeout": header_timeout, "max_connections": cap})
        # Connections above the cap are evicted while idle; the limit bounds the requests answered at once. It
        # is SecureAsgi's, not uvicorn's (limit_concurrency), so that its 503 carries the security headers.
        self.guard = SecureAsgi(app, headers=SECURITY_HEADERS, error_headers=SERVER_ERROR_HEADERS,
                                limit=max_requests or cap + 100, connections=self._connections)
        config = uvicorn.Config(
            self.guard, log_level=log_level, access_log=False, lifespan="on", timeout_graceful_shutdown=3,
            server_header=False, timeout_keep_alive=IDLE_TIMEOUT, http=protocol, limit_concurrency=None,
            backlog=512,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name="atelier-api", daemon=True)
        self.error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _connections(self) -> set:
        return self.server.server_state.connections

    def _run(self) -> None:
        try:
            # uvicorn installs no signal handlers off the main thread; the shell handles signals itself.
            self.server.run(sockets=[self.sock])
        except BaseException as exc:  # reported to the starter
            self.error = exc

    def start(self, timeout: float = 20.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if self.error is not None or not self.thread.is_alive():
                raise RuntimeError(f"the API server failed to start: {self.error!r}")
            if time.monotonic() > deadline:
                raise RuntimeError("the API server did not start in time")
            time.sleep(0.005)

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        self.sock.close()


# -- the UI: waitress ----------------------------------------------------------------------------------------


class _LateApp:
    """The WSGI app, settable after the server has bound its port (the Flask app needs the port)."""

    def __init__(self, app: Any):
        self.app = app

    def __call__(self, environ: dict, start_response: Any) -> Any:
        if self.app is None:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain"), *SERVER_ERROR_HEADERS])
            return [b"Starting.\n"]
        return self.app(environ, start_response)


class _ErrorTask(ErrorTask):
    """waitress's own error answers (400, 413, 431, 500) with the app's security headers."""

    def execute(self) -> None:
        self.response_headers.extend(SERVER_ERROR_HEADERS)
        super().execute()


class _UiChannel(HTTPChannel):
    error_task_class = _ErrorTask

    def __init__(self, server: _UiWsgiServer, sock: socket.socket, addr: Any, adj: Adjustments, map: Any = None):
        super().__init__(server, sock, addr, adj, map)
        #: When the request being received must be complete (None: not receiving one).
        self.request_deadline: float | None = self.creation_time + server.header_timeout

    def received(self, data: bytes) -> bool:
        if data and self.request is None and self.request_deadline is None:
            self.request_deadline = time.time() + self.server.header_timeout
        result = super().received(data)
        if self.request is None:
            self.request_deadline = None
        return result


class _GrowingDispatcher(ThreadedTaskDispatcher):
    """waitress's worker pool, started small and grown when a task finds no idle thread, up to ``limit``
    (starting all of them at once costs tens of milliseconds of start-up)."""

    def __init__(self, limit: int, initial: int = 8):
        super().__init__()
        self.limit = limit
        self.set_thread_count(min(initial, limit))

    def add_task(self, task: Any) -> None:
        with self.lock:
            self.queue.append(task)
            self.queue_cv.notify()
            running = len(self.threads) - self.stop_count
            grow = len(self.queue) > running - self.active_count and 0 < running < self.limit
        if grow:
            self.set_thread_count(running + 1)


class _UiWsgiServer(TcpWSGIServer):
    channel_class = _UiChannel
    header_timeout = HEADER_TIMEOUT
    max_connections = 400

    def __init__(self, app: _LateApp, sock: socket.socket, adj: Adjustments):
        self._late = app
        self._stopping = threading.Event()
        super().__init__(app, map={}, _sock=sock, adj=adj, bind_socket=False,
                         sockinfo=(sock.family, sock.type, sock.proto, sock.getsockname()),
                         dispatcher=_GrowingDispatcher(adj.threads))

    @property
    def app(self) -> Any:
        return self._late.app

    @app.setter
    def app(self, value: Any) -> None:
        self._late.app = value

    def handle_accept(self) -> None:
        super().handle_accept()
        excess = len(self.active_channels) - self.max_connections
        if excess > 0:
            idle = [c for c in self.active_channels.values() if not c.requests and c.connected]
            for channel in _idle_first(idle, excess, key=lambda c: c.creation_time):
                channel.handle_close()

    def maintenance(self, now: float) -> None:
        super().maintenance(now)  # idle connections (channel_timeout)
        for channel in list(self.active_channels.values()):
            deadline = channel.request_deadline
            if deadline is not None and deadline < now and not channel.requests:
                channel.will_close = True

    def run(self) -> None:
        poll = wasyncore.poll2 if hasattr(wasyncore.select, "poll") else wasyncore.poll
        try:
            while not self._stopping.is_set():
                poll(self.adj.asyncore_loop_timeout, self._map)
        finally:
            for obj in list(self._map.values()):
                if obj is not self and obj is not self.trigger:
                    obj.handle_close()
            self.close()

    def request_stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):  # already closed
            self.pull_trigger()


class UiServer:
    """waitress serving the Flask UI: bounded worker threads, request deadlines, a connection cap, unbuffered
    streaming (SSE)."""

    def __init__(
        self,
        app: Any,
        *,
        header_timeout: float = HEADER_TIMEOUT,
        max_connections: int | None = None,
        threads: int = UI_THREADS,
    ):
        cap = max_connections or connection_cap(raise_fd_limit())
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        adj = Adjustments(
            sockets=[sock],
            threads=threads,
            # Above the cap idle connections are evicted; this hard limit only stops accepting when every
            # connection is busy (and stays under select()'s 512 sockets on Windows).
            connection_limit=min(cap + threads, 500),
            channel_timeout=IDLE_TIMEOUT,
            cleanup_interval=1,
            max_request_header_size=MAX_HEADER_BYTES,
            max_request_body_size=UI_MAX_BODY_BYTES,
            asyncore_use_poll=sys.platform != "win32",  # select() fails on descriptors above 1023
            backlog=512,
            ident="",  # no Server header
            expose_tracebacks=False,
            log_socket_errors=False,
            # waitress sets TCP_NODELAY on accepted sockets (its default socket options): no 40 ms waits.
        )
        self.server = _UiWsgiServer(_LateApp(app), sock, adj)
        self.server.header_timeout = header_timeout
        self.server.max_connections = cap
        self.max_connections = cap
        self.port: int = sock.getsockname()[1]
        self.thread = threading.Thread(target=self.server.run, name="atelier-ui", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.server.request_stop()
        self.thread.join(timeout)
        # Worker threads are daemons: idle ones exit now; one still streaming ends at its next write.
        self.server.task_dispatcher.shutdown(cancel_pending=True, timeout=0.2)
