"""``GET /api/v1/diagnostics``: the doctor's checks served by a real backend against the fake OpenRouter."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import pytest

from backend.core.policy import load_policy
from tests.conftest import RunningApi, start_api
from tests.fakes.openrouter import FakeOpenRouter
from tests.test_doctor import CHECK_IDS, SHELL_ONLY_IDS

#: The CLI's checks except the shell's own (the app reports on itself instead).
API_CHECK_IDS = [check_id for check_id in CHECK_IDS if check_id not in SHELL_ONLY_IDS]


@pytest.fixture
def fake() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter() as server:
        yield server


@pytest.fixture
def running(data_dir: Path, fake: FakeOpenRouter) -> Iterator[RunningApi]:
    api = start_api(data_dir, openrouter_base_url=fake.base_url)
    yield api
    api.stop()


def diagnose(api: RunningApi) -> tuple[httpx.Response, dict[str, dict]]:
    with api.client() as client:
        response = client.get("/api/v1/diagnostics")
    assert response.status_code == 200, response.text
    return response, {check["id"]: check for check in response.json()["checks"]}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_healthy_app_reports_every_check_and_never_the_key_or_token(running, fake):
    with running.client() as client:
        assert client.put("/api/v1/credentials", json={"api_key": fake.key}).status_code == 200
    response, checks = diagnose(running)
    body = response.json()
    assert body["ok"] is True
    assert list(checks) == API_CHECK_IDS
    for check in body["checks"]:
        assert set(check) == {"id", "name", "status", "detail", "fix", "data"}
        assert check["status"] in ("ok", "warn", "fail")
        assert check["name"] and check["detail"]
    assert checks["openrouter"]["status"] == "ok"
    assert checks["openrouter"]["data"]["url"] == fake.base_url + "/models"
    assert isinstance(checks["openrouter"]["data"]["latency_ms"], int)
    assert checks["api_key"]["status"] == "ok", checks["api_key"]
    assert checks["key_storage"]["data"]["source"] == "file"
    assert checks["key_storage"]["data"]["hint"].endswith(fake.key[-4:])
    # The checks used the key (GET /key answered 200) but the answer never carries it, nor the launch token.
    assert fake.count("/key", status=200) >= 1
    assert fake.key not in response.text
    assert fake.key[:-4] not in response.text
    assert running.token not in response.text


def test_database_is_described_from_its_header_while_the_app_holds_it(running, monkeypatch):
    opened: list[str] = []
    real_connect = duckdb.connect

    def spy(database: str = ":memory:", *args, **kwargs):
        opened.append(str(database))
        return real_connect(database, *args, **kwargs)

    monkeypatch.setattr(duckdb, "connect", spy)
    _, checks = diagnose(running)
    database = checks["database"]
    assert database["status"] == "ok", database
    assert database["data"]["path"] == str(running.settings.db_path)
    assert database["data"]["storage_version"] == database["data"]["library_storage_version"]
    assert str(running.settings.db_path) not in opened


def test_instance_check_describes_this_process(running):
    import os

    _, checks = diagnose(running)
    instance = checks["instance"]
    assert instance["status"] == "ok"
    assert instance["data"]["pid"] == os.getpid()
    assert instance["data"]["in_process"] is True


def test_no_key_is_a_warning_not_a_failure(running):
    response, checks = diagnose(running)
    assert response.json()["ok"] is True
    assert checks["key_storage"]["status"] == "warn"
    assert "Settings" in checks["key_storage"]["fix"]
    assert checks["api_key"]["status"] == "warn"


def test_unreachable_openrouter_fails_with_a_fix(data_dir):
    api = start_api(data_dir, openrouter_base_url=f"http://127.0.0.1:{closed_port()}/api/v1")
    try:
        response, checks = diagnose(api)
    finally:
        api.stop()
    assert response.json()["ok"] is False
    assert checks["openrouter"]["status"] == "fail"
    assert "unreachable" in checks["openrouter"]["detail"]
    assert checks["openrouter"]["fix"]
    assert checks["api_key"]["status"] == "warn"  # not checked without a connection


def test_rejected_key_fails(running, fake):
    with running.client() as client:
        assert client.put("/api/v1/credentials", json={"api_key": fake.key}).status_code == 200
    fake.revoke_key(fake.key)
    response, checks = diagnose(running)
    assert response.json()["ok"] is False
    assert checks["api_key"]["status"] == "fail"
    assert "openrouter.ai/keys" in checks["api_key"]["fix"]
    assert fake.key not in response.text


def test_needs_the_launch_token(running):
    response = httpx.get(running.url + "/api/v1/diagnostics", timeout=10)
    assert response.status_code == 401


def _write(path: Path, document: dict) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_reports_the_policy_in_force_and_a_file_changed_since_start(data_dir, fake, tmp_path):
    policy_file = _write(
        tmp_path / "policy.json",
        {"theme": {"value": "dark", "locked": True}, "budget_monthly_usd": 25},
    )
    api = start_api(
        data_dir, openrouter_base_url=fake.base_url, policy_file=policy_file, policy=load_policy(policy_file)
    )
    try:
        _, checks = diagnose(api)
        assert checks["policy"]["status"] == "ok"
        assert checks["policy"]["data"]["path"] == str(policy_file)
        assert checks["policy"]["data"]["locked"] == ["theme"]

        _write(policy_file, {"theme": {"value": "light", "locked": True}})
        _, checks = diagnose(api)
        assert checks["policy"]["status"] == "warn"
        assert checks["policy"]["data"]["changed_on_disk"] is True
        assert "Restart" in checks["policy"]["fix"]
        assert checks["policy"]["data"]["locked"] == ["theme"]  # still the policy the app started with

        policy_file.write_text('{"theme": {"value": "dark", "locked": "yes"}}', encoding="utf-8")
        response, checks = diagnose(api)
        assert checks["policy"]["status"] == "warn"
        assert str(policy_file) in checks["policy"]["data"]["file_error"]
        assert "locked" in checks["policy"]["data"]["file_error"]
        assert response.json()["ok"] is True  # the app still runs on the policy it loaded
    finally:
        api.stop()


def test_locked_base_url_from_the_policy_is_the_one_probed(data_dir, fake, tmp_path):
    policy_file = _write(tmp_path / "policy.json", {"openrouter_base_url": {"value": fake.base_url, "locked": True}})
    api = start_api(
        data_dir,
        openrouter_base_url=f"http://127.0.0.1:{closed_port()}/api/v1",
        policy_file=policy_file,
        policy=load_policy(policy_file),
    )
    try:
        _, checks = diagnose(api)
    finally:
        api.stop()
    assert checks["openrouter"]["status"] == "ok"
    assert checks["openrouter"]["data"]["url"] == fake.base_url + "/models"


def test_the_api_lists_the_route(running):
    with running.client() as client:
        spec = client.get("/openapi.json").json()
    assert "/api/v1/diagnostics" in spec["paths"]
    assert spec["paths"]["/api/v1/diagnostics"]["get"]["tags"] == ["diagnostics"]


def test_settings_diagnostics_card_renders_the_report(running, fake):
    """The Flask UI's Diagnostics card reads this API: every check shows, problems with their fix."""
    from desktop.servers import UiServer
    from frontend import backend_of, create_app

    with running.client() as client:
        assert client.put("/api/v1/credentials", json={"api_key": fake.key}).status_code == 200
    fake.revoke_key(fake.key)
    server = UiServer(None)
    app = create_app(api_url=running.url, token=running.token, port_getter=lambda: server.port)
    server.server.app = app
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as ui:
            assert ui.get("/login", params={"token": running.token}, follow_redirects=False).status_code == 302
            page = ui.get("/settings/diagnostics", params={"partial": 1})
    finally:
        server.stop()
        backend_of(app).close()
    assert page.status_code == 200
    assert page.text.count('class="diag-row') == len(API_CHECK_IDS)
    assert "diag-fail" in page.text
    assert "openrouter.ai/keys" in page.text  # the API key check's fix
    assert fake.key not in page.text
