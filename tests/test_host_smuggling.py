"""Host smuggling past the DNS-rebinding check (SECURITY.md 4): repeated Host headers and absolute-form
request targets, sent over raw loopback sockets to both servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from frontend import backend_of, create_app
from frontend.security import CONTENT_SECURITY_POLICY
from tests.raw_http import headers_of, host_header, raw, status_of


@pytest.fixture
def ui(api) -> Iterator[tuple]:
    """The real Flask UI on its production server, in front of the real backend."""
    from desktop.servers import UiServer

    server = UiServer(None)
    app = create_app(api_url=api.url, token=api.token, port_getter=lambda: server.port)
    server.server.app = app
    server.start()
    yield server, api
    server.stop()
    backend_of(app).close()


def test_api_refuses_duplicate_host_headers(api) -> None:
    auth = f"Authorization: Bearer {api.token}\r\n".encode()
    good = host_header(api.port)
    for hosts in (b"Host: evil.example\r\n" + good, good + b"Host: evil.example\r\n", good + good):
        answer = raw(api.port, b"GET /api/v1/status HTTP/1.1\r\n" + hosts + auth + b"\r\n")
        assert status_of(answer) in (400, 403), answer[:200]
    assert status_of(raw(api.port, b"GET /api/v1/status HTTP/1.1\r\n" + good + auth + b"\r\n")) == 200


def test_api_refuses_absolute_form_targets(api) -> None:
    auth = f"Authorization: Bearer {api.token}\r\n".encode()
    for target in (b"http://evil.example/api/v1/status", f"http://127.0.0.1:{api.port}/api/v1/status".encode()):
        answer = raw(api.port, b"GET " + target + b" HTTP/1.1\r\n" + host_header(api.port) + auth + b"\r\n")
        assert status_of(answer) == 400, answer[:200]
        assert b'"version"' not in answer


def test_ui_refuses_duplicate_host_headers(ui) -> None:
    server, api = ui
    good = host_header(server.port)
    login = f"GET /login?token={api.token} HTTP/1.1\r\n".encode()
    for hosts in (b"Host: evil.example\r\n" + good, good + b"Host: evil.example\r\n"):
        answer = raw(server.port, login + hosts + b"\r\n")
        assert status_of(answer) == 400, answer[:200]
        assert "set-cookie" not in headers_of(answer)
    assert status_of(raw(server.port, login + good + b"\r\n")) == 302


def test_ui_refuses_absolute_form_targets(ui) -> None:
    server, api = ui
    answer = raw(server.port, f"GET http://evil.example/login?token={api.token} HTTP/1.1\r\n".encode()
                 + host_header(server.port) + b"\r\n")
    assert status_of(answer) == 400, answer[:200]
    assert "set-cookie" not in headers_of(answer)
    assert headers_of(answer)["content-security-policy"] == CONTENT_SECURITY_POLICY

