"""``atelier doctor`` against the fake OpenRouter, real DuckDB files and real policy files."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from backend.core.settings import Settings
from desktop.doctor import run_doctor
from tests.conftest import ROOT, subprocess_env
from tests.fakes.openrouter import FakeOpenRouter

SENTINEL = "sk-or-v1-SENTINEL-doctor-do-not-print-0000wxyz"
CHECK_IDS = [
    "version",
    "os",
    "window",
    "data_dir",
    "database",
    "instance",
    "policy",
    "key_storage",
    "trust_store",
    "proxy",
    "openrouter",
    "api_key",
]
#: Checks only the desktop shell can make (the API inside the app reports the others).
SHELL_ONLY_IDS = {"window"}


@pytest.fixture
def fake():
    server = FakeOpenRouter().start()
    yield server
    server.stop()


def doctor(
    data_dir: Path,
    base_url: str,
    *,
    env: dict[str, str] | None = None,
    json_output: bool = False,
    timeout: float = 5.0,
    **overrides,
) -> tuple[int, str]:
    settings = Settings.load(
        env={},
        data_dir=data_dir,
        openrouter_base_url=base_url,
        keyring_backend="file",
        policy_file=overrides.pop("policy_file", data_dir / "no-policy.json"),
        **overrides,
    )
    out = io.StringIO()
    code = run_doctor(settings, out=out, json_output=json_output, env=env or {}, timeout=timeout)
    return code, out.getvalue()


def statuses(output: str) -> dict[str, dict]:
    return {check["id"]: check for check in json.loads(output)["checks"]}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_healthy_setup_exits_zero_and_never_prints_the_key(data_dir, fake):
    fake.add_key(SENTINEL, limit=20, limit_remaining=12.5)
    code, text = doctor(data_dir, fake.base_url, env={"OPENROUTER_API_KEY": SENTINEL})
    assert code == 0, text
    assert SENTINEL not in text
    assert "OK    API key" in text
    assert "valid ($12.50 left of its limit)" in text
    assert "key from env (…wxyz)" in text
    assert "exit status 0" in text
    # The key went to the configured base URL, in the Authorization header only.
    key_requests = [r for r in fake.requests if r.path == "/key"]
    assert len(key_requests) == 1
    assert key_requests[0].header("authorization") == f"Bearer {SENTINEL}"
    assert SENTINEL not in key_requests[0].full_path


def test_json_output_shape(data_dir, fake):
    fake.add_key(SENTINEL)
    code, output = doctor(data_dir, fake.base_url, env={"OPENROUTER_API_KEY": SENTINEL}, json_output=True)
    assert code == 0
    assert SENTINEL not in output
    report = json.loads(output)
    assert set(report) == {"atelier_version", "ok", "exit_code", "checks"}
    assert report["ok"] is True and report["exit_code"] == 0
    assert [c["id"] for c in report["checks"]] == CHECK_IDS
    for check in report["checks"]:
        assert set(check) == {"id", "title", "status", "message", "hint", "details"}
        assert check["status"] in {"OK", "WARN", "FAIL"}
        assert isinstance(check["details"], dict)
    checks = statuses(output)
    assert checks["openrouter"]["status"] == "OK"
    assert isinstance(checks["openrouter"]["details"]["latency_ms"], int)
    assert checks["openrouter"]["details"]["models"] > 0
    assert checks["api_key"]["details"]["limit_remaining"] is None  # an unlimited key
    assert checks["key_storage"]["details"] == {
        "backend": "file",
        "configured": True,
        "source": "env",
        "hint": "…wxyz",
        "note": checks["key_storage"]["details"]["note"],
    }
    assert checks["trust_store"]["details"]["tls_verification"] is True
    assert checks["proxy"]["details"]["direct_reason"] == "loopback target"


def test_revoked_key_fails(data_dir, fake):
    code, output = doctor(data_dir, fake.base_url, env={"OPENROUTER_API_KEY": SENTINEL}, json_output=True)
    assert code == 1
    assert SENTINEL not in output
    checks = statuses(output)
    assert checks["api_key"]["status"] == "FAIL"
    assert "revoked" in checks["api_key"]["message"]
    assert checks["api_key"]["hint"]
    assert checks["openrouter"]["status"] == "OK"


def test_unreachable_openrouter_fails_with_a_hint(data_dir):
    base_url = f"http://127.0.0.1:{closed_port()}/api/v1"
    code, text = doctor(data_dir, base_url, env={"OPENROUTER_API_KEY": SENTINEL})
    assert code == 1
    assert SENTINEL not in text
    assert f"FAIL  OpenRouter        {base_url} unreachable: cannot connect" in text
    assert "fix: Check the network connection" in text
    assert "WARN  API key           not checked: OpenRouter is unreachable" in text


def test_no_key_is_a_warning_not_a_failure(data_dir, fake):
    code, output = doctor(data_dir, fake.base_url, json_output=True)
    assert code == 0
    checks = statuses(output)
    assert checks["key_storage"]["status"] == "WARN"
    assert checks["api_key"]["status"] == "WARN"


def test_a_base_url_that_is_not_the_api_fails(data_dir, fake):
    code, output = doctor(data_dir, fake.site_url + "/nothing-here", json_output=True)
    assert code == 1
    assert statuses(output)["openrouter"]["status"] == "FAIL"


def test_invalid_policy_fails_naming_file_and_field(data_dir, fake, tmp_path):
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"budget_monthly_usd": "ten"}), encoding="utf-8")
    code, output = doctor(data_dir, fake.base_url, json_output=True, policy_file=policy)
    assert code == 1
    check = statuses(output)["policy"]
    assert check["status"] == "FAIL"
    assert str(policy) in check["message"]
    assert "'budget_monthly_usd' must be a number ≥ 0" in check["message"]


def test_policy_in_force_and_a_policy_provisioned_key(data_dir, fake, tmp_path):
    fake.add_key(SENTINEL)
    key_file = tmp_path / "openrouter.key"
    key_file.write_text(SENTINEL + "\n", encoding="utf-8")
    policy = tmp_path / "policy.json"
    policy.write_text(
        json.dumps(
            {
                "openrouter_base_url": {"value": fake.base_url, "locked": True},
                "allow_user_key": {"value": False, "locked": True},
                "api_key_file": str(key_file),
                "theme": "dark",
            }
        ),
        encoding="utf-8",
    )
    # The locked policy base URL wins over the user's setting.
    wrong = f"http://127.0.0.1:{closed_port()}/api/v1"
    code, output = doctor(data_dir, wrong, json_output=True, policy_file=policy)
    assert code == 0, output
    assert SENTINEL not in output
    checks = statuses(output)
    assert checks["policy"]["details"]["locked"] == ["allow_user_key", "openrouter_base_url"]
    assert "locked: allow_user_key, openrouter_base_url" in checks["policy"]["message"]
    assert checks["key_storage"]["details"]["source"] == "policy"
    assert checks["api_key"]["status"] == "OK"
    assert checks["openrouter"]["details"]["url"] == fake.base_url + "/models"


def test_policy_that_requires_a_provisioned_key_fails_without_one(data_dir, fake, tmp_path):
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"allow_user_key": {"value": False, "locked": True}}), encoding="utf-8")
    code, output = doctor(data_dir, fake.base_url, json_output=True, policy_file=policy)
    assert code == 1
    assert statuses(output)["key_storage"]["status"] == "FAIL"

    policy.write_text(json.dumps({"api_key_file": str(tmp_path / "missing.key")}), encoding="utf-8")
    code, output = doctor(data_dir, fake.base_url, json_output=True, policy_file=policy)
    assert code == 1
    assert "does not exist" in statuses(output)["key_storage"]["message"]


def test_database_is_read_without_opening_it_while_the_app_holds_it(data_dir, fake):
    db_path = data_dir / "atelier.duckdb"
    con = duckdb.connect(str(db_path))  # holds the file lock, like the running app
    try:
        con.execute("CREATE TABLE t AS SELECT range AS i FROM range(1000)")
        con.execute("CHECKPOINT")
        runtime = {
            "pid": os.getpid(),
            "api_url": "http://127.0.0.1:1",
            "ui_url": "http://127.0.0.1:2",
            "token": "launch-token-must-not-be-printed",
            "version": "0.1.0",
            "started_at": "now",
        }
        (data_dir / "runtime.json").write_text(json.dumps(runtime), encoding="utf-8")
        code, output = doctor(data_dir, fake.base_url, json_output=True)
        assert code == 0, output
        assert "launch-token-must-not-be-printed" not in output
        checks = statuses(output)
        database = checks["database"]
        assert database["status"] == "OK"
        assert database["details"]["storage_version"] == database["details"]["library_storage_version"]
        assert database["details"]["written_by"] == "v" + duckdb.__version__
        assert database["details"]["bytes"] == db_path.stat().st_size
        assert checks["instance"]["status"] == "OK"
        assert checks["instance"]["details"]["running"] is True
        assert con.execute("SELECT count(*) FROM t").fetchone() == (1000,)  # still ours, untouched
    finally:
        con.close()


def test_newer_and_corrupt_database_files_fail(data_dir, fake):
    db_path = data_dir / "atelier.duckdb"
    duckdb.connect(str(db_path)).close()
    header = bytearray(db_path.read_bytes())
    version = int.from_bytes(header[12:20], "little")
    header[12:20] = (version + 1).to_bytes(8, "little")
    db_path.write_bytes(bytes(header))
    code, output = doctor(data_dir, fake.base_url, json_output=True)
    assert code == 1
    check = statuses(output)["database"]
    assert check["status"] == "FAIL" and "newer" in check["hint"]
    assert db_path.read_bytes() == bytes(header)  # left untouched

    db_path.write_bytes(b"\0" * 4096)
    code, output = doctor(data_dir, fake.base_url, json_output=True)
    assert code == 1
    assert "not a readable DuckDB database" in statuses(output)["database"]["message"]


def test_stale_runtime_file_is_a_warning(data_dir, fake):
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    (data_dir / "runtime.json").write_text(json.dumps({"pid": int(finished.stdout), "token": "t"}), "utf-8")
    code, output = doctor(data_dir, fake.base_url, json_output=True)
    assert code == 0
    check = statuses(output)["instance"]
    assert check["status"] == "WARN" and check["details"]["running"] is False


def test_proxy_credentials_and_extra_ca_are_reported_safely(data_dir, fake, tmp_path):
    env = {"HTTPS_PROXY": "http://alice:pr0xy-pass@proxy.corp.example:3128", "ALL_PROXY": "socks5://s:1080"}
    code, text = doctor(data_dir, "https://gateway.corp.example/api/v1", env=env, timeout=0.5)
    assert "pr0xy-pass" not in text and "alice" not in text
    assert "OK    Proxy" not in text  # the socks entry is ignored and reported
    assert "http://***@proxy.corp.example:3128 (from HTTPS_PROXY); ignored: ALL_PROXY=socks5://s:1080" in text
    assert code == 1  # the proxy does not exist

    missing = tmp_path / "corp-ca.pem"
    code, output = doctor(data_dir, fake.base_url, json_output=True, ca_bundle=missing)
    assert code == 1
    assert statuses(output)["trust_store"]["status"] == "FAIL"


def test_cli_doctor_json_in_a_subprocess(data_dir, fake):
    fake.add_key(SENTINEL)
    env = subprocess_env(
        data_dir,
        ATELIER_OPENROUTER_BASE_URL=fake.base_url,
        OPENROUTER_API_KEY=SENTINEL,
        ATELIER_POLICY_FILE=str(data_dir / "none.json"),
    )
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        env.pop(name, None)
    result = subprocess.run(
        [sys.executable, "-m", "desktop", "doctor", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert SENTINEL not in result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert [c["id"] for c in report["checks"]] == CHECK_IDS
    assert {c["id"]: c["status"] for c in report["checks"]}["api_key"] == "OK"


def test_options_after_the_subcommand_and_any_case_log_level(data_dir, fake, tmp_path):
    other = tmp_path / "elsewhere"
    env = subprocess_env(
        data_dir, ATELIER_OPENROUTER_BASE_URL=fake.base_url, ATELIER_POLICY_FILE=str(data_dir / "none.json")
    )
    result = subprocess.run(
        [sys.executable, "-m", "desktop", "doctor", "--json", "--data-dir", str(other), "--log-level", "debug"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert statuses(result.stdout)["data_dir"]["details"]["path"] == str(other)

    from desktop.app import build_parser

    before = build_parser().parse_args(["--data-dir", str(other), "--log-level", "Warning", "doctor"])
    assert before.data_dir == other and before.log_level == "WARNING" and before.command == "doctor"
    assert build_parser().parse_args(["--log-level", "info"]).log_level == "INFO"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--log-level", "loud"])


def test_the_backend_never_imports_the_desktop_shell():
    """Not even inside a function: the shell hands the backend what only it knows (e.g. runtime.json)."""
    import ast

    offenders = []
    for path in sorted((ROOT / "backend").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names if n.split(".")[0] == "desktop"]
    assert offenders == []


def test_diagnostics_modules_stay_small():
    modules = (ROOT / "backend" / "diagnostics").glob("*.py")
    sizes = {path.name: len(path.read_text("utf-8").splitlines()) for path in modules}
    assert max(sizes.values()) < 600, sizes


def test_without_the_shell_the_instance_is_not_guessed(data_dir, fake):
    from backend.diagnostics.checks import diagnose

    settings = Settings.load(env={}, data_dir=data_dir, openrouter_base_url=fake.base_url, keyring_backend="file",
                             policy_file=data_dir / "none.json")
    report = diagnose(settings, env={})
    checks = {check.id: check for check in report.checks}
    assert "window" not in checks
    assert checks["instance"].status == "WARN" and checks["instance"].message == "not checked"
