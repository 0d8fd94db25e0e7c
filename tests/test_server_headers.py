"""Every answer of both local servers carries the security headers, the answers the servers write themselves
included: uvicorn's 503 (over the limit) and 500 (an exception escaped), the 400/431 of a malformed request,
waitress's 400, 413, 431 and 500 (docs/security.md). Real servers on 127.0.0.1, raw sockets."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from desktop.servers import SERVER_ERROR_HEADERS, ApiServer, UiServer
from frontend.security import SECURITY_HEADERS
from tests.raw_http import headers_of, host_header, raw, status_of


def assert_secured(headers: dict[str, str], expected: list[tuple[str, str]] = SECURITY_HEADERS) -> None:
    for name, value in expected:
        assert headers.get(name.lower()) == value, name


def asgi_app(handler):
    """A bare ASGI app (lifespan answered) whose HTTP requests go to ``handler(scope, receive, send)``."""

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await handler(scope, receive, send)

    return app


async def ok(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def api_server(request) -> Iterator[ApiServer]:
    handler, kwargs = request.param
    server = ApiServer(asgi_app(handler), **kwargs)
    server.start()
    yield server
    server.stop()


def get(port: int, path: str = "/") -> bytes:
    return raw(port, b"GET " + path.encode() + b" HTTP/1.1\r\n" + host_header(port) + b"\r\n")


# -- the API server ---------------------------------------------------------------------------------------


def test_the_backends_ordinary_answers_carry_the_headers(api) -> None:
    with httpx.Client(base_url=api.url, timeout=10) as client:
        assert_secured(client.get("/api/v1/health").headers)
        refused = client.get("/api/v1/settings")  # no token: the guard's own 401
        assert refused.status_code == 401
        assert_secured(refused.headers)
        assert_secured(client.get("/api/v1/settings", headers=api.headers).headers)


@pytest.mark.parametrize(
    "request_bytes, status",
    [
        (b"NOT A REQUEST LINE AT ALL\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n{host}X-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431),
        (b"GET http://elsewhere.example/ HTTP/1.1\r\n{host}\r\n", 400),
    ],
    ids=["400-malformed", "431-huge-headers", "400-absolute-target"],
)
@pytest.mark.parametrize("api_server", [(ok, {})], indirect=True)
def test_api_protocol_errors_carry_the_headers(api_server: ApiServer, request_bytes: bytes, status: int) -> None:
    answer = raw(api_server.port, request_bytes.replace(b"{host}", host_header(api_server.port)))
    assert status_of(answer) == status
    assert_secured(headers_of(answer), SERVER_ERROR_HEADERS)


class Gate:
    """Holds a request inside the app until released, and says when one is inside."""

    def __init__(self) -> None:
        self.inside = threading.Event()
        self.release = threading.Event()

    async def handler(self, scope, receive, send) -> None:
        import asyncio

        self.inside.set()
        while not self.release.is_set():
            await asyncio.sleep(0.01)
        await ok(scope, receive, send)


GATE = Gate()


@pytest.mark.parametrize("api_server", [(GATE.handler, {"max_requests": 1})], indirect=True)
def test_api_over_the_limit_answers_503_with_the_headers(api_server: ApiServer) -> None:
    first: list[bytes] = []
    thread = threading.Thread(target=lambda: first.append(get(api_server.port, "/held")))
    thread.start()
    try:
        assert GATE.inside.wait(10)
        answer = get(api_server.port, "/second")
        assert status_of(answer) == 503
        assert answer.endswith(b"Service Unavailable\n")
        assert_secured(headers_of(answer), SERVER_ERROR_HEADERS)
    finally:
        GATE.release.set()
        thread.join(10)
    assert status_of(first[0]) == 200
    assert_secured(headers_of(first[0]))
    # Once the held request is answered the server takes new ones again.
    assert status_of(get(api_server.port)) == 200


async def raises(scope, receive, send) -> None:
    raise RuntimeError("a bug")


async def says_nothing(scope, receive, send) -> None:
    return None


@pytest.mark.parametrize("api_server", [(raises, {}), (says_nothing, {})], indirect=True,
                         ids=["exception", "no-answer"])
def test_api_500_written_for_the_app_carries_the_headers(api_server: ApiServer) -> None:
    answer = get(api_server.port)
    assert status_of(answer) == 500
    assert answer.endswith(b"Internal Server Error\n")
    assert_secured(headers_of(answer), SERVER_ERROR_HEADERS)
    assert status_of(get(api_server.port)) == 500  # and the server goes on answering


def test_a_bug_in_the_backend_answers_500_with_the_headers(data_dir) -> None:
    from backend.app import create_app
    from backend.core.settings import Settings

    app = create_app(Settings.load(data_dir=data_dir), token="t" * 32)

    async def boom() -> None:
        raise RuntimeError("a bug in a route")

    app.add_api_route("/api/v1/health/boom", boom)
    server = ApiServer(app)
    server.start()
    try:
        answer = raw(server.port, b"GET /api/v1/health/boom HTTP/1.1\r\n" + host_header(server.port)
                     + b"Authorization: Bearer " + b"t" * 32 + b"\r\n\r\n")
        assert status_of(answer) == 500
        assert_secured(headers_of(answer))
    finally:
        server.stop()


def test_an_answers_own_csp_is_kept() -> None:
    async def sandboxed(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"image/png"), (b"content-security-policy", b"default-src 'none'; sandbox")]})
        await send({"type": "http.response.body", "body": b"png"})

    server = ApiServer(asgi_app(sandboxed))
    server.start()
    try:
        answer = get(server.port)
        assert status_of(answer) == 200
        assert answer.count(b"content-security-policy") == 1
        assert headers_of(answer)["content-security-policy"] == "default-src 'none'; sandbox"
        assert headers_of(answer)["x-content-type-options"] == "nosniff"
    finally:
        server.stop()


# -- the UI server ----------------------------------------------------------------------------------------


def wsgi_ok(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def wsgi_raises(environ, start_response):
    raise RuntimeError("a bug")


def wsgi_raises_after_start(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    raise RuntimeError("a bug after start_response")


@pytest.fixture
def ui_server(request) -> Iterator[UiServer]:
    server = UiServer(request.param)
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize(
    "request_bytes, status",
    [
        (b"NOT A REQUEST LINE AT ALL\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n{host}X-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431),
        (b"POST / HTTP/1.1\r\n{host}Content-Length: 999999999999\r\n\r\n", 413),
    ],
    ids=["400-malformed", "431-huge-headers", "413-huge-body"],
)
@pytest.mark.parametrize("ui_server", [wsgi_ok], indirect=True)
def test_ui_server_errors_carry_the_headers(ui_server: UiServer, request_bytes: bytes, status: int) -> None:
    answer = raw(ui_server.port, request_bytes.replace(b"{host}", host_header(ui_server.port)))
    assert status_of(answer) == status
    assert_secured(headers_of(answer), SERVER_ERROR_HEADERS)


@pytest.mark.parametrize("ui_server", [wsgi_raises, wsgi_raises_after_start], indirect=True,
                         ids=["before-start-response", "after-start-response"])
def test_ui_server_500_carries_the_headers(ui_server: UiServer) -> None:
    answer = get(ui_server.port)
    assert status_of(answer) == 500
    assert_secured(headers_of(answer), SERVER_ERROR_HEADERS)


def test_ui_server_starting_answer_carries_the_headers() -> None:
    server = UiServer(None)  # the Flask app is not set yet
    server.start()
    try:
        answer = get(server.port)
        assert status_of(answer) == 503
        assert_secured(headers_of(answer), SERVER_ERROR_HEADERS)
    finally:
        server.stop()
