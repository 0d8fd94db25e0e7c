"""Bad input (docs/security.md): oversize bodies and malformed JSON get 413/422, never 500, on the API
and on the UI's POST routes; SQL-looking text in search parameters and cursors is data, never SQL.
"""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningApi, start_api
from tests.fakes.openrouter import FakeOpenRouter

CAP = 256 * 1024  # a small request cap for these tests, so oversize bodies stay cheap


@pytest.fixture
def small_api(data_dir: Path, fake_openrouter: FakeOpenRouter) -> Iterator[RunningApi]:
    running = start_api(data_dir, openrouter_base_url=fake_openrouter.base_url, max_request_bytes=CAP,
                        retry_base_seconds=0.05, probe_seconds=0.1)
    with running.client() as api:
        assert api.put("/api/v1/credentials", json={"api_key": fake_openrouter.key}).status_code == 200
    yield running
    running.stop()


@pytest.fixture
def gen_id(small_api: RunningApi) -> str:
    with small_api.client() as api:
        r = api.post("/api/v1/generations", json={"kind": "text", "model": "openai/gpt-4o-mini", "prompt": "alpha"})
        assert r.status_code == 201
        return r.json()["id"]


@pytest.fixture
def ui_url(small_api: RunningApi) -> Iterator[str]:
    """The real Flask UI on loopback, talking to ``small_api``."""
    from desktop.servers import UiServer
    from frontend import backend_of
    from frontend import create_app as create_ui

    ui_server = UiServer(None)
    app = create_ui(api_url=small_api.url, token=small_api.token, port_getter=lambda: ui_server.port)
    ui_server.server.app = app
    ui_server.start()
    yield ui_server.url
    ui_server.stop()
    backend_of(app).close()


JSON_ROUTES = [
    ("POST", "/api/v1/generations"),
    ("PATCH", "/api/v1/generations/{id}"),
    ("PUT", "/api/v1/settings"),
    ("PUT", "/api/v1/credentials"),
]
MALFORMED = [
    b"{", b"{'kind': 'text'}", b"[1, 2", b'{"kind": "text",}', b"\xff\xfe\x00garbage", b"null", b"[]", b'"text"',
    b"NaN", b'{"prompt": NaN}', b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    b"\x00" * 100,
]


@pytest.mark.parametrize("method, path", JSON_ROUTES)
def test_malformed_json_is_422_never_500(small_api: RunningApi, gen_id: str, method: str, path: str) -> None:
    with small_api.client() as api:
        for body in MALFORMED:
            r = api.request(method, path.format(id=gen_id), content=body,
                            headers={"Content-Type": "application/json"})
            assert r.status_code in (413, 422), (body[:20], r.status_code, r.text[:300])
            assert r.json()["error"]["code"] in ("invalid_request", "payload_too_large", "unknown_setting")
        # Wrong content types and empty bodies too.
        for headers, content in (({"Content-Type": "text/plain"}, b"hello"), ({}, b""),
                                 ({"Content-Type": "application/x-www-form-urlencoded"}, b"a=1")):
            r = api.request(method, path.format(id=gen_id), content=content, headers=headers)
            assert 400 <= r.status_code < 500, (headers, r.status_code, r.text[:300])


@pytest.mark.parametrize("method, path", [*JSON_ROUTES, ("POST", "/api/v1/assets")])
def test_oversize_body_is_413(small_api: RunningApi, gen_id: str, method: str, path: str) -> None:
    big = b'{"prompt": "' + b"x" * (CAP + 10) + b'"}'
    with small_api.client() as api:
        r = api.request(method, path.format(id=gen_id), content=big, headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"

        def chunks() -> Iterator[bytes]:  # no Content-Length: the cap must hold for a chunked body too
            for _ in range(CAP // 8192 + 4):
                yield b"x" * 8192

        r = api.request(method, path.format(id=gen_id), content=chunks(),
                        headers={"Content-Type": "application/json"})
        assert r.status_code == 413
    # A lying Content-Length is refused, not trusted (raw socket: HTTP clients will not send one).
    for length in ("-5", "abc", str(2**70)):
        request = (f"{method} {path.format(id=gen_id)} HTTP/1.1\r\nHost: 127.0.0.1:{small_api.port}\r\n"
                   f"Authorization: Bearer {small_api.token}\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {length}\r\nConnection: close\r\n\r\n{{}}").encode()
        with socket.create_connection(("127.0.0.1", small_api.port), timeout=10) as sock:
            sock.sendall(request)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        status = int(answer.split(b" ", 2)[1])
        assert status in (400, 413), (length, answer[:200])
    with small_api.client() as api:
        assert api.get("/api/v1/health").status_code == 200


def test_ui_post_routes_refuse_bad_bodies(small_api: RunningApi, ui_url: str, gen_id: str) -> None:
    """The Flask UI: oversize form posts get 413, malformed JSON a clear error, never a 500."""
    with httpx.Client(base_url=ui_url, timeout=30) as ui:
        assert ui.get("/login", params={"token": small_api.token}).status_code in (302, 303)
        routes = ["/studio/generate", "/studio/stream", "/settings/key", "/settings/preferences", "/queue/pause",
                  "/queue/resume", f"/g/{gen_id}/tags", f"/g/{gen_id}/favorite", f"/g/{gen_id}/retry",
                  f"/g/{gen_id}/cancel"]
        form_readers = {"/studio/generate", "/settings/key", f"/g/{gen_id}/tags"}
        huge = b"prompt=" + b"x" * (3 * 2**20)
        for route in routes:
            r = ui.post(route, content=huge, headers={"Content-Type": "application/x-www-form-urlencoded"})
            if route == "/studio/stream":  # the page's event stream reports every failure as an event
                assert r.status_code in (200, 400, 413) and (r.status_code == 413 or "event: error" in r.text)
            elif route in form_readers:  # 413 from Flask's cap, or 400 when the view finds the form empty
                assert r.status_code in (400, 413), (route, r.status_code, r.text[:300])
            else:  # routes that never read a body just ignore it
                assert r.status_code < 500, (route, r.status_code)
            for body, ctype in ((b"{", "application/json"), (b"\xff\xfe", "application/json"),
                                (b"[" * 500 + b"]" * 500, "application/json"),
                                (b"%zz=%%", "application/x-www-form-urlencoded"),
                                (b"--x\r\nbroken", "multipart/form-data; boundary=x")):
                r = ui.post(route, content=body, headers={"Content-Type": ctype})
                assert r.status_code < 500, (route, body[:10], r.status_code, r.text[:200])
        r = ui.post("/studio/stream", content=b"{not json", headers={"Content-Type": "application/json"})
        assert "event: error" in r.text and "Malformed request" in r.text
        r = ui.post("/studio/stream", json={"prompt": "x", "model": "openai/gpt-4o-mini", "max_tokens": "NaN",
                                            "temperature": [1]})
        assert r.status_code in (200, 400) and "event: error" in r.text


def test_ui_stream_with_deeply_nested_json_is_not_500(small_api: RunningApi, ui_url: str) -> None:
    with httpx.Client(base_url=ui_url, timeout=30) as ui:
        ui.get("/login", params={"token": small_api.token})
        r = ui.post("/studio/stream", content=b"[" * 50_000, headers={"Content-Type": "application/json"})
        assert r.status_code < 500


INJECTIONS = [
    "' OR '1'='1", "'; DROP TABLE generations; --", "\" OR \"\"=\"", "%", "_", "\\", "' UNION SELECT * FROM meta --",
    "1; DELETE FROM preferences", "alpha' --", "ALPHA%' OR 1=1 --", "\x00", "🙂'); --",
]


def test_sql_looking_text_is_data(small_api: RunningApi, gen_id: str) -> None:
    with small_api.client() as api:
        r = api.post("/api/v1/generations", json={"kind": "text", "model": "openai/gpt-4o-mini", "prompt": "beta",
                                                  "tags": ["' OR 1=1 --"]})
        assert r.status_code == 201
        tagged_id = r.json()["id"]
        assert api.put("/api/v1/settings", json={"theme": "dark"}).status_code == 200
        for text in INJECTIONS:
            for name in ("q", "tag", "model"):
                r = api.get("/api/v1/generations", params={name: text})
                assert r.status_code == 200, (name, text, r.text)
                assert r.json()["items"] == [], (name, text)  # nothing matches these literally
            r = api.get("/api/v1/generations", params={"cursor": text})
            assert r.status_code in (200, 400, 422), (text, r.text)
            forged = base64.urlsafe_b64encode(text.encode()).decode()
            r = api.get("/api/v1/generations", params={"cursor": forged})
            assert r.status_code in (200, 400, 422), (text, r.text)
            r = api.get("/api/v1/usage", params={"group_by": text})
            assert r.status_code == 422
            if text.isprintable():
                r = api.get(f"/api/v1/generations/{text}")
                assert r.status_code in (404, 405), (text, r.status_code)
        # A tag that looks like SQL matches only itself; a substring search for a real word still works.
        items = api.get("/api/v1/generations", params={"tag": "' OR 1=1 --"}).json()["items"]
        assert [g["id"] for g in items] == [tagged_id]
        assert [g["id"] for g in api.get("/api/v1/generations", params={"q": "alph"}).json()["items"]] == [gen_id]
        # Nothing was dropped or deleted.
        assert len(api.get("/api/v1/generations").json()["items"]) == 2
        assert api.get("/api/v1/settings").json()["values"]["theme"] == "dark"
        assert api.get("/api/v1/credentials").json()["configured"] is True
