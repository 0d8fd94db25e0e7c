"""SECURITY.md item 28: the machine policy cannot be turned off by the user.

The policy file in the system location always applies. ``ATELIER_POLICY_FILE`` (or the ``policy_file``
setting) names an extra file that can add restrictions, never remove or unlock one, and no environment
variable (``XDG_CONFIG_DIRS``, platformdirs' ``WIN_PD_OVERRIDE_*``) moves the system location.

Tests point the system location at a temporary file through ``load_policy(system_path=...)`` or by replacing
``system_policy_path`` in-process: code-level seams, which a user running the app cannot reach.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from backend.core import policy as policy_module
from backend.core.policy import POLICY_ENV_VAR, PolicyError, PolicyValue, load_policy, system_policy_path
from tests.conftest import start_api

# Captured at import, before the hermetic fixture points the system location into the test's data dir.
REAL_SYSTEM_POLICY_PATH = system_policy_path

LOCKED = {
    "theme": {"value": "dark", "locked": True},
    "allowed_models": {"value": ["openai/*"], "locked": True},
    "budget_monthly_usd": 20,
}


def write(path: Path, document: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


@pytest.fixture
def system_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A machine policy in the (test) system location, with two locked values and one default."""
    path = write(tmp_path / "system" / "Atelier" / "policy.json", LOCKED)
    monkeypatch.setattr(policy_module, "system_policy_path", lambda: path)
    return path


def assert_machine_locks(policy) -> None:
    assert policy.get("theme") == PolicyValue("dark", True)
    assert policy.get("allowed_models") == PolicyValue(("openai/*",), True)
    assert not policy.model_allowed("anthropic/claude-sonnet-4.5")


def test_a_missing_extra_file_does_not_turn_the_machine_policy_off(tmp_path: Path) -> None:
    system = write(tmp_path / "system.json", LOCKED)
    other_xdg = tmp_path / "xdg"
    write(other_xdg / "Atelier" / "policy.json", {"theme": "light"})
    env = {POLICY_ENV_VAR: "/nonexistent", "XDG_CONFIG_DIRS": str(other_xdg)}
    policy = load_policy(env=env, system_path=system)
    assert_machine_locks(policy)
    assert policy.path == system
    assert load_policy(Path("/nonexistent/policy.json"), env={}, system_path=system).get("theme").locked


def test_the_system_location_ignores_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    expected = REAL_SYSTEM_POLICY_PATH()
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home-config"))
    monkeypatch.setenv("WIN_PD_OVERRIDE_CSIDL_COMMON_APPDATA", str(tmp_path / "programdata"))
    monkeypatch.setenv("PROGRAMDATA", str(tmp_path / "programdata"))
    assert REAL_SYSTEM_POLICY_PATH() == expected
    assert str(tmp_path) not in str(expected)
    if sys.platform.startswith("linux"):
        assert expected == Path("/etc/xdg/Atelier/policy.json")


def test_an_extra_file_can_add_a_lock(system_file: Path, tmp_path: Path) -> None:
    extra = write(tmp_path / "extra.json", {"budget_monthly_usd": {"value": 5, "locked": True},
                                            "proxy": {"value": "http://proxy.corp.example:3128", "locked": True}})
    policy = load_policy(env={POLICY_ENV_VAR: str(extra)})
    assert_machine_locks(policy)
    assert policy.get("budget_monthly_usd") == PolicyValue(5.0, True)
    assert policy.is_locked("proxy")
    assert policy.path == system_file and policy.extra_path == extra
    assert set(policy.locked_names) == {"theme", "allowed_models", "budget_monthly_usd", "proxy"}


@pytest.mark.parametrize("attempt", [
    {"theme": "light"},
    {"theme": {"value": "light", "locked": False}},
    {"theme": {"value": "dark", "locked": False}},
    {"theme": {"value": "light", "locked": True}},
    {"allowed_models": {"value": ["*"], "locked": False}},
    {"allowed_models": ["*"]},
])
def test_an_extra_file_cannot_unlock_or_change_a_locked_value(system_file: Path, tmp_path: Path,
                                                              attempt: dict) -> None:
    extra = write(tmp_path / "extra.json", attempt)
    for policy in (load_policy(env={POLICY_ENV_VAR: str(extra)}), load_policy(extra, env={})):
        assert_machine_locks(policy)
        assert policy.extra_path == extra
    changed = {name for name, entry in attempt.items() if entry != LOCKED[name]}
    assert set(load_policy(extra, env={}).ignored) == changed


def test_an_extra_file_may_change_a_default_the_user_could_change_anyway(system_file: Path, tmp_path: Path) -> None:
    extra = write(tmp_path / "extra.json", {"budget_monthly_usd": 50})
    assert load_policy(extra, env={}).get("budget_monthly_usd") == PolicyValue(50.0, False)


def test_an_extra_file_that_contradicts_the_machine_policy_is_an_error(system_file: Path, tmp_path: Path) -> None:
    extra = write(tmp_path / "extra.json", {"default_model_text": "anthropic/claude-sonnet-4.5"})
    with pytest.raises(PolicyError, match="default_model_text") as info:
        load_policy(extra, env={})
    assert str(extra) in str(info.value)


def test_without_a_system_file_the_extra_file_applies_alone(tmp_path: Path) -> None:
    extra = write(tmp_path / "extra.json", {"theme": {"value": "light", "locked": True}})
    policy = load_policy(extra, env={}, system_path=tmp_path / "absent.json")
    assert policy.path == extra and policy.get("theme") == PolicyValue("light", True)


def test_the_app_enforces_the_machine_policy_whatever_the_environment(system_file: Path, data_dir: Path,
                                                                      tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Start-up path of the desktop app: settings from the environment, the policy it loads, the real API."""
    from backend.core.settings import Settings
    from desktop.app import _load_policy

    permissive = write(tmp_path / "xdg" / "Atelier" / "policy.json", {"theme": {"value": "light", "locked": False}})
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "xdg"))
    for extra in ("/nonexistent", str(permissive)):
        monkeypatch.setenv(POLICY_ENV_VAR, extra)
        settings = Settings.load()
        policy = _load_policy(settings)
        assert_machine_locks(policy)
        api = start_api(data_dir, policy=policy, policy_file=settings.policy_file)
        try:
            with api.client() as c:
                current = c.get("/api/v1/settings").json()
                assert current["values"]["theme"] == "dark"
                assert "theme" in current["locked"]
                refused = c.put("/api/v1/settings", json={"theme": "light"})
                assert refused.status_code == 403 and refused.json()["error"]["code"] == "locked_by_policy"
        finally:
            api.stop()
