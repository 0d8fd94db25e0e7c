"""The two local servers against slow and malformed requests (SECURITY.md 30, 32).

Every socket here targets 127.0.0.1 and is closed at the end of its test.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from frontend import backend_of, create_app
from frontend.security import CONTENT_SECURITY_POLICY
from tests.conftest import PYTHON, ROOT, subprocess_env
from tests.raw_http import headers_of, host_header, raw, status_of

FUNCTIONAL_TIMEOUT = 5.0  # a bound on "still answers", not a speed test


@contextlib.contextmanager
def slow_connections(port: int, count: int) -> Iterator[list[socket.socket]]:
    """``count`` connections that never finish a request: half send nothing, half a partial request line."""
    socks: list[socket.socket] = []
    deadline = time.monotonic() + 20
    try:
        for i in range(count):
            if time.monotonic() > deadline:
                break
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=0.5)
            except OSError:
                continue  # a full backlog is the server's right; what matters is that it keeps answering
            socks.append(sock)
            if i % 2:
                with contextlib.suppress(OSError):
                    sock.sendall(b"GET /slow HT")
        yield socks
    finally:
        for sock in socks:
            sock.close()


def wait_closed(sock: socket.socket, timeout: float) -> bool:
    """Whether the server closes ``sock`` within ``timeout`` seconds."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


@pytest.fixture
def ui(api) -> Iterator[tuple]:
    """The real Flask UI on the production server, in front of the real backend."""
    from desktop.servers import UiServer

    server = UiServer(None)
    app = create_app(api_url=api.url, token=api.token, port_getter=lambda: server.port)
    server.server.app = app
    server.start()
    yield server, api
    server.stop()
    backend_of(app).close()


def _echo_asgi():
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


# -- SECURITY 30: slow connections ------------------------------------------------------------------------


def _limited_fd_process(data_dir: Path, tmp_path: Path, limit: int):
    import resource

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    out = (tmp_path / "out.txt").open("w")
    err = (tmp_path / "err.txt").open("w")
    proc = subprocess.Popen(
        [PYTHON, "-m", "desktop", "--no-window"], cwd=ROOT, env=subprocess_env(data_dir), stdout=out, stderr=err,
        preexec_fn=cap,
    )
    return proc, out, err


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors through /proc")
def test_a_thousand_slow_connections_leave_both_servers_answering(data_dir: Path, tmp_path: Path) -> None:
    """The real app, limited to 512 open files: 1,000 idle or half-sent connections, 500 to each server, would
    take every descriptor (and a thread each on a development server); health and a page must still answer."""
    from desktop.servers import raise_fd_limit

    raise_fd_limit()  # this test process holds 1,000 client sockets
    proc, out, err = _limited_fd_process(data_dir, tmp_path, 512)
    try:
        deadline = time.monotonic() + 30
        runtime = data_dir / "runtime.json"
        while not runtime.exists():
            assert proc.poll() is None, (tmp_path / "err.txt").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        info = json.loads(runtime.read_text())
        api_port = int(info["api_url"].rsplit(":", 1)[1])
        ui_port = int(info["ui_url"].rsplit(":", 1)[1])
        with slow_connections(api_port, 500) as api_socks, slow_connections(ui_port, 500) as ui_socks:
            time.sleep(0.5)
            health = httpx.get(f"{info['api_url']}/api/v1/health", timeout=FUNCTIONAL_TIMEOUT)
            assert health.status_code == 200
            with httpx.Client(base_url=info["ui_url"], timeout=FUNCTIONAL_TIMEOUT) as client:
                assert client.get("/login", params={"token": info["token"]}).status_code == 302
                page = client.get("/settings")
                assert page.status_code == 200 and "Settings" in page.text
            assert len(api_socks) > 400 and len(ui_socks) > 400  # both servers kept accepting
            open_files = len(os.listdir(f"/proc/{proc.pid}/fd"))
            assert open_files < 512 - 32, open_files
            assert proc.poll() is None
        errors = (tmp_path / "err.txt").read_text()
        assert "Too many open files" not in errors
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(15)
        out.close()
        err.close()


def test_api_server_evicts_idle_connections_above_its_cap_and_times_out_slow_headers() -> None:
    from desktop.servers import ApiServer

    server = ApiServer(_echo_asgi(), header_timeout=0.5, max_connections=40)
    server.start()
    try:
        with slow_connections(server.port, 120) as socks:
            time.sleep(0.3)
            answer = httpx.get(f"{server.url}/anything", timeout=FUNCTIONAL_TIMEOUT)
            assert answer.status_code == 200
            assert len(server.server.server_state.connections) <= 41
            assert wait_closed(socks[-1], 3.0)  # a connection that sent nothing
            assert wait_closed(socks[-2], 3.0)  # one that sent half a request line
        # A connection that dribbles its headers one byte at a time is cut at the deadline too.
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            started = time.monotonic()
            closed = False
            for byte in b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100:
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    closed = True
                    break
                time.sleep(0.05)
                if time.monotonic() - started > 3:
                    break
            assert closed or wait_closed(sock, 1.0)
            assert time.monotonic() - started < 3
    finally:
        server.stop()


def test_ui_server_evicts_idle_connections_above_its_cap_and_times_out_slow_headers() -> None:
    from desktop.servers import UiServer

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    server = UiServer(app, header_timeout=0.5, max_connections=40)
    server.start()
    try:
        with slow_connections(server.port, 120) as socks:
            time.sleep(0.3)
            assert httpx.get(f"{server.url}/", timeout=FUNCTIONAL_TIMEOUT).status_code == 200
            assert len(server.server.active_channels) <= 41
            assert wait_closed(socks[-1], 4.0)
            assert wait_closed(socks[-2], 4.0)
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            started = time.monotonic()
            closed = False
            while time.monotonic() - started < 6:
                try:
                    sock.sendall(b"a")
                except OSError:
                    closed = True
                    break
                time.sleep(0.05)
            assert closed or wait_closed(sock, 1.0)
            assert time.monotonic() - started < 4
    finally:
        server.stop()


def test_ui_server_streams_each_chunk_at_once_and_stops_fast() -> None:
    """SSE: a chunk reaches the client while the app is still producing (no buffering), and stopping the
    server does not wait for a stream in progress or an idle connection."""
    from desktop.servers import UiServer

    release = threading.Event()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/event-stream")])

        def events():
            yield b"data: first\n\n"
            release.wait(10)
            yield b"data: second\n\n"

        return events()

    server = UiServer(app)
    server.start()
    idle = socket.create_connection(("127.0.0.1", server.port))
    try:
        with httpx.stream("GET", f"{server.url}/events", timeout=FUNCTIONAL_TIMEOUT) as response:
            lines = response.iter_lines()
            assert next(lines) == "data: first"  # arrives before the second event is even produced
            started = time.monotonic()
            server.stop()
            assert time.monotonic() - started < 1.5
            assert not server.thread.is_alive()
    finally:
        release.set()
        idle.close()


def test_ui_worker_pool_grows_on_demand_up_to_its_bound() -> None:
    """Requests in progress (such as streams) each hold a worker; past the bound, requests wait their turn."""
    from desktop.servers import UiServer

    release = threading.Event()
    lock = threading.Lock()
    running = [0, 0]  # now, most at once

    def app(environ, start_response):
        with lock:
            running[0] += 1
            running[1] = max(running)
        release.wait(10)
        with lock:
            running[0] -= 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    server = UiServer(app, threads=12)
    server.start()
    codes: list[int] = []

    def call() -> None:
        codes.append(httpx.get(f"{server.url}/", timeout=FUNCTIONAL_TIMEOUT * 2).status_code)

    callers = [threading.Thread(target=call) for _ in range(20)]
    try:
        assert len(server.server.task_dispatcher.threads) < 12  # started small
        for caller in callers:
            caller.start()
        deadline = time.monotonic() + FUNCTIONAL_TIMEOUT
        while running[0] < 12 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
        assert running[1] == 12
        assert len(server.server.task_dispatcher.threads) == 12
    finally:
        release.set()
        for caller in callers:
            caller.join(FUNCTIONAL_TIMEOUT * 2)
        server.stop()
    assert codes == [200] * 20


def test_ui_server_is_bounded_and_uses_no_development_server() -> None:
    from desktop.servers import UI_THREADS, UiServer

    server = UiServer(lambda environ, start_response: [])
    try:
        assert type(server.server).__module__ == "desktop.servers"
        assert not [cls for cls in type(server.server).__mro__ if cls.__module__.startswith("werkzeug")]
        assert server.server.adj.threads == UI_THREADS
        assert server.server.task_dispatcher.limit == UI_THREADS
        assert server.server.adj.connection_limit <= 500
        assert server.server.adj.channel_timeout <= 60
        assert server.server.adj.max_request_header_size <= 64 * 1024
    finally:
        server.server.close()


# -- SECURITY 32: the servers' own error answers carry the CSP -------------------------------------------------




@pytest.mark.parametrize(
    "request_bytes, status",
    [
        (b"NOT A REQUEST LINE AT ALL\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n{host}X-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431),
        (b"POST /login HTTP/1.1\r\n{host}Content-Length: 999999999999\r\n\r\n", 413),
    ],
    ids=["400-malformed", "431-huge-headers", "413-huge-body"],
)
def test_ui_server_error_pages_carry_the_csp(ui, request_bytes: bytes, status: int) -> None:
    server, _ = ui
    answer = raw(server.port, request_bytes.replace(b"{host}", host_header(server.port)))
    assert status_of(answer) == status
    headers = headers_of(answer)
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert headers["x-content-type-options"] == "nosniff"


def test_ui_app_413_page_carries_the_csp(ui) -> None:
    """Flask's own 413 page (HTML) for a body over the app's cap."""
    server, api = ui
    with httpx.Client(base_url=server.url, timeout=30) as client:
        client.get("/login", params={"token": api.token})
        response = client.post("/settings/preferences", content=b"x" * (3 * 2**20),
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


@pytest.mark.parametrize(
    "request_bytes, status",
    [
        (b"NOT A REQUEST LINE AT ALL\r\n\r\n", 400),
        (b"GET /api/v1/health HTTP/1.1\r\n{host}X-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431),
    ],
    ids=["400-malformed", "431-huge-headers"],
)
def test_api_server_error_answers_carry_the_csp(api, request_bytes: bytes, status: int) -> None:
    answer = raw(api.port, request_bytes.replace(b"{host}", host_header(api.port)))
    assert status_of(answer) == status
    headers = headers_of(answer)
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert headers["content-type"].startswith("text/plain")  # never HTML


def test_api_413_is_json_not_html(api) -> None:
    answer = raw(api.port, b"POST /api/v1/settings HTTP/1.1\r\n" + host_header(api.port)
                 + f"Authorization: Bearer {api.token}\r\nContent-Length: 999999999999\r\n\r\n".encode())
    assert status_of(answer) == 413
    assert headers_of(answer)["content-type"] == "application/json"

