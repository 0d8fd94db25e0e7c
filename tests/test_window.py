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
            # The window shows the theme's background (no title yet) while the servers start, then the login
            # page, then the Studio: wait for the Studio, or print whatever the window shows at the deadline.
            if title and "Studio" in title:
                break
            time.sleep(0.2)
        print("TITLE:", title, flush=True)
        print("BACKGROUND:", app.window.page_background(), flush=True)
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


#: Lines Qt WebEngine/Chromium printed on every launch (no GPU, no Vulkan, no system bus, the CSP refusing
#: pywebview's injected style): none may reach the console.
NOISE = ("QRhi", "RHI", "Vulkan", "vulkan", "GBM", "GPU vendor", "GPUInfo", "DRI3", "dbus", "bus.cc",
         "Refused to apply inline style", "Content Security Policy", ":ERROR:", "software rendering")


def test_window_opens_the_studio(data_dir: Path) -> None:
    env = subprocess_env(data_dir, QT_QPA_PLATFORM="offscreen")  # the app chooses the Chromium flags itself
    env.pop("QTWEBENGINE_CHROMIUM_FLAGS", None)
    env.pop("QT_LOGGING_RULES", None)
    out = subprocess.run([PYTHON, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    titles = [line for line in out.stdout.splitlines() if line.startswith("TITLE:")]
    assert titles and "Studio" in titles[0], out.stdout + out.stderr[-2000:]
    noisy = [line for line in out.stderr.splitlines() if any(word in line for word in NOISE)]
    assert noisy == [], out.stderr[-3000:]
    # The web view paints the dark theme's background until the page does (never white): "system" theme,
    # and the offscreen platform reports no light desktop.
    assert "BACKGROUND: #111218" in out.stdout, out.stdout
    second = [line for line in out.stdout.splitlines() if line.startswith("SECOND:")]
    assert second and second[0].startswith("SECOND: 0 ") and "brought to the front" in second[0], out.stdout
    assert not (data_dir / "runtime.json").exists()
    # The window opened on the theme's background before its first page (the UI) had loaded in it.
    lines = (data_dir / "logs" / "atelier.log").read_text("utf-8").splitlines()
    shown = [i for i, line in enumerate(lines) if "window: shown" in line]
    loaded = [i for i, line in enumerate(lines) if "window: first page loaded" in line]
    assert shown and loaded and shown[0] < loaded[0], "\n".join(lines[-40:])


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


def test_first_frame_colours_are_the_themes() -> None:
    """The window's first colour is the page's own ``--bg`` for the theme, so nothing flashes."""
    import re

    from desktop.window import BACKGROUNDS, Window

    css = (ROOT / "frontend" / "static" / "app.css").read_text("utf-8")
    light = re.search(r":root \{[^}]*?--bg: (#[0-9a-f]{6})", css).group(1)
    dark = re.search(r':root\[data-theme="dark"\] \{[^}]*?--bg: (#[0-9a-f]{6})', css).group(1)
    assert {"light": light, "dark": dark} == BACKGROUNDS
    assert Window("u", theme="light").background == light
    assert Window("u", theme="dark").background == dark
    assert Window("u", theme="system").background == dark
    assert Window("u", theme="anything").background == dark


def test_quiet_chromium_flags(monkeypatch) -> None:
    from desktop import window

    env = {"QTWEBENGINE_CHROMIUM_FLAGS": "--foo", "QT_QPA_PLATFORM": "offscreen"}
    window.prepare_qt_environment(env)
    flags = env["QTWEBENGINE_CHROMIUM_FLAGS"].split()
    assert flags[0] == "--foo" and "--disable-logging" in flags and "--log-level=3" in flags
    assert "--disable-gpu" in flags  # offscreen: no GPU to use
    window.prepare_qt_environment(env)
    assert env["QTWEBENGINE_CHROMIUM_FLAGS"].split() == flags  # idempotent
    # No GPU: Qt draws without OpenGL as well (no Mesa software GL loaded into the app).
    assert env["QT_XCB_GL_INTEGRATION"] == "none" and env["QT_QUICK_BACKEND"] == "software"
    chosen = {"QT_QPA_PLATFORM": "offscreen", "QT_QUICK_BACKEND": "rhi"}
    window.prepare_qt_environment(chosen)
    assert chosen["QT_QUICK_BACKEND"] == "rhi"  # the user's choice wins

    debug = {"QTWEBENGINE_CHROMIUM_FLAGS": ""}
    monkeypatch.setattr(window, "has_gpu", lambda env=None: True)
    window.prepare_qt_environment(debug, debug=True)
    assert "--log-level=3" not in debug["QTWEBENGINE_CHROMIUM_FLAGS"]
    assert "--disable-gpu" not in debug["QTWEBENGINE_CHROMIUM_FLAGS"]
    assert "QT_QUICK_BACKEND" not in debug and "QT_XCB_GL_INTEGRATION" not in debug  # a GPU: Qt's defaults
