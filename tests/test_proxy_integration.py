"""The real app (``python -m desktop --no-window``) behind a corporate proxy given by HTTPS_PROXY/HTTP_PROXY.

OpenRouter is addressed by a name only the proxy can resolve (``openrouter.test``): the proxy maps it to the
fake OpenRouter on loopback, so a generation that succeeds must have gone through the proxy. The proxy maps
nothing else and never connects anywhere but 127.0.0.1; no traffic leaves the machine. The app's own loopback
calls (the Flask UI calling the backend) must bypass the proxy even without NO_PROXY.
"""

from __future__ import annotations

import json
import select
import socket
import socketserver
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest

from tests.conftest import PYTHON, ROOT, subprocess_env
from tests.fakes.openrouter import FakeOpenRouter

GATEWAY_HOST = "openrouter.test"

# --- a forward proxy on loopback that knows exactly one name ------------------------------------------------


def _recv(sock: socket.socket) -> bytes:
    """Everything readable now, including bytes TLS has already decrypted and buffered."""
    data = sock.recv(65536)
    if isinstance(sock, ssl.SSLSocket):
        while data and sock.pending():
            data += sock.recv(sock.pending())
    return data


def _connection_close(head: bytes) -> bytes:
    """A response head that ends the connection after this response (the proxy serves one per connection)."""
    lines = head.split(b"\r\n")
    kept = [line for line in lines[1:] if not line.lower().startswith((b"connection:", b"keep-alive:"))]
    return b"\r\n".join([lines[0], *kept, b"Connection: close"])


def _relay(client: socket.socket, upstream: socket.socket, *, rewrite_response_head: bool = False) -> None:
    """Copy bytes both ways in one thread (TLS sockets must not be read and written from two threads)."""
    pending = b""
    head_done = not rewrite_response_head
    sockets = [client, upstream]
    while True:
        readable, _, _ = select.select(sockets, [], [], 60)
        if not readable:
            return
        for sock in readable:
            try:
                data = _recv(sock)
            except (OSError, ssl.SSLError):
                return
            if not data:
                return
            if sock is client:
                upstream.sendall(data)
                continue
            if not head_done:
                pending += data
                if b"\r\n\r\n" not in pending:
                    continue
                head, _, body = pending.partition(b"\r\n\r\n")
                data, head_done = _connection_close(head) + b"\r\n\r\n" + body, True
            client.sendall(data)


class _ProxyHandler(socketserver.BaseRequestHandler):
    server: MappingProxy

    def handle(self) -> None:
        client: socket.socket = self.request
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(65536)
            if not chunk:
                return
            head += chunk
        header_block, _, rest = head.partition(b"\r\n\r\n")
        lines = header_block.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        if method == "CONNECT":
            authority = target
        else:
            url = httpx.URL(target)
            authority = f"{url.host}:{url.port or 80}"
        self.server.record(method, target)
        port = self.server.routes.get(authority.lower())
        if port is None:
            # Anything not mapped is refused: the proxy never resolves or reaches a real address.
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        with socket.create_connection(("127.0.0.1", port), timeout=30) as upstream:
            if method == "CONNECT":
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                if rest:
                    upstream.sendall(rest)
                _relay(client, upstream)
                return
            headers = [h for h in lines[1:] if not h.lower().startswith(("connection:", "proxy-", "keep-alive:"))]
            path = url.raw_path.decode("ascii")
            request = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{h}\r\n" for h in headers)
            upstream.sendall(request.encode("latin-1") + b"Connection: close\r\n\r\n" + rest)
            _relay(client, upstream, rewrite_response_head=True)


class MappingProxy(socketserver.ThreadingTCPServer):
    """An HTTP forward proxy (absolute-form requests and CONNECT) whose only DNS is ``routes``."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, routes: dict[str, int]):
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.routes = {name.lower(): port for name, port in routes.items()}
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def record(self, method: str, target: str) -> None:
        with self._lock:
            self.requests.append((method, target))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _TlsHandler(socketserver.BaseRequestHandler):
    server: TlsTerminator

    def handle(self) -> None:
        try:
            tls = self.server.context.wrap_socket(self.request, server_side=True)
        except (OSError, ssl.SSLError):
            return  # a client that rejected the certificate: nothing to relay
        with tls, socket.create_connection(("127.0.0.1", self.server.target_port), timeout=30) as upstream:
            _relay(tls, upstream)


class TlsTerminator(socketserver.ThreadingTCPServer):
    """HTTPS in front of the (plain HTTP) fake, with a certificate for openrouter.test from a private CA."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, target_port: int, cert: Path, key: Path):
        super().__init__(("127.0.0.1", 0), _TlsHandler)
        self.target_port = target_port
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)


@contextmanager
def serving(server: socketserver.BaseServer) -> Iterator[socketserver.BaseServer]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# --- the app as a real process --------------------------------------------------------------------------------


class App:
    def __init__(self, process: subprocess.Popen, runtime: dict):
        self.process = process
        self.runtime = runtime

    def api(self) -> httpx.Client:
        # The test's own client: trust_env=False so it never depends on the environment's proxies.
        return httpx.Client(
            base_url=self.runtime["api_url"],
            headers={"Authorization": f"Bearer {self.runtime['token']}"},
            timeout=60,
            trust_env=False,
        )


@contextmanager
def running_app(data_dir: Path, **env: str) -> Iterator[App]:
    process = subprocess.Popen(
        [PYTHON, "-m", "desktop", "--no-window"],
        cwd=ROOT,
        env=subprocess_env(data_dir, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        runtime_path = data_dir / "runtime.json"
        deadline = time.monotonic() + 60
        runtime = None
        while runtime is None:
            if process.poll() is not None:
                raise AssertionError(f"the app exited during start-up:\n{process.communicate()[0]}")
            if time.monotonic() > deadline:
                raise AssertionError("runtime.json did not appear")
            with suppress(FileNotFoundError, ValueError):
                runtime = json.loads(runtime_path.read_text(encoding="utf-8"))
            time.sleep(0.05)
        yield App(process, runtime)
    finally:
        if process.poll() is None:
            process.terminate()
        output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output


@pytest.fixture
def fake() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter() as server:
        yield server


def _generate(client: httpx.Client, prompt: str, **extra) -> httpx.Response:
    return client.post(
        "/api/v1/generations", json={"kind": "text", "model": "openai/gpt-4o-mini", "prompt": prompt, **extra}
    )


def test_generation_goes_through_the_http_proxy_and_loopback_bypasses_it(data_dir, fake):
    with serving(MappingProxy({f"{GATEWAY_HOST}:80": fake.port})) as proxy:
        env = {
            "ATELIER_OPENROUTER_BASE_URL": f"http://{GATEWAY_HOST}/api/v1",
            "HTTP_PROXY": proxy.url,
            "HTTPS_PROXY": proxy.url,
            "http_proxy": proxy.url,
            "https_proxy": proxy.url,
        }
        with running_app(data_dir, **env) as app, app.api() as api:
            saved = api.put("/api/v1/credentials", json={"api_key": fake.key})
            assert saved.status_code == 200, saved.text
            assert saved.json()["verified"] is True  # GET /key reached the fake through the proxy

            made = _generate(api, "Hello through the proxy")
            assert made.status_code == 201, made.text
            assert made.json()["output_text"] == "Echo: Hello through the proxy"

            streamed = _generate(api, "Streamed through the proxy", stream=True)
            assert streamed.status_code == 200, streamed.text
            assert "Streamed through the proxy" in streamed.text

            # The Flask UI calls the backend on 127.0.0.1 for every page: none of that may use the proxy.
            with httpx.Client(base_url=app.runtime["ui_url"], timeout=60, trust_env=False) as ui:
                login = ui.get("/login", params={"token": app.runtime["token"]}, follow_redirects=False)
                assert login.status_code == 302
                for page in ("/", "/settings", "/queue", "/library"):
                    assert ui.get(page).status_code == 200, page

        assert fake.count("/chat/completions", status=200) == 2
        chat = f"http://{GATEWAY_HOST}/api/v1/chat/completions"
        assert proxy.requests.count(("POST", chat)) == 2
        assert ("GET", f"http://{GATEWAY_HOST}/api/v1/key") in proxy.requests
        assert all(GATEWAY_HOST in target for _method, target in proxy.requests), proxy.requests
        seen_by_fake = {request.headers.get("host") for request in fake.requests}
        assert seen_by_fake == {GATEWAY_HOST}


def test_https_proxy_tunnels_to_a_gateway_signed_by_a_corporate_ca(data_dir, fake, tmp_path):
    """HTTPS_PROXY + CONNECT + a private CA trusted through ATELIER_CA_BUNDLE, as behind a TLS-inspecting proxy."""
    from tests.test_netconfig import _make_pki_with_cryptography

    pytest.importorskip("cryptography")
    ca, cert, key = _make_pki_with_cryptography(tmp_path)
    with (
        serving(TlsTerminator(fake.port, cert, key)) as terminator,
        serving(MappingProxy({f"{GATEWAY_HOST}:443": terminator.server_address[1]})) as proxy,
    ):
        env = {
            "ATELIER_OPENROUTER_BASE_URL": f"https://{GATEWAY_HOST}/api/v1",
            "ATELIER_CA_BUNDLE": str(ca),
            "HTTPS_PROXY": proxy.url,
        }
        with running_app(data_dir, **env) as app, app.api() as api:
            assert api.put("/api/v1/credentials", json={"api_key": fake.key}).status_code == 200
            made = _generate(api, "Hello over TLS")
            assert made.status_code == 201, made.text
            assert made.json()["output_text"] == "Echo: Hello over TLS"

            doctor = subprocess.run(
                [PYTHON, "-m", "desktop", "doctor", "--json"],
                cwd=ROOT,
                env=subprocess_env(data_dir, **env),
                capture_output=True,
                text=True,
                timeout=60,
            )
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
        checks = {check["id"]: check for check in json.loads(doctor.stdout)["checks"]}
        assert checks["proxy"]["details"]["proxy"] == proxy.url
        assert checks["openrouter"]["status"] == "OK"
        assert checks["api_key"]["status"] == "OK"
        assert fake.key not in doctor.stdout

    assert fake.count("/chat/completions", status=200) == 1
    assert all(method == "CONNECT" and target == f"{GATEWAY_HOST}:443" for method, target in proxy.requests)
    assert proxy.requests  # the tunnels were the only way in
