"""The UI security boundary (docs/security.md, "The local surface"): a real backend and Flask server on loopback."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest
from flask import Flask

from frontend import backend_of, create_app
from frontend.security import CONTENT_SECURITY_POLICY

PAGES = ["/", "/?mode=image", "/?mode=video", "/library", "/queue", "/settings"]


@dataclass
class RunningUi:
    url: str
    port: int
    token: str
    app: Flask

    @contextmanager
    def client(self, *, logged_in: bool = True) -> Iterator[httpx.Client]:
        """An HTTP client for the UI, signed in through ``/login`` unless ``logged_in`` is false."""
        with httpx.Client(base_url=self.url, timeout=30, follow_redirects=False) as client:
            if logged_in:
                response = client.get("/login", params={"token": self.token})
                assert response.status_code == 302
            yield client


@pytest.fixture
def ui(api) -> Iterator[RunningUi]:
    from desktop.servers import UiServer

    server = UiServer(None)
    app = create_app(api_url=api.url, token=api.token, port_getter=lambda: server.port)
    server.server.app = app
    server.start()
    yield RunningUi(url=server.url, port=server.port, token=api.token, app=app)
    server.stop()
    backend_of(app).close()


# -- login and the session cookie ------------------------------------------------------------------------


def test_login_sets_a_strict_httponly_session_cookie_and_redirects_home(ui: RunningUi) -> None:
    with httpx.Client(base_url=ui.url) as client:
        response = client.get("/login", params={"token": ui.token})
    assert response.status_code == 302
    assert response.headers["location"] == "/"
    cookies = [c for c in response.headers.get_list("set-cookie") if c.startswith("atelier_session=")]
    assert len(cookies) == 1
    cookie = cookies[0]
    attributes = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")[1:]}
    assert "httponly" in attributes
    assert attributes["samesite"].lower() == "samesite=strict"
    assert attributes["path"] == "Path=/"
    value = cookie.split(";")[0].split("=", 1)[1]
    assert len(value) >= 32
    assert ui.token not in cookie  # the launch token itself never becomes the cookie


def test_login_with_a_wrong_token_sets_no_cookie(ui: RunningUi) -> None:
    with httpx.Client(base_url=ui.url) as client:
        response = client.get("/login", params={"token": ui.token + "x"})
        assert response.status_code == 401
        assert "set-cookie" not in response.headers
        assert "Open Atelier from the app" in response.text
        assert client.get("/login").status_code == 401


def test_session_is_per_launch(ui: RunningUi, api) -> None:
    """A cookie from another launch (another app instance) does not open this one."""
    other = create_app(api_url=api.url, token=api.token, port_getter=lambda: ui.port)
    foreign_cookie = other.config["ATELIER_SESSION_VALUE"]
    backend_of(other).close()
    assert foreign_cookie != ui.app.config["ATELIER_SESSION_VALUE"]
    with httpx.Client(base_url=ui.url, cookies={"atelier_session": foreign_cookie}) as client:
        assert client.get("/library").status_code == 401


@pytest.mark.parametrize("path", [*PAGES, "/g/abc123", "/static/app.css", "/static/studio.js", "/nope"])
def test_every_page_and_static_file_needs_the_cookie(ui: RunningUi, path: str) -> None:
    with ui.client(logged_in=False) as client:
        response = client.get(path, headers={"Accept": "text/html"})
    assert response.status_code == 401
    assert "set-cookie" not in response.headers


def test_pages_without_cookie_explain_how_to_open_atelier(ui: RunningUi) -> None:
    with ui.client(logged_in=False) as client:
        response = client.get("/library", headers={"Accept": "text/html,application/xhtml+xml"})
    assert response.status_code == 401
    assert "Open Atelier from the app" in response.text


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("GET", "/ui/status", {"Accept": "application/json"}),
        ("GET", "/g/abc123/events", {"Accept": "text/event-stream"}),
        ("POST", "/studio/stream", {"Accept": "text/event-stream", "Content-Type": "application/json"}),
        ("POST", "/queue/pause", {}),
        ("POST", "/settings/key", {}),
    ],
)
def test_scripts_and_streams_without_cookie_get_401_json(
    ui: RunningUi, method: str, path: str, headers: dict[str, str]
) -> None:
    with ui.client(logged_in=False) as client:
        response = client.request(method, path, headers=headers, content=b"{}" if method == "POST" else None)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_logged_in"


def test_favicon_is_public(ui: RunningUi) -> None:
    with ui.client(logged_in=False) as client:
        response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")


# -- Host header (DNS rebinding) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "evil.example:{port}",
        "localhost.evil.example:{port}",
        "127.0.0.1.evil.example:{port}",
        "127.0.0.1:{other}",
        "localhost:{other}",
        "127.0.0.2:{port}",
        "0.0.0.0:{port}",
        "[::2]:{port}",
        "::1:{port}",
        "127.0.0.1",
        "localhost",
        "2130706433:{port}",
        "",
    ],
)
def test_foreign_host_is_rejected_even_with_a_valid_cookie(ui: RunningUi, host: str) -> None:
    header = host.format(port=ui.port, other=ui.port + 1 if ui.port < 65535 else ui.port - 1)
    with ui.client() as client:
        for path in ("/", "/ui/status", "/static/app.css", f"/login?token={ui.token}"):
            response = client.get(path, headers={"Host": header})
            assert response.status_code == 400, (path, header)
            assert "set-cookie" not in response.headers
            assert "Atelier" not in response.text  # nothing of the app leaks to a rebound name


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST:{port}", "[::1]:{port}"])
def test_loopback_hosts_with_our_port_are_accepted(ui: RunningUi, host: str) -> None:
    with ui.client() as client:
        response = client.get("/ui/status", headers={"Host": host.format(port=ui.port)})
    assert response.status_code == 200


# -- cross-site writes (CSRF) ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "fetch_site", "allowed"),
    [
        (None, None, True),
        ("self", None, True),
        ("self", "same-origin", True),
        (None, "same-origin", True),
        (None, "none", True),
        ("localhost-self", "same-origin", True),
        (None, "cross-site", False),
        (None, "same-site", False),
        ("self", "cross-site", False),
        ("self", "same-site", False),
        ("https://evil.example", None, False),
        ("https://evil.example", "cross-site", False),
        ("http://127.0.0.1:{other}", None, False),
        ("http://127.0.0.1:{other}", "same-site", False),
        ("http://localhost:{other}", "same-origin", False),
        ("null", None, False),
        ("https://127.0.0.1:{port}", None, False),
        ("http://127.0.0.1.evil.example:{port}", None, False),
    ],
)
@pytest.mark.parametrize("path", ["/settings/preferences", "/queue/pause", "/g/abc123/delete"])
def test_cross_site_writes_are_refused(
    ui: RunningUi, origin: str | None, fetch_site: str | None, allowed: bool, path: str
) -> None:
    other = ui.port + 1 if ui.port < 65535 else ui.port - 1
    headers: dict[str, str] = {}
    if origin == "self":
        headers["Origin"] = ui.url
    elif origin == "localhost-self":
        headers["Origin"] = f"http://localhost:{ui.port}"
        headers["Host"] = f"localhost:{ui.port}"
    elif origin is not None:
        headers["Origin"] = origin.format(port=ui.port, other=other)
    if fetch_site is not None:
        headers["Sec-Fetch-Site"] = fetch_site
    with ui.client() as client:
        response = client.post(path, headers=headers, data={"theme": "dark"})
    if allowed:
        assert response.status_code != 403, response.text
    else:
        assert response.status_code == 403
        assert response.text.strip() == "Cross-site request refused."


def test_a_refused_cross_site_write_changes_nothing(ui: RunningUi, api) -> None:
    with ui.client() as client:
        response = client.post(
            "/settings/preferences", data={"theme": "dark"}, headers={"Origin": "https://evil.example"}
        )
        assert response.status_code == 403
    with api.client() as backend:
        assert backend.get("/api/v1/settings").json()["values"]["theme"] == "system"


def test_a_same_origin_write_goes_through(ui: RunningUi, api) -> None:
    with ui.client() as client:
        response = client.post(
            "/settings/preferences", data={"theme": "dark"},
            headers={"Origin": ui.url, "Sec-Fetch-Site": "same-origin"},
        )
        assert response.status_code == 302
    with api.client() as backend:
        assert backend.get("/api/v1/settings").json()["values"]["theme"] == "dark"


# -- response headers and the absence of inline code -------------------------------------------------------

_INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)[^>]*>", re.I)
_SCRIPT_ELEMENT = re.compile(r"<script\b[^>]*>(.*?)</script>", re.I | re.S)
_STYLE_ATTRIBUTE = re.compile(r"<[^>]+\sstyle\s*=", re.I)
_STYLE_ELEMENT = re.compile(r"<style\b", re.I)
_EVENT_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)


def _assert_strict_headers(response: httpx.Response) -> None:
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert not [name for name in response.headers if name.lower().startswith("access-control-")]


def _assert_no_inline_code(html: str) -> None:
    assert not _INLINE_SCRIPT.search(html)
    assert all(not body.strip() for body in _SCRIPT_ELEMENT.findall(html))
    assert not _STYLE_ATTRIBUTE.search(html)
    assert not _STYLE_ELEMENT.search(html)
    assert not _EVENT_HANDLER.search(html)


def test_csp_policy_has_the_required_directives() -> None:
    directives = dict(part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["connect-src"] == "'self'"
    assert directives["img-src"] == "'self' data: blob:"
    assert directives["media-src"] == "'self' blob:"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"


@pytest.mark.parametrize("path", [*PAGES, "/g/doesnotexist", "/no/such/page"])
def test_every_html_page_has_strict_headers_and_no_inline_code(ui: RunningUi, path: str) -> None:
    with ui.client() as client:
        response = client.get(path, headers={"Accept": "text/html"})
    assert response.headers["content-type"].startswith("text/html")
    _assert_strict_headers(response)
    _assert_no_inline_code(response.text)


@pytest.mark.parametrize("logged_in", [False, True])
def test_sign_in_pages_have_strict_headers(ui: RunningUi, logged_in: bool) -> None:
    with ui.client(logged_in=logged_in) as client:
        response = client.get("/login", params={"token": "wrong"})
    assert response.status_code == 401
    _assert_strict_headers(response)
    _assert_no_inline_code(response.text)


def test_json_and_static_responses_have_strict_headers(ui: RunningUi) -> None:
    with ui.client() as client:
        for path in ("/ui/status", "/static/app.css", "/static/app.js"):
            response = client.get(path, headers={"Origin": "https://evil.example"})
            assert response.status_code == 200
            _assert_strict_headers(response)
