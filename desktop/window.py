"""The pywebview window (main thread) and the checks made before opening it.

With no display, Qt aborts the process without a Python exception, so the display is checked first.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

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
    prepare_qt_environment(env)
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


#: The page background of each theme (``--bg`` in frontend/static/app.css), painted before the first page.
BACKGROUNDS = {"dark": "#111218", "light": "#f6f6f9"}

# Qt messages every launch prints on machines without a (usable) GPU or Vulkan, and that say nothing the user
# can act on: they go to the log file at DEBUG instead of the console.
_QT_NOISE = re.compile(
    r"vulkan|QRhi|\bRHI\b|GPU vendor|GPUInfo|\bGBM\b|DRI3|OpenGL|software rendering|GpuControl|libEGL|\bEGL\b",
    re.IGNORECASE,
)


def has_gpu(env: dict[str, str] | os._Environ | None = None) -> bool:
    """Whether Chromium can use a GPU here: a DRM render node exists and Qt draws to a real screen."""
    env = os.environ if env is None else env
    if env.get("QT_QPA_PLATFORM") == "offscreen":
        return False
    if not sys.platform.startswith("linux"):
        return True
    return any(Path("/dev/dri").glob("renderD*"))


def prepare_qt_environment(env: dict[str, str] | os._Environ | None = None, *, debug: bool = False) -> None:
    """Environment for Qt WebEngine, set before it loads: the Qt backend, the sandbox as root, and a quiet
    Chromium (no log lines on the console; no GPU attempts where there is none)."""
    env = os.environ if env is None else env
    env.setdefault("PYWEBVIEW_GUI", "qt")
    env.setdefault("QT_API", "pyside6")
    flags = env.get("QTWEBENGINE_CHROMIUM_FLAGS", "").split()
    wanted = []
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        wanted.append("--no-sandbox")  # Qt WebEngine's sandbox refuses to run as root
    if not debug and not any(flag.startswith(("--log-level", "--enable-logging")) for flag in flags):
        wanted += ["--disable-logging", "--log-level=3"]  # fatal errors only
    if not has_gpu(env):
        wanted.append("--disable-gpu")
        # No GPU: Qt itself draws without OpenGL too. Otherwise Qt's share context loads Mesa's software GL
        # (llvmpipe: libLLVM and swrast_dri, ~45 MB of the app's memory) for nothing; see docs/performance.md,
        # "The window". A value set by the user wins.
        env.setdefault("QT_XCB_GL_INTEGRATION", "none")
        env.setdefault("QT_QUICK_BACKEND", "software")
    env["QTWEBENGINE_CHROMIUM_FLAGS"] = " ".join(flags + [flag for flag in wanted if flag not in flags])


def install_qt_message_handler(*, debug: bool = False) -> None:
    """Send Qt's messages to the log: known GPU/Vulkan noise and the page's console at DEBUG (the page's
    console at INFO with ``--debug-window``), anything else at its own level."""
    from qtpy.QtCore import QtMsgType, qInstallMessageHandler

    qt_log = logging.getLogger("atelier.qt")
    levels = {
        QtMsgType.QtDebugMsg: logging.DEBUG,
        QtMsgType.QtInfoMsg: logging.INFO,
        QtMsgType.QtWarningMsg: logging.WARNING,
        QtMsgType.QtCriticalMsg: logging.ERROR,
        QtMsgType.QtFatalMsg: logging.CRITICAL,
    }

    def handler(kind, context, message) -> None:
        category = getattr(context, "category", None) or "default"
        level = levels.get(kind, logging.WARNING)
        if category == "js":
            level = logging.INFO if debug else logging.DEBUG
        elif level <= logging.WARNING and _QT_NOISE.search(message or ""):
            level = logging.DEBUG
        qt_log.log(level, "%s: %s", category, message)

    qInstallMessageHandler(handler)


_page_colours: dict[str, str] = {}


def _paint_pages(background: str, theme: str) -> None:
    """Give every web page the theme's background before it first paints (Qt's default is white).

    pywebview creates the page inside its window class on the GUI thread; its page class's ``__init__`` is
    wrapped to set the colour. With the "system" theme the desktop's colour scheme decides, once Qt runs.
    """
    try:
        from qtpy.QtCore import Qt
        from qtpy.QtGui import QColor, QGuiApplication
        from webview.platforms import qt as qt_platform
    except ImportError:
        return
    _page_colours.update(background=background, theme=theme)
    page_class = getattr(getattr(qt_platform, "BrowserView", None), "WebPage", None)
    if page_class is None or getattr(page_class.__init__, "_atelier_themed", False):
        return
    original = page_class.__init__

    def __init__(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        color = _page_colours["background"]
        if _page_colours["theme"] == "system":
            with contextlib.suppress(AttributeError):
                if QGuiApplication.styleHints().colorScheme() == Qt.ColorScheme.Light:
                    color = BACKGROUNDS["light"]
        self.setBackgroundColor(QColor(color))

    __init__._atelier_themed = True  # type: ignore[attr-defined]
    page_class.__init__ = __init__


def preload(*, debug: bool = False) -> None:
    """Set Qt's environment and import pywebview's Qt backend, without touching the display.

    The app calls this while its servers start and the GUI probe runs, so that Qt's imports (about a quarter
    of a second) are not on the way to the first frame (docs/performance.md, "The window").
    """
    if not sys.platform.startswith("linux"):
        return
    prepare_qt_environment(debug=debug)
    import webview  # noqa: F401
    from webview.platforms import qt  # noqa: F401


def _colour_setter():
    """A QObject living on the GUI thread whose ``colour`` signal, emitted from any thread, repaints the pages'
    background there (queued across threads), or None without Qt."""
    try:
        from qtpy.QtCore import QObject, Signal, Slot
        from qtpy.QtGui import QColor
        from webview.platforms.qt import BrowserView
    except ImportError:
        return None

    class ColourSetter(QObject):
        colour = Signal(str)

        def __init__(self) -> None:
            super().__init__()
            self.colour.connect(self.apply)

        @Slot(str)
        def apply(self, colour: str) -> None:
            for view in list(BrowserView.instances.values()):
                view.webview.page().setBackgroundColor(QColor(colour))

    return ColourSetter()


class Window:
    """Owns the pywebview window; everything here except :meth:`run` is safe to call from any thread.

    With ``url=None`` the window opens at once on a blank page in the theme's background, and :meth:`run`'s
    ``url_source`` (called on another thread) gives the address to load once the servers are up.
    """

    def __init__(self, url: str | None, *, title: str = "Atelier", theme: str = "system"):
        self.url = url
        self.title = title
        self.theme = theme if theme in ("light", "dark", "system") else "system"
        self._window = None
        self._ready = threading.Event()
        self._shown_logged = False
        self._colours = None

    @property
    def background(self) -> str:
        """The first frame's colour: the theme's background, dark unless the theme is light."""
        return BACKGROUNDS["light" if self.theme == "light" else "dark"]

    def run(self, on_closed: Callable[[], None], *, debug: bool = False,
            url_source: Callable[[], str | None] | None = None) -> None:
        """Open the window and run the GUI loop on the calling (main) thread until it closes.

        ``url_source`` (when the window was made without a URL) runs on its own thread once the GUI loop has
        started; it returns the address to load, or None to close the window (the servers did not start).
        """
        linux = sys.platform.startswith("linux")
        if linux:
            prepare_qt_environment(debug=debug)
        import webview

        if linux:
            install_qt_message_handler(debug=debug)
            _paint_pages(self.background, self.theme)
        # text_select: pywebview would otherwise inject an inline <style> to forbid selecting text, which the
        # page's CSP refuses (and people copy model output).
        self._window = webview.create_window(
            self.title, self.url, width=1280, height=840, min_size=(880, 600), background_color=self.background,
            text_select=True,
        )
        self._window.events.closed += on_closed
        self._window.events.loaded += self._loaded
        self._window.events.shown += self._shown
        gui = "qt" if linux else None
        func = None
        if url_source is not None:
            if linux:
                self._colours = _colour_setter()

            def func() -> None:
                self._load_when_ready(url_source)

        webview.start(func=func, gui=gui, debug=debug, private_mode=True)

    def _load_when_ready(self, url_source: Callable[[], str | None]) -> None:
        try:
            url = url_source()
        except Exception:
            log.exception("the window's address could not be had")
            url = None
        if url is None:
            self.close()
            return
        self.url = url
        self._window.load_url(url)

    def set_theme(self, theme: str) -> None:
        """Use ``theme``'s background from now on (the window may have opened with a remembered one)."""
        if theme not in ("light", "dark", "system") or theme == self.theme:
            return
        self.theme = theme
        _page_colours.update(background=self.background, theme=theme)
        if self._colours is not None:
            self._colours.colour.emit(self.background)

    def _shown(self) -> None:
        if not self._shown_logged:
            self._shown_logged = True
            log.info("window: shown")  # bench/window.py times the first frame by this line

    def _loaded(self) -> None:
        if self.url is None or self._window.get_current_url() is None:
            return  # the blank page the window opens on while the servers start
        if not self._ready.is_set():
            log.info("window: first page loaded")  # bench/window.py times the window by this line
        self._ready.set()

    def page_background(self) -> str | None:
        """The web page's background colour as Qt has it (used by the window test)."""
        if self._window is None or not self._ready.wait(30):
            return None
        try:
            from webview.platforms.qt import BrowserView

            return BrowserView.instances[self._window.uid].webview.page().backgroundColor().name()
        except (ImportError, KeyError, AttributeError):
            return None

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
