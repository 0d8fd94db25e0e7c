"""The pywebview window (main thread) and the checks made before opening it.

With no display, Qt aborts the process without a Python exception, so the display is checked first.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable

from .toolkit import display_reachable, missing_libraries, qt_binaries

log = logging.getLogger(__name__)


def gui_unavailable_reason(env: dict[str, str] | None = None) -> str | None:
    """Why a window cannot be opened here, or None when it can."""
    env = dict(os.environ) if env is None else env
    if env.get("ATELIER_NO_WINDOW", "").strip().lower() in ("1", "true", "yes", "on"):
        return "ATELIER_NO_WINDOW is set"
    if sys.platform.startswith("linux"):
        if env.get("QT_QPA_PLATFORM") == "offscreen":
            pass
        elif not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")):
            return "no display was found (DISPLAY and WAYLAND_DISPLAY are not set)"
        elif not display_reachable(env):
            return f"no X server answers at DISPLAY={env.get('DISPLAY')}"
        if importlib.util.find_spec("webview") is None:
            return "pywebview is not installed"
        has_qt = importlib.util.find_spec("PySide6") is not None and importlib.util.find_spec("qtpy") is not None
        if not has_qt and importlib.util.find_spec("gi") is None:
            return "no GUI toolkit is installed (install the 'gui' extra: pip install 'atelier[gui]')"
    elif importlib.util.find_spec("webview") is None:
        return "pywebview is not installed"
    return None


def start_gui_probe() -> subprocess.Popen | None:
    """Check in a child process that the GUI toolkit can start here (Linux only).

    Qt aborts the whole process, with no Python exception, when it cannot use the display (a missing xcb
    library, an X server that refuses the connection). A child that aborts costs nothing; the app then serves
    headless instead of dying. Windows and macOS use the system web view: no probe.
    """
    if not sys.platform.startswith("linux"):
        return None
    command = [sys.executable, "--gui-probe"] if getattr(sys, "frozen", False) else [
        sys.executable, "-m", "desktop", "--gui-probe"]
    env = dict(os.environ)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        env["QTWEBENGINE_CHROMIUM_FLAGS"] = (env.get("QTWEBENGINE_CHROMIUM_FLAGS", "") + " --no-sandbox").strip()
    try:
        return subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
    except OSError:
        return None


def gui_probe_result(probe: subprocess.Popen, timeout: float = 20.0) -> str | None:
    """None when the probe could start the GUI toolkit, else why not."""
    try:
        _, err = probe.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        probe.kill()
        probe.communicate()
        return "the GUI toolkit did not start in time"
    if probe.returncode == 0:
        return None
    lines = [line.strip() for line in (err or "").splitlines() if line.strip()]
    telling = [line for line in lines if "could not" in line.lower() or "error" in line.lower()]
    detail = (telling or lines[-1:] or [f"exit status {probe.returncode}"])[0]
    log.warning("GUI probe failed (%s): %s", probe.returncode, (err or "").strip()[-2000:])
    reason = f"the GUI toolkit could not start ({detail[:200]})"
    libraries = missing_libraries(qt_binaries())
    if libraries.missing or libraries.bundled_missing:
        reason += f"; {libraries.describe()}"
    return reason


def gui_probe_main() -> int:
    """``atelier --gui-probe``: start Qt with its web engine once, then exit 0."""
    os.environ.setdefault("QT_API", "pyside6")
    from PySide6.QtWebEngineWidgets import QWebEngineView  # noqa: F401 - loads the web engine libraries
    from PySide6.QtWidgets import QApplication

    app = QApplication([sys.argv[0]])
    app.processEvents()
    return 0


class Window:
    """Owns the pywebview window; everything here except :meth:`run` is safe to call from any thread."""

    def __init__(self, url: str, *, title: str = "Atelier"):
        self.url = url
        self.title = title
        self._window = None
        self._ready = threading.Event()

    def run(self, on_closed: Callable[[], None], *, debug: bool = False) -> None:
        """Open the window and run the GUI loop on the calling (main) thread until it closes."""
        if sys.platform.startswith("linux"):
            os.environ.setdefault("PYWEBVIEW_GUI", "qt")
            os.environ.setdefault("QT_API", "pyside6")
            if hasattr(os, "geteuid") and os.geteuid() == 0:
                # Qt WebEngine's sandbox refuses to run as root.
                flags = os.environ.get("QTWEBENGINE_CHROMIUM_FLAGS", "")
                if "--no-sandbox" not in flags:
                    os.environ["QTWEBENGINE_CHROMIUM_FLAGS"] = (flags + " --no-sandbox").strip()
        import webview

        self._window = webview.create_window(
            self.title, self.url, width=1280, height=840, min_size=(880, 600), background_color="#14161a"
        )
        self._window.events.closed += on_closed
        self._window.events.loaded += self._ready.set
        gui = "qt" if sys.platform.startswith("linux") else None
        webview.start(gui=gui, debug=debug, private_mode=True)

    def show(self) -> bool:
        """Bring the window forward (second launch)."""
        window = self._window
        if window is None:
            return False
        try:
            window.restore()
            window.show()
            window.on_top = True
            window.on_top = False
        except Exception:  # the GUI backend may refuse while closing
            log.exception("could not bring the window forward")
            return False
        return True

    def close(self) -> None:
        window = self._window
        if window is not None:
            try:
                window.destroy()
            except Exception:
                log.debug("window already closed", exc_info=True)

    def title_now(self) -> str | None:
        """The page title as the web view sees it (used by the window test)."""
        if self._window is None or not self._ready.wait(30):
            return None
        # evaluate_js wraps scripts in eval(), which our CSP forbids; ask the web view directly.
        try:
            from webview.platforms.qt import BrowserView

            return BrowserView.instances[self._window.uid].webview.title()
        except (ImportError, KeyError, AttributeError):
            return None
