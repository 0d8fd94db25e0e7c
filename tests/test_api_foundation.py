"""The local API's guard rails: token, Host check, error shapes, size limits, preferences."""

from __future__ import annotations

import concurrent.futures
import json
from pathlib import Path

import httpx
import pytest

from backend.core.policy import parse_policy
from backend.core.preferences import PREFERENCES
from backend.core.settings import SETTINGS_DOCS, Settings
from backend.net.hosts import is_allowed_host
from tests.conftest import start_api


def test_health_needs_no_token_and_reveals_nothing(api) -> None:
    r = httpx.get(f"{api.url}/api/v1/health")
    assert r.status_code == 200
    assert set(r.json()) == {"status", "version"}


@pytest.mark.parametrize(
    "path", ["/api/v1/status", "/api/v1/settings", "/docs", "/openapi.json", "/api/v1/nope", "/api/v1/app/show"]
)
def test_every_other_route_needs_the_token(api, path: str) -> None:
    assert httpx.get(f"{api.url}{path}").status_code == 401
    assert httpx.get(f"{api.url}{path}", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(f"{api.url}{path}", headers={"Authorization": api.token}).status_code == 401


def test_openapi_document_is_reachable_with_the_token(api) -> None:
    with api.client() as c:
        assert "/api/v1/settings" in c.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize(
    "host",
    ["evil.example:{port}", "127.0.0.1.evil.example:{port}", "localhost.evil:{port}", "127.0.0.1:1",
     "127.0.0.2:{port}", "0.0.0.0:{port}", "[::2]:{port}", "", "127.0.0.1"],
)
def test_foreign_host_is_rejected_even_with_the_token(api, host: str) -> None:
    headers = {**api.headers, "Host": host.format(port=api.port)}
    r = httpx.get(f"{api.url}/api/v1/status", headers=headers)
    assert r.status_code in (400, 403)
    r = httpx.get(f"{api.url}/api/v1/health", headers={"Host": host.format(port=api.port)})
    assert r.status_code in (400, 403)


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST:{port}", "[::1]:{port}"])
def test_loopback_hosts_are_allowed(api, host: str) -> None:
    r = httpx.get(f"{api.url}/api/v1/status", headers={**api.headers, "Host": host.format(port=api.port)})
    assert r.status_code == 200


def test_host_parser_edge_cases() -> None:
    assert is_allowed_host("127.0.0.1:80", 80)
    assert not is_allowed_host("127.0.0.1:080x", 80)
    assert not is_allowed_host("[::1", 80)
    assert not is_allowed_host("::1:80", 80)
    assert not is_allowed_host("[::1]x:80", 80)
    assert not is_allowed_host(None, 80)


def test_listening_socket_is_loopback_only(api) -> None:
    assert api.server.sock.getsockname()[0] == "127.0.0.1"


def test_no_cors_headers(api) -> None:
    r = httpx.options(f"{api.url}/api/v1/settings", headers={
        **api.headers, "Origin": "https://evil.example", "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Private-Network": "true"})
    assert "access-control-allow-origin" not in r.headers
    assert "access-control-allow-private-network" not in r.headers


def test_status_shape(api) -> None:
    with api.client() as c:
        body = c.get("/api/v1/status").json()
    assert body["online"] in (True, False)
    assert body["key_configured"] is False
    assert body["queue"]["queued"] == 0 and body["queue"]["running"] == 0
    assert body["version"]


def test_settings_round_trip_and_validation(api) -> None:
    with api.client() as c:
        body = c.get("/api/v1/settings").json()
        assert body["values"]["theme"] == "system"
        assert body["locked"] == []
        r = c.put("/api/v1/settings", json={"theme": "dark", "default_model_text": "anthropic/claude-sonnet-4"})
        assert r.status_code == 200 and r.json()["values"]["theme"] == "dark"
        r = c.put("/api/v1/settings", json={"theme": "purple"})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_setting"
        r = c.put("/api/v1/settings", json={"colour": "red"})
        assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_setting"
        # nothing partially applied from a request with one bad value
        r = c.put("/api/v1/settings", json={"theme": "light", "default_temperature": 7})
        assert r.status_code == 422
        assert c.get("/api/v1/settings").json()["values"]["theme"] == "dark"


def test_settings_survive_a_restart(data_dir: Path) -> None:
    first = start_api(data_dir)
    with first.client() as c:
        c.put("/api/v1/settings", json={"theme": "light"})
    first.stop()
    second = start_api(data_dir)
    with second.client() as c:
        assert c.get("/api/v1/settings").json()["values"]["theme"] == "light"
    second.stop()


def test_locked_policy_values_are_refused(data_dir: Path) -> None:
    policy = parse_policy({"default_model_text": {"value": "openai/gpt-4o", "locked": True}, "theme": "dark"},
                          path=Path("/etc/atelier/policy.json"))
    running = start_api(data_dir, policy=policy)
    try:
        with running.client() as c:
            body = c.get("/api/v1/settings").json()
            assert body["locked"] == ["default_model_text"]
            assert body["values"]["default_model_text"] == "openai/gpt-4o"
            assert body["values"]["theme"] == "dark"  # a policy default
            r = c.put("/api/v1/settings", json={"default_model_text": "x/y"})
            assert r.status_code == 403 and r.json()["error"]["code"] == "locked_by_policy"
            assert c.put("/api/v1/settings", json={"theme": "light"}).json()["values"]["theme"] == "light"
    finally:
        running.stop()


def test_malformed_json_and_oversize_bodies(data_dir: Path) -> None:
    running = start_api(data_dir, max_request_bytes=1024)
    try:
        with running.client() as c:
            r = c.put("/api/v1/settings", content=b"{not json", headers={"Content-Type": "application/json"})
            assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
            r = c.put("/api/v1/settings", content=json.dumps({"theme": "x" * 5000}).encode(),
                      headers={"Content-Type": "application/json"})
            assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
            assert r.json()["error"]["message"] == "The request body is larger than 1 KiB."

            def chunks():
                yield b'{"theme": "'
                yield b"x" * 4096
                yield b'"}'

            r = c.put("/api/v1/settings", content=chunks(), headers={"Content-Type": "application/json"})
            assert r.status_code == 413
            assert r.json()["error"]["message"] == "The request body is larger than 1 KiB."
    finally:
        running.stop()


def test_unknown_route_has_the_error_shape(api) -> None:
    with api.client() as c:
        r = c.get("/api/v1/does-not-exist")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_200_concurrent_writes_all_succeed(api) -> None:
    themes = ["light", "dark", "system"]

    def put(i: int) -> int:
        with httpx.Client(base_url=api.url, headers=api.headers, timeout=60) as c:
            return c.put("/api/v1/settings", json={"theme": themes[i % 3], "default_max_tokens": 100 + i}).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        codes = list(pool.map(put, range(200)))
    assert codes == [200] * 200


def test_every_setting_and_preference_is_documented() -> None:
    import dataclasses

    assert {f.name for f in dataclasses.fields(Settings)} == set(SETTINGS_DOCS)
    assert all(p.help for p in PREFERENCES.values())


def test_settings_environment_overrides() -> None:
    s = Settings.load(env={"ATELIER_RETRY_BASE_SECONDS": "0.5", "ATELIER_RETRY_UNKNOWN_TEXT": "no",
                           "ATELIER_OPENROUTER_BASE_URL": "http://127.0.0.1:9/api/v1", "ATELIER_DATA_DIR": "/tmp/x"})
    assert s.retry_base_seconds == 0.5 and s.retry_unknown_text is False
    assert s.openrouter_base_url == "http://127.0.0.1:9/api/v1" and s.data_dir == Path("/tmp/x")
    with pytest.raises(ValueError, match="ATELIER_OUTBOX_CONCURRENCY"):
        Settings.load(env={"ATELIER_OUTBOX_CONCURRENCY": "many"})


def test_environment_sets_the_default_of_a_preference(data_dir: Path) -> None:
    running = start_api(data_dir, retry_unknown_text=False)
    try:
        with running.client() as c:
            assert c.get("/api/v1/settings").json()["values"]["retry_unknown_text"] is False
            c.put("/api/v1/settings", json={"retry_unknown_text": True})
            assert c.get("/api/v1/settings").json()["values"]["retry_unknown_text"] is True
    finally:
        running.stop()



def test_validation_errors_are_said_in_plain_words(api) -> None:
    """A field out of bounds is named with what it may be, not in the validator's own wording."""
    with api.client() as c:
        r = c.patch("/api/v1/generations/0123456789abcdef0123456789abcdef", json={"title": "x" * 301})
        assert r.status_code == 422
        error = r.json()["error"]
        assert error["code"] == "invalid_request"
        assert error["message"] == "title is too long: at most 300 characters"
        assert error["details"] == [{"field": "title", "problem": "is too long: at most 300 characters"}]
        r = c.post("/api/v1/generations", json={"kind": "text", "prompt": "hi"})
        assert r.status_code == 422 and "model is required" in r.json()["error"]["message"], r.text
