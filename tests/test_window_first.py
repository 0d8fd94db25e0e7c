"""The window opens while the servers start (docs/performance.md, "The window"), with fakes for Qt.

The real window is covered by tests/test_window.py; here the order of things and the failure paths are checked
without a display: the window exists before the servers are up, it loads the UI only once they are, and it is
closed when they cannot start.
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from backend.core.settings import Settings
from desktop import app as app_module
from desktop import window as window_module


class FakeServer:
    def __init__(self, url: str) -> None:
        self.url = url
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True


class FakeWindow:
    """Stands in for desktop.window.Window: records what the app asked, and when."""

    made: list[FakeWindow] = []

    def __init__(self, url, *, theme: str = "system") -> None:
        self.url, self.theme, self.first_theme = url, theme, theme
        self.events: list[str] = []
        self.loaded_url = None
        FakeWindow.made.append(self)

    def run(self, on_closed, *, debug: bool = False, url_source=None) -> None:
        self.events.append("run")
        servers_started.set()  # let the servers start only once the window runs
        self.loaded_url = url_source()
        self.events.append(f"url: {self.loaded_url}")
        on_closed()

    def set_theme(self, theme: str) -> None:
        self.theme = theme
        self.events.append(f"theme: {theme}")

    def close(self) -> None:
        self.events.append("close")


servers_started = threading.Event()


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch, data_dir: Path):
    FakeWindow.made.clear()
    servers_started.clear()
    preloaded = []
    monkeypatch.setattr(window_module, "Window", FakeWindow)
    monkeypatch.setattr(window_module, "preload", lambda debug=False: preloaded.append(debug))
    monkeypatch.setattr(window_module, "gui_probe_result", lambda probe: None)
    application = app_module.App(Settings.load(), window=True)
    application._token = "t0ken"
    monkeypatch.setattr(application, "_read_theme", lambda: "light")
    application.preloaded = preloaded
    return application


def test_the_window_runs_before_the_servers_are_up_and_loads_the_ui_after(app, data_dir: Path) -> None:
    order = []

    def start_servers(token: str, on_imported=None) -> bool:
        order.append("imported")
        on_imported()  # everything the servers import is imported: Qt may load now
        assert servers_started.wait(10), "the window never ran while the servers waited"
        order.append("servers")
        app.api, app.ui = FakeServer("http://127.0.0.1:1"), FakeServer("http://127.0.0.1:2")
        return True

    app._start_servers = start_servers
    assert app._run_window_first("t0ken", probe=SimpleNamespace()) == 0
    [window] = FakeWindow.made
    assert app.preloaded == [False]
    assert window.url is None and window.first_theme == "system"  # no hint yet: dark unless the desktop is light
    assert window.events[:3] == ["run", "theme: light", "url: http://127.0.0.1:2/login?token=t0ken"]
    assert order == ["imported", "servers"]
    assert not (data_dir / "runtime.json").exists()  # written while serving, removed at shutdown
    assert app.ui.stopped and app.api.stopped  # shut down after the window closed
    # The theme read from the settings is what the next launch's window opens with.
    assert (data_dir / app_module.THEME_HINT_FILE_NAME).read_text() == "light"
    assert app._theme_hint() == "light"


def test_the_window_is_closed_when_the_servers_cannot_start(app, capsys) -> None:
    def start_servers(token: str, on_imported=None) -> bool:
        on_imported()
        servers_started.wait(10)
        raise app_module._StartupFailed("the database is damaged")

    app._start_servers = start_servers
    assert app._run_window_first("t0ken", probe=SimpleNamespace()) == 1
    [window] = FakeWindow.made
    assert window.events[:2] == ["run", "url: None"]  # url_source said None: the window closes itself
    assert "the database is damaged" in capsys.readouterr().err


def test_no_window_when_the_probe_fails_serves_headless(app, monkeypatch, capsys) -> None:
    monkeypatch.setattr(window_module, "gui_probe_result", lambda probe: "the GUI toolkit could not start (x)")
    monkeypatch.setattr(app, "_open_browser", lambda url: False)

    def start_servers(token: str, on_imported=None) -> bool:
        app.api, app.ui = FakeServer("http://127.0.0.1:1"), FakeServer("http://127.0.0.1:2")
        app.stop_event.set()  # as if the user pressed Ctrl-C at once
        return True

    app._start_servers = start_servers
    assert app._run_window_first("t0ken", probe=SimpleNamespace()) == 0
    assert FakeWindow.made == []
    out = capsys.readouterr().out
    assert "cannot open its window: the GUI toolkit could not start (x)" in out and "/login?token=t0ken" in out


def test_an_unknown_theme_hint_is_ignored(app, data_dir: Path) -> None:
    (data_dir / app_module.THEME_HINT_FILE_NAME).write_text("purple")
    assert app._theme_hint() == "system"


def test_a_signal_during_start_up_closes_the_new_window(app) -> None:
    def start_servers(token: str, on_imported=None) -> bool:
        on_imported()
        servers_started.wait(10)
        app.api, app.ui = FakeServer("http://127.0.0.1:1"), FakeServer("http://127.0.0.1:2")
        app.stop_event.set()  # SIGTERM while the servers were starting, before the window could be closed
        return True

    app._start_servers = start_servers
    assert app._run_window_first("t0ken", probe=SimpleNamespace()) == 0
    [window] = FakeWindow.made
    assert "url: None" in window.events  # the UI is not loaded: the window closes (the stop thread closes it too)
    assert app.ui.stopped and app.api.stopped
