"""Shared fixtures. Every test gets its own data directory; nothing touches the user's real files or keychain."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytest_plugins = ["tests.fakes.pytest_plugin"]


@pytest.fixture(autouse=True)
def _hermetic_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    data_dir = tmp_path_factory.mktemp("atelier-data")
    monkeypatch.setenv("ATELIER_DATA_DIR", str(data_dir))
    monkeypatch.setenv("ATELIER_KEYRING_BACKEND", "file")
    monkeypatch.setenv("ATELIER_POLICY_FILE", str(data_dir / "no-policy.json"))
    # The machine policy always applies and no environment variable moves it: keep this machine's out of tests.
    no_machine_policy = data_dir / "no-machine-policy" / "Atelier" / "policy.json"
    monkeypatch.setattr("backend.core.policy.system_policy_path", lambda: no_machine_policy)
    monkeypatch.setenv("ATELIER_NO_BROWSER", "1")
    # No app in a test listens to this machine's system D-Bus (NetworkManager's signals): a missing socket.
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={data_dir / 'no-system-bus'}")
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    return data_dir


@pytest.fixture
def data_dir(_hermetic_env: Path) -> Path:
    return _hermetic_env


def subprocess_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for running ``python -m desktop`` from the repo root."""
    env = dict(os.environ)
    env.update(
        {
            "ATELIER_DATA_DIR": str(data_dir),
            "PYTHONPATH": str(ROOT),
            "ATELIER_KEYRING_BACKEND": "file",
            "ATELIER_NO_BROWSER": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    env.update(extra)
    return env


PYTHON = sys.executable


class FakeXServer:
    """Something listening where ``DISPLAY=127.0.0.1:N`` points that closes every connection at once.

    To the shell's reachability check it is a display; to Qt it is an X server that refuses the connection.
    """

    def __init__(self) -> None:
        import socket

        for number in range(60, 400):
            sock = socket.socket()
            try:
                sock.bind(("127.0.0.1", 6000 + number))
            except OSError:
                sock.close()
                continue
            break
        else:
            raise RuntimeError("no free X display port")
        sock.listen(16)
        self.sock = sock
        self.display = f"127.0.0.1:{number}"
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        import socket

        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


@pytest.fixture
def fake_x_server():
    server = FakeXServer()
    yield server
    server.close()


class RunningApi:
    """A real backend served by uvicorn on 127.0.0.1 in a thread (see the ``api`` fixture)."""

    def __init__(self, settings, token: str, **app_kwargs):
        from backend.app import create_app
        from desktop.servers import ApiServer

        self.token = token
        self.settings = settings
        self.app = create_app(settings, token=token, **app_kwargs)
        self.server = ApiServer(self.app)
        self.server.start()
        self.url = self.server.url
        self.port = self.server.port

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def client(self, **kwargs):
        import httpx

        return httpx.Client(base_url=self.url, headers=self.headers, timeout=30, **kwargs)

    def outbox_settled(self, passes: int = 2, timeout: float = 15) -> None:
        """Wait until the outbox loop has made ``passes`` more passes with no attempt in flight: whatever it
        would send by itself from the current state, it has sent (a wait on state, not a sleep)."""
        import time

        outbox = self.app.state.outbox
        deadline = time.monotonic() + timeout
        start = outbox.passes
        while outbox.passes < start + passes or outbox.running:
            if time.monotonic() > deadline:
                raise AssertionError("the outbox did not settle in time")
            if outbox.running:
                start = outbox.passes
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.stop()


def start_api(data_dir: Path, token: str = "test-launch-token-0123456789abcdef", **overrides) -> RunningApi:
    """Start a real backend on loopback with its own data dir. Settings overrides go in ``overrides``."""
    from backend.core.settings import Settings

    app_kwargs = {k: overrides.pop(k) for k in ("policy", "shell", "openrouter_transport") if k in overrides}
    settings = Settings.load(data_dir=data_dir, **overrides)
    return RunningApi(settings, token, **app_kwargs)


@pytest.fixture
def api(data_dir: Path):
    running = start_api(data_dir)
    yield running
    running.stop()
