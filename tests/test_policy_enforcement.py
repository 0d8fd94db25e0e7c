"""Machine policy enforced end to end: a real backend (uvicorn + DuckDB) started with a real policy file,
the Flask UI in front of it, the fake OpenRouter behind it, and the real ``python -m desktop`` process."""

from __future__ import annotations

import json
import re
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from backend.core.policy import load_policy
from tests.conftest import PYTHON, ROOT, RunningApi, start_api, subprocess_env
from tests.fakes.openrouter import FakeOpenRouter

ALLOWED_TEXT = "openai/gpt-4o-mini"
FORBIDDEN_TEXT = "anthropic/claude-sonnet-4.5"


@pytest.fixture
def fake() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter() as server:
        yield server


def write_policy(directory: Path, document: dict) -> Path:
    path = directory / "policy.json"
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return path


@contextmanager
def backend_with_policy(data_dir: Path, policy_file: Path, **overrides) -> Iterator[RunningApi]:
    """A real backend with ``policy_file`` in force, loaded by the same parser the app uses at start-up."""
    api = start_api(data_dir, policy=load_policy(policy_file), policy_file=policy_file, **overrides)
    try:
        yield api
    finally:
        api.stop()


@contextmanager
def ui_for(api: RunningApi) -> Iterator[httpx.Client]:
    """The Flask UI wired to ``api``, with a signed-in client."""
    from desktop.servers import UiServer
    from frontend import backend_of, create_app

    server = UiServer(None)
    app = create_app(api_url=api.url, token=api.token, port_getter=lambda: server.port)
    server.server.app = app
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert client.get("/login", params={"token": api.token}, follow_redirects=False).status_code == 302
            yield client
    finally:
        server.stop()
        backend_of(app).close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def generate(client: httpx.Client, model: str = ALLOWED_TEXT, prompt: str = "Hello") -> httpx.Response:
    return client.post("/api/v1/generations", json={"kind": "text", "model": model, "prompt": prompt})


def field_tag(page: str, name: str) -> str:
    """The opening tag of the form control named ``name``."""
    match = re.search(rf'<(?:select|input)\b[^>]*\bname="{name}"[^>]*>', page)
    assert match, f"no control named {name}"
    return match.group(0)


# --- locked values and defaults ------------------------------------------------------------------------------


def test_locked_values_are_refused_by_the_api_and_served_as_locked(data_dir, fake, tmp_path):
    policy_file = write_policy(
        tmp_path,
        {
            "theme": {"value": "dark", "locked": True},
            "budget_monthly_usd": {"value": 40, "locked": True},
            "retry_unknown_text": {"value": False, "locked": True},
        },
    )
    with backend_with_policy(data_dir, policy_file, openrouter_base_url=fake.base_url) as api, api.client() as c:
        settings = c.get("/api/v1/settings").json()
        assert set(settings["locked"]) == {"theme", "budget_monthly_usd", "retry_unknown_text"}
        assert settings["policy_file"] == str(policy_file)
        assert settings["values"]["theme"] == "dark"
        assert settings["values"]["budget_monthly_usd"] == 40

        for change in ({"theme": "light"}, {"budget_monthly_usd": 1000}, {"retry_unknown_text": True}):
            refused = c.put("/api/v1/settings", json=change)
            assert refused.status_code == 403, refused.text
            error = refused.json()["error"]
            assert error["code"] == "locked_by_policy"
            assert "organisation" in error["message"]

        # A batch with one locked name changes nothing at all, not even the unlocked part.
        mixed = c.put("/api/v1/settings", json={"default_model_text": "openai/gpt-4o", "theme": "light"})
        assert mixed.status_code == 403
        after = c.get("/api/v1/settings").json()["values"]
        assert after["theme"] == "dark"
        assert after["default_model_text"] != "openai/gpt-4o"


def test_locked_values_survive_a_restart_with_a_stale_user_choice(data_dir, fake, tmp_path):
    """A user's earlier choice stays in the library, but a policy locked later wins over it."""
    api = start_api(data_dir, openrouter_base_url=fake.base_url)
    with api.client() as c:
        assert c.put("/api/v1/settings", json={"theme": "light"}).status_code == 200
    api.stop()
    policy_file = write_policy(tmp_path, {"theme": {"value": "dark", "locked": True}})
    with backend_with_policy(data_dir, policy_file, openrouter_base_url=fake.base_url) as api, api.client() as c:
        assert c.get("/api/v1/settings").json()["values"]["theme"] == "dark"


def test_policy_defaults_apply_until_the_user_overrides_them(data_dir, fake, tmp_path):
    policy_file = write_policy(
        tmp_path, {"default_model_text": "openai/gpt-4o", "theme": {"value": "dark", "locked": False}}
    )
    with backend_with_policy(data_dir, policy_file, openrouter_base_url=fake.base_url) as api, api.client() as c:
        settings = c.get("/api/v1/settings").json()
        assert settings["locked"] == []
        assert settings["values"]["default_model_text"] == "openai/gpt-4o"
        assert settings["values"]["theme"] == "dark"

        changed = c.put("/api/v1/settings", json={"default_model_text": ALLOWED_TEXT, "theme": "light"})
        assert changed.status_code == 200, changed.text
        assert changed.json()["values"]["default_model_text"] == ALLOWED_TEXT
        assert c.get("/api/v1/settings").json()["values"]["theme"] == "light"


def test_settings_page_shows_locked_settings_as_locked(data_dir, fake, tmp_path):
    policy_file = write_policy(
        tmp_path,
        {"theme": {"value": "dark", "locked": True}, "default_model_text": "openai/gpt-4o"},
    )
    with backend_with_policy(data_dir, policy_file, openrouter_base_url=fake.base_url) as api, ui_for(api) as ui:
        page = ui.get("/settings").text
        assert str(policy_file) in page  # the page says which file manages the locked settings
        theme = field_tag(page, "theme")
        assert "disabled" in theme
        theme_label = re.search(r'<label for="theme">.*?</label>', page, re.S).group(0)
        assert "Set by your organisation" in theme_label
        model = field_tag(page, "default_model_text")
        assert "disabled" not in model  # a default, not a lock
        model_label = re.search(r'<label for="default_model_text">.*?</label>', page, re.S).group(0)
        assert "Set by your organisation" not in model_label
        assert 'data-theme="dark"' in page

        # Submitting the form (even hand-crafted, with the locked field) leaves the locked value alone.
        saved = ui.post("/settings/preferences", data={"theme": "light"}, follow_redirects=False)
        assert saved.status_code == 302
        with api.client() as c:
            assert c.get("/api/v1/settings").json()["values"]["theme"] == "dark"


# --- models ---------------------------------------------------------------------------------------------------


def test_allowed_models_filter_the_catalogue_and_refuse_other_models(data_dir, fake, tmp_path):
    policy_file = write_policy(tmp_path, {"allowed_models": {"value": ["openai/gpt-4o*"], "locked": True}})
    with backend_with_policy(data_dir, policy_file, openrouter_base_url=fake.base_url) as api, api.client() as c:
        assert c.put("/api/v1/credentials", json={"api_key": fake.key}).status_code == 200
        listed = [m["id"] for m in c.get("/api/v1/models", params={"output": "text", "refresh": True}).json()["items"]]
        assert ALLOWED_TEXT in listed
        assert all(model.startswith("openai/gpt-4o") for model in listed), listed
        unfiltered = [m["id"] for m in fake_models(fake)]
        assert FORBIDDEN_TEXT in unfiltered  # the fake offers it; the policy hides it

        refused = generate(c, model=FORBIDDEN_TEXT)
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "model_not_allowed"
        assert FORBIDDEN_TEXT in refused.json()["error"]["message"]
        assert c.get("/api/v1/generations").json()["items"] == []  # nothing was recorded or queued
        assert fake.count("/chat/completions") == 0

        allowed = generate(c, model=ALLOWED_TEXT, prompt="Within policy")
        assert allowed.status_code == 201, allowed.text
        assert allowed.json()["output_text"] == "Echo: Within policy"


def fake_models(fake: FakeOpenRouter) -> list[dict]:
    with httpx.Client(timeout=10) as client:
        return client.get(fake.base_url + "/models").json()["data"]


# --- keys -----------------------------------------------------------------------------------------------------


def test_users_cannot_enter_a_key_when_the_policy_forbids_it(data_dir, fake, tmp_path):
    policy_file = write_policy(tmp_path, {"allow_user_key": {"value": False, "locked": True}})
    with backend_with_policy(data_dir, policy_file, openrouter_base_url=fake.base_url) as api, api.client() as c:
        refused = c.put("/api/v1/credentials", json={"api_key": fake.key})
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "locked_by_policy"
        credentials = c.get("/api/v1/credentials").json()
        assert credentials["configured"] is False
        assert credentials["user_key_allowed"] is False
        assert not (data_dir / "secrets" / "openrouter.key").exists()
        # Refused before anything was sent: the key never reached OpenRouter (reachability probes carry no key).
        assert all(fake.key not in (r.headers.get("authorization") or "") for r in fake.requests)


def test_pre_provisioned_key_file_is_used_for_generation(data_dir, fake, tmp_path):
    provisioned = "sk-or-v1-provisioned-by-it-" + "7" * 40
    fake.add_key(provisioned)
    key_file = tmp_path / "openrouter.key"
    key_file.write_text(provisioned + "\n", encoding="utf-8")
    policy_file = write_policy(
        tmp_path,
        {"api_key_file": str(key_file), "allow_user_key": {"value": False, "locked": True}},
    )
    with backend_with_policy(data_dir, policy_file, openrouter_base_url=fake.base_url) as api, api.client() as c:
        credentials = c.get("/api/v1/credentials").json()
        assert credentials["configured"] is True
        assert credentials["source"] == "policy"
        assert provisioned not in json.dumps(credentials)

        made = generate(c, prompt="With the company key")
        assert made.status_code == 201, made.text
        assert made.json()["output_text"] == "Echo: With the company key"
        auth = [r.headers.get("authorization") for r in fake.requests if r.path.endswith("/chat/completions")]
        assert auth == [f"Bearer {provisioned}"]

        with ui_for(api) as ui:
            page = ui.get("/settings").text
            assert "This key is provided by your organisation." in page
            assert 'name="api_key"' not in page  # no form to paste another key
            assert provisioned not in page


# --- base URL -------------------------------------------------------------------------------------------------


def test_locked_base_url_wins_over_the_environment(data_dir, fake, tmp_path, monkeypatch):
    monkeypatch.setenv("ATELIER_OPENROUTER_BASE_URL", f"http://127.0.0.1:{closed_port()}/api/v1")
    policy_file = write_policy(tmp_path, {"openrouter_base_url": {"value": fake.base_url, "locked": True}})
    with backend_with_policy(data_dir, policy_file) as api, api.client() as c:
        assert api.settings.openrouter_base_url != fake.base_url  # the environment asked for somewhere else
        assert c.put("/api/v1/credentials", json={"api_key": fake.key}).status_code == 200
        made = generate(c, prompt="Through the policy's gateway")
        assert made.status_code == 201, made.text
        assert fake.count("/chat/completions", status=200) == 1


def test_unlocked_base_url_is_only_a_default(data_dir, fake, tmp_path, monkeypatch):
    monkeypatch.setenv("ATELIER_OPENROUTER_BASE_URL", fake.base_url)
    policy_file = write_policy(tmp_path, {"openrouter_base_url": f"http://127.0.0.1:{closed_port()}/api/v1"})
    with backend_with_policy(data_dir, policy_file) as api, api.client() as c:
        assert c.put("/api/v1/credentials", json={"api_key": fake.key}).status_code == 200
        assert generate(c).status_code == 201
        assert fake.count("/chat/completions", status=200) == 1


# --- the real process -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ('{"theme": {"value": "dark", "locked": "yes"}}', "theme.locked"),
        ('{"allowed_model": ["openai/*"]}', "allowed_model"),
        ('{"outbox_concurrency": 99}', "outbox_concurrency"),
        ('{"openrouter_base_url": "http://gateway.corp.example/api/v1"}', "openrouter_base_url"),
        ('{"theme": "dark",}', "line 1"),
    ],
)
def test_invalid_policy_stops_the_app_with_a_message_naming_file_and_field(data_dir, tmp_path, document, field):
    policy_file = tmp_path / "bad-policy.json"
    policy_file.write_text(document, encoding="utf-8")
    result = subprocess.run(
        [PYTHON, "-m", "desktop", "--no-window"],
        cwd=ROOT,
        env=subprocess_env(data_dir, ATELIER_POLICY_FILE=str(policy_file)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert str(policy_file) in result.stderr
    assert field in result.stderr
    assert not (data_dir / "runtime.json").exists()
    assert "Traceback" not in result.stderr


def test_real_process_enforces_a_valid_policy_file(data_dir, fake, tmp_path):
    """``ATELIER_POLICY_FILE`` read by the real app: the locked value is refused over its real API."""
    policy_file = write_policy(tmp_path, {"theme": {"value": "dark", "locked": True}})
    env = subprocess_env(data_dir, ATELIER_POLICY_FILE=str(policy_file), ATELIER_OPENROUTER_BASE_URL=fake.base_url)
    process = subprocess.Popen(
        [PYTHON, "-m", "desktop", "--no-window"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        runtime = wait_for_runtime(data_dir / "runtime.json", process)
        with httpx.Client(
            base_url=runtime["api_url"], headers={"Authorization": f"Bearer {runtime['token']}"}, timeout=30
        ) as c:
            assert c.get("/api/v1/settings").json()["locked"] == ["theme"]
            refused = c.put("/api/v1/settings", json={"theme": "light"})
            assert refused.status_code == 403
            assert refused.json()["error"]["code"] == "locked_by_policy"
    finally:
        process.terminate()
        process.communicate(timeout=30)
    assert process.returncode == 0


def wait_for_runtime(path: Path, process: subprocess.Popen, timeout: float = 60) -> dict:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the app exited early: {process.communicate()[0]}")
        if path.exists():
            try:
                return json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                pass  # being written
        time.sleep(0.05)
    raise AssertionError("runtime.json did not appear")
