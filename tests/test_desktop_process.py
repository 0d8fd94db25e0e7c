"""The real ``atelier --no-window`` process: runtime contract, guard rails, single instance, clean exit."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import PYTHON, ROOT, subprocess_env


def launch(data_dir: Path, *args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [PYTHON, "-m", "desktop", "--no-window", *args], cwd=ROOT, env=subprocess_env(data_dir, **env),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def wait_runtime(data_dir: Path, proc: subprocess.Popen, timeout: float = 30) -> dict:
    path = data_dir / "runtime.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"atelier exited early: {proc.returncode} {proc.stderr.read()}")
        if path.exists():
            try:
                info = json.loads(path.read_text())
                if httpx.get(info["ui_url"] + "/login", timeout=2).status_code:
                    return info
            except (ValueError, httpx.HTTPError):
                pass
        time.sleep(0.05)
    raise AssertionError("runtime.json did not appear")


def stop(proc: subprocess.Popen, timeout: float = 15) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


@pytest.fixture
def running(data_dir: Path):
    proc = launch(data_dir)
    info = wait_runtime(data_dir, proc)
    yield proc, info
    if proc.poll() is None:
        stop(proc)
    proc.stdout.close()
    proc.stderr.close()


def test_runtime_json_contract(running, data_dir: Path) -> None:
    proc, info = running
    path = data_dir / "runtime.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert set(info) == {"pid", "api_url", "ui_url", "token", "version", "started_at"}
    assert info["pid"] == proc.pid
    assert info["api_url"].startswith("http://127.0.0.1:") and info["ui_url"].startswith("http://127.0.0.1:")
    assert len(info["token"]) >= 32  # ≥128 bits of secrets.token_urlsafe


def test_api_guards(running) -> None:
    _, info = running
    assert httpx.get(info["api_url"] + "/api/v1/health").json()["status"] == "ok"
    assert httpx.get(info["api_url"] + "/api/v1/status").status_code == 401
    auth = {"Authorization": f"Bearer {info['token']}"}
    assert httpx.get(info["api_url"] + "/api/v1/status", headers=auth).status_code == 200
    port = info["api_url"].rsplit(":", 1)[1]
    r = httpx.get(info["api_url"] + "/api/v1/status", headers={**auth, "Host": f"attacker.example:{port}"})
    assert r.status_code in (400, 403)


def test_ui_login_cookie_and_csp(running) -> None:
    _, info = running
    r = httpx.get(info["ui_url"] + "/")
    assert r.status_code in (302, 303, 401)
    r = httpx.get(info["ui_url"] + "/login", params={"token": "wrong"})
    assert r.status_code in (401, 403)
    r = httpx.get(info["ui_url"] + "/login", params={"token": info["token"]})
    assert r.status_code in (302, 303)
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    with httpx.Client(base_url=info["ui_url"]) as c:
        c.get("/login", params={"token": info["token"]})
        page = c.get("/")
        assert page.status_code == 200 and "<title>" in page.text
        csp = page.headers["content-security-policy"]
        for part in ("default-src 'self'", "frame-ancestors 'none'", "connect-src 'self'",
                     "img-src 'self' data: blob:", "media-src 'self' blob:"):
            assert part in csp
        assert "'unsafe-inline'" not in csp


def test_token_never_in_logs(running, data_dir: Path) -> None:
    proc, info = running
    with httpx.Client(base_url=info["ui_url"]) as c:
        c.get("/login", params={"token": info["token"]})
        c.get("/")
    stop(proc)
    for log_file in (data_dir / "logs").iterdir():
        assert info["token"] not in log_file.read_text()


def test_second_launch_hands_off_and_first_keeps_serving(running, data_dir: Path) -> None:
    proc, info = running
    second = subprocess.run(
        [PYTHON, "-m", "desktop", "--no-window"], cwd=ROOT, env=subprocess_env(data_dir),
        capture_output=True, text=True, timeout=60,
    )
    assert second.returncode == 0
    assert "already running" in second.stdout
    assert proc.poll() is None
    assert httpx.get(info["api_url"] + "/api/v1/health").status_code == 200
    assert json.loads((data_dir / "runtime.json").read_text())["pid"] == proc.pid


def test_sigterm_exits_cleanly(running, data_dir: Path) -> None:
    proc, _ = running
    started = time.monotonic()
    assert stop(proc) == 0
    assert time.monotonic() - started < 10
    assert not (data_dir / "runtime.json").exists()
    assert (data_dir / "atelier.duckdb").exists()
    assert not (data_dir / "atelier.duckdb.wal").exists()


def test_sigint_exits_cleanly(running, data_dir: Path) -> None:
    proc, _ = running
    proc.send_signal(signal.SIGINT)
    assert proc.wait(15) == 0
    assert not (data_dir / "runtime.json").exists()


def test_stale_runtime_json_is_replaced(data_dir: Path) -> None:
    dead = subprocess.Popen([PYTHON, "-c", "pass"])
    dead.wait()
    (data_dir / "runtime.json").write_text(json.dumps({
        "pid": dead.pid, "api_url": "http://127.0.0.1:9", "ui_url": "http://127.0.0.1:9", "token": "old",
        "version": "0", "started_at": "2020-01-01T00:00:00+00:00"}))
    proc = launch(data_dir)
    try:
        info = wait_runtime(data_dir, proc)
        deadline = time.monotonic() + 10
        while info["pid"] != proc.pid and time.monotonic() < deadline:
            time.sleep(0.05)
            info = json.loads((data_dir / "runtime.json").read_text())
        assert info["pid"] == proc.pid and info["token"] != "old"
    finally:
        assert stop(proc) == 0
        proc.stdout.close()
        proc.stderr.close()


def test_version_flag() -> None:
    out = subprocess.run([PYTHON, "-m", "desktop", "--version"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0 and out.stdout.startswith("Atelier ")


def test_no_display_falls_back_to_headless(data_dir: Path) -> None:
    proc = subprocess.Popen(
        [PYTHON, "-m", "desktop"], cwd=ROOT, env=subprocess_env(data_dir), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_runtime(data_dir, proc)
    finally:
        assert stop(proc) == 0
    out = proc.stdout.read()
    proc.stdout.close()
    proc.stderr.close()
    assert "cannot open its window" in out and "/login?token=" in out


def test_both_servers_disable_nagle() -> None:
    """Small replies must not wait for delayed ACKs (about 40 ms per request otherwise)."""
    import socket as socketlib

    from desktop.servers import ApiServer, UiServer

    api = ApiServer(lambda scope, receive, send: None)
    assert api.sock.proto == socketlib.IPPROTO_TCP  # asyncio sets TCP_NODELAY only for TCP-protocol sockets
    api.sock.close()
    ui = UiServer(lambda environ, start_response: [])
    assert (socketlib.IPPROTO_TCP, socketlib.TCP_NODELAY, 1) in ui.server.adj.socket_options
    ui.server.close()


def test_200_concurrent_writes_to_the_real_process(running) -> None:
    import concurrent.futures

    _, info = running
    headers = {"Authorization": f"Bearer {info['token']}"}

    def write(i: int) -> int:
        with httpx.Client(base_url=info["api_url"], headers=headers, timeout=60) as c:
            if i % 2:
                return c.put("/api/v1/settings", json={"default_max_tokens": 100 + i}).status_code
            return c.post("/api/v1/generations", json={"kind": "text", "model": "openai/gpt-4o-mini",
                                                       "prompt": f"note {i}", "defer": True}).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=40) as pool:
        codes = list(pool.map(write, range(200)))
    assert sorted(set(codes)) == [200, 202] and codes.count(202) == 100
    with httpx.Client(base_url=info["api_url"], headers=headers) as c:
        assert len(c.get("/api/v1/generations", params={"limit": 200}).json()["items"]) == 100


def test_release_builds_never_enable_devtools(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys as sys_module

    from backend.core.settings import Settings
    from desktop.app import App

    settings = Settings.load()
    assert App(settings, debug_window=False).debug_window is False
    assert App(settings, debug_window=True).debug_window is True  # a source checkout may debug
    monkeypatch.setattr(sys_module, "frozen", True, raising=False)
    assert App(settings, debug_window=True).debug_window is False
