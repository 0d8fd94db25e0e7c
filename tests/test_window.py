"""A real Qt window (offscreen) opens the UI, logs in and shows the Studio page."""

from __future__ import annotations

import importlib.util
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.conftest import PYTHON, ROOT, subprocess_env

pytestmark = [
    pytest.mark.window,
    pytest.mark.skipif(importlib.util.find_spec("PySide6") is None, reason="the 'gui' extra is not installed"),
]

SCRIPT = textwrap.dedent(
    """
    import sys, threading, time
    from backend.core.settings import Settings
    from desktop.app import App

    app = App(Settings.load(), window=True)

    def probe():
        deadline = time.monotonic() + 60
        while app.window is None and time.monotonic() < deadline:
            time.sleep(0.05)
        title = None
        while time.monotonic() < deadline:
            title = app.window.title_now()
            if title and title != "Atelier login":
                break
            time.sleep(0.2)
        print("TITLE:", title, flush=True)
        # A second launch must hand off to this window instead of opening the database.
        import os, subprocess
        second = subprocess.run([sys.executable, "-m", "desktop"], capture_output=True, text=True, timeout=60,
                                env=dict(os.environ))
        print("SECOND:", second.returncode, second.stdout.strip(), flush=True)
        app.stop_event.set()

    threading.Thread(target=probe, daemon=True).start()
    sys.exit(app.run())
    """
)


def test_window_opens_the_studio(data_dir: Path) -> None:
    env = subprocess_env(data_dir, QT_QPA_PLATFORM="offscreen", QTWEBENGINE_CHROMIUM_FLAGS="--no-sandbox --disable-gpu")
    out = subprocess.run([PYTHON, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    titles = [line for line in out.stdout.splitlines() if line.startswith("TITLE:")]
    assert titles and "Studio" in titles[0], out.stdout + out.stderr[-2000:]
    second = [line for line in out.stdout.splitlines() if line.startswith("SECOND:")]
    assert second and second[0].startswith("SECOND: 0 ") and "brought to the front" in second[0], out.stdout
    assert not (data_dir / "runtime.json").exists()


def test_a_display_qt_cannot_use_falls_back_to_headless(data_dir: Path, fake_x_server) -> None:
    """Qt aborts the process when it cannot use the display; the probe child takes that hit instead."""
    import signal
    import time

    # Something answers there (so the shell tries), but it is no X server: Qt cannot connect.
    env = subprocess_env(data_dir, DISPLAY=fake_x_server.display)
    proc = subprocess.Popen([PYTHON, "-m", "desktop"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (data_dir / "runtime.json").exists():
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    out = proc.stdout.read()
    proc.stdout.close()
    proc.stderr.close()
    assert "cannot open its window" in out and "could not" in out and "/login?token=" in out
