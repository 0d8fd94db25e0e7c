"""Start-up and shut-down of the whole app in one process."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import secrets
import signal
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from backend import __version__
from backend.core.settings import Settings

from . import instance
from .browser import LOGIN_FILE_NAME, open_browser, remove_login_file
from .logs import REDACTOR, LogsUnwritable, describe_unwritable, setup_logging

log = logging.getLogger("atelier")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="atelier", description="Atelier: a desktop studio for text, images and video through OpenRouter."
    )
    parser.add_argument("--version", action="version", version=f"Atelier {__version__}")
    parser.add_argument("--no-window", action="store_true", help="serve headless and print the UI login URL")
    _add_common_options(parser, default=None)
    parser.add_argument("--debug-window", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--gui-probe", action="store_true", help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command")
    doctor = sub.add_parser("doctor", help="check the installation, network and key; exit 1 when broken")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    # Accepted after the subcommand too (``atelier doctor --data-dir X``); SUPPRESS keeps a value given
    # before the subcommand from being reset.
    _add_common_options(doctor, default=argparse.SUPPRESS)
    backup = sub.add_parser("backup", help="back up the library now (through the running Atelier if there is one)")
    backup.add_argument("--json", action="store_true", help="machine-readable output")
    _add_common_options(backup, default=argparse.SUPPRESS)
    restore = sub.add_parser("restore", help="restore a backup (an id from backups/ or a backup folder)")
    restore.add_argument("backup", metavar="DIR-OR-ID", help="a backup id (see backups/) or a backup folder")
    restore.add_argument("--json", action="store_true", help="machine-readable output")
    _add_common_options(restore, default=argparse.SUPPRESS)
    return parser


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _log_level(value: str) -> str:
    level = value.strip().upper()
    if level not in _LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"invalid choice: {value!r} (choose from {', '.join(_LOG_LEVELS)})")
    return level


def _add_common_options(parser: argparse.ArgumentParser, *, default: object) -> None:
    parser.add_argument(
        "--data-dir", type=Path, default=default,
        help="data directory (default: ATELIER_DATA_DIR or the platform one)",
    )
    parser.add_argument(
        "--log-level", type=_log_level, default=default, metavar="LEVEL",
        help="log level: debug, info, warning or error (any case)",
    )


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.gui_probe:
        from .window import gui_probe_main

        return gui_probe_main()
    try:
        settings = Settings.load(data_dir=args.data_dir, log_level=args.log_level)
    except (ValueError, OSError) as exc:
        print(f"atelier: {exc}", file=sys.stderr)
        return 2
    if args.command == "doctor":
        from .doctor import run_doctor

        return run_doctor(settings, json_output=args.json)
    if args.command in ("backup", "restore"):
        from .backup_cli import run_backup, run_restore

        if args.command == "backup":
            return run_backup(settings, json_output=args.json)
        return run_restore(settings, args.backup, json_output=args.json)
    return App(settings, window=not args.no_window, debug_window=args.debug_window).run()


class App:
    """One running Atelier: both servers, runtime.json, the window or the headless wait."""

    def __init__(self, settings: Settings, *, window: bool = True, debug_window: bool = False):
        self.settings = settings
        self.login_file = Path(settings.data_dir) / LOGIN_FILE_NAME  # see write_login_file
        self.want_window = window
        # Developer tools only from a source checkout: a packaged (frozen) build never opens them.
        self.debug_window = debug_window and not getattr(sys, "frozen", False)
        self.stop_event = threading.Event()
        self.window = None
        self._token = ""
        self.api = None
        self.ui = None

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def run(self) -> int:
        settings = self.settings
        try:
            settings.ensure_dirs()
        except OSError as exc:
            print(f"atelier: cannot create the data directory {settings.data_dir}: {exc.strerror}", file=sys.stderr)
            return 2
        try:
            setup_logging(settings.logs_dir, settings.log_level)
        except LogsUnwritable as exc:
            print(f"atelier: {exc}", file=sys.stderr)
            return 2

        running = instance.find_live_instance(settings.runtime_path)
        if running:
            return self._hand_off(running)

        reason: str | None = None
        probe = None
        if self.want_window:
            from .window import gui_unavailable_reason, start_gui_probe

            reason = "ATELIER_NO_WINDOW is set" if settings.no_window else gui_unavailable_reason()
            if reason is None:
                probe = start_gui_probe()  # runs while the servers start

        token = self._token = secrets.token_urlsafe(32)  # 256 bits, new every launch
        REDACTOR.add(token)
        self._block_signals()
        if probe is not None:
            return self._run_window_first(token, probe)
        code = self._start_and_publish(token)
        if code is not None:
            return code
        login_url = self._login_url()
        try:
            if self.want_window and reason is None:
                try:
                    self._run_window(login_url)
                except Exception as exc:  # a GUI backend that fails to load: keep serving headless
                    self._serve_headless(login_url, window_error=exc)
            else:
                self._serve_in_browser(login_url, reason, no_window=settings.no_window)
        finally:
            self._shutdown()
        return 0

    def _start_and_publish(self, token: str, on_imported: Callable[[], None] | None = None) -> int | None:
        """Start both servers and write runtime.json. None when serving, else the exit status (after handing
        off to a running instance, or after saying why start-up failed)."""
        try:
            started = self._start_servers(token, on_imported)
        except _AlreadyRunning as exc:
            return self._hand_off(exc.info)
        except _StartupFailed as exc:
            print(f"atelier: {exc}", file=sys.stderr)
            log.error("start-up failed: %s", exc)
            return 1
        if not started:
            return 1
        info = {
            "pid": os.getpid(),
            "api_url": self.api.url,
            "ui_url": self.ui.url,
            "token": token,
            "version": __version__,
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        try:
            instance.write_runtime(self.settings.runtime_path, info)
        except OSError as exc:  # a full or read-only disk: say so instead of a traceback
            print(f"atelier: {describe_unwritable(self.settings.data_dir, exc)}", file=sys.stderr)
            self._shutdown()
            return 1
        log.info("Atelier %s serving the UI on %s (API on %s)", __version__, self.ui.url, self.api.url)
        return None

    def _login_url(self) -> str:
        return f"{self.ui.url}/login?token={self._token}"

    def _serve_in_browser(self, login_url: str, reason: str | None, *, no_window: bool = False) -> None:
        """No window (not wanted, not possible, or ATELIER_NO_WINDOW): say why, open the browser if a window was
        wanted, and serve until asked to stop."""
        if self.want_window:
            if no_window:
                print("ATELIER_NO_WINDOW is set: Atelier opens in your browser.", flush=True)
            else:
                print(f"Atelier cannot open its window: {reason}. Serving headless instead.", flush=True)
            self._open_browser(login_url)
        print(f"Atelier is running. Open this address in your browser:\n{login_url}", flush=True)
        self.stop_event.wait()

    def _serve_headless(self, login_url: str, *, window_error: Exception) -> None:
        log.error("the window could not be opened: %s", window_error)
        print(f"Atelier cannot open its window ({window_error}). Serving headless instead.\n"
              f"Open this address in your browser:\n{login_url}", flush=True)
        self._open_browser(login_url)
        self.stop_event.wait()

    def _run_window_first(self, token: str, probe) -> int:
        """Linux with a display: the servers start on a thread while the GUI probe runs, and the window opens on
        the theme's background as soon as both allow, loading the UI when the servers are up
        (docs/performance.md, "The window").

        Qt is imported only after everything the servers import: once PySide6 is loaded, its import hook reads
        the source of every module that imports something, which slows those imports down and, racing with
        another thread's imports, broke pydantic's lazy attributes (an ImportError at start-up).
        """
        from .window import Window, gui_probe_result, preload

        done = threading.Event()
        imported = threading.Event()
        outcome: list[int | None] = []

        def start() -> None:
            try:
                outcome.append(self._start_and_publish(token, imported.set))
            except BaseException:
                log.exception("start-up failed")
                outcome.append(1)
            finally:
                imported.set()
                done.set()

        threading.Thread(target=start, name="atelier-start", daemon=True).start()
        window_error: Exception | None = None
        imported.wait()
        try:
            preload(debug=self.debug_window)
        except Exception as exc:  # pywebview or Qt cannot be imported: serve headless
            window_error = exc
        reason = gui_probe_result(probe)
        if reason is None and window_error is None:

            def url_when_started() -> str | None:
                done.wait()
                if outcome[0] is not None or self.stop_event.is_set():
                    return None  # start-up failed, another instance took over, or a signal came: close
                self.window.set_theme(self._theme())
                return self._login_url()

            self.window = Window(None, theme=self._theme_hint())
            threading.Thread(target=self._close_window_on_stop, name="atelier-stop", daemon=True).start()
            try:
                self.window.run(self.stop_event.set, debug=self.debug_window, url_source=url_when_started)
            except Exception as exc:  # a GUI backend that fails to load: keep serving headless
                window_error = exc
        done.wait()
        if outcome[0] is not None:
            return outcome[0]
        login_url = self._login_url()
        try:
            if window_error is not None:
                self._serve_headless(login_url, window_error=window_error)
            elif reason is not None:
                self._serve_in_browser(login_url, reason)
        finally:
            self._shutdown()
        return 0

    def _hand_off(self, info: dict) -> int:
        if instance.ask_to_show(info):
            print("Atelier is already running; its window was brought to the front.")
        else:
            print(f"Atelier is already running. Open it here:\n{info['ui_url']}/login?token={info['token']}")
        return 0

    def _start_servers(self, token: str, on_imported: Callable[[], None] | None = None) -> bool:
        """Open the library and start both servers. ``on_imported`` is called once everything they import is
        imported and before they start (the window may import Qt from then on: see _run_window_first)."""
        from backend.app import Shell, create_app
        from backend.db.store import StoreOpenError
        from frontend import create_app as create_ui

        from .servers import ApiServer, UiServer

        shell = Shell(show_window=self._show_window)
        try:
            api_app = create_app(self.settings, token=token, shell=shell, policy=_load_policy(self.settings))
        except StoreOpenError as exc:
            if exc.reason == "locked":
                # Another instance is starting right now and holds the database: hand off to it.
                info = instance.wait_for_instance(self.settings.runtime_path, 15.0)
                if info:
                    raise _AlreadyRunning(info) from None
            raise _StartupFailed(str(exc)) from None
        except _PolicyInvalid as exc:
            raise _StartupFailed(str(exc)) from None
        self.api = ApiServer(api_app, log_level="warning")
        self.ui = UiServer(None)
        ui_app = create_ui(api_url=self.api.url, token=token, port_getter=lambda: self.ui.port)
        self.ui.server.app = ui_app
        self.api.server.config.load()  # uvicorn's own imports (loop, protocols, lifespan), done here
        if on_imported is not None:
            on_imported()
        self.api.start()
        self.ui.start()
        return True

    def _run_window(self, login_url: str) -> None:
        from .window import Window

        self.window = Window(login_url, theme=self._theme())

        def closed() -> None:
            self.stop_event.set()

        threading.Thread(target=self._close_window_on_stop, name="atelier-stop", daemon=True).start()
        self.window.run(closed, debug=self.debug_window)

    def _theme_hint(self) -> str:
        """The theme the window opens with before the servers are up: the one the last launch saw."""
        with contextlib.suppress(OSError, UnicodeDecodeError):
            theme = (Path(self.settings.data_dir) / THEME_HINT_FILE_NAME).read_text("utf-8").strip()
            if theme in ("light", "dark", "system"):
                return theme
        return "system"

    def _theme(self) -> str:
        """The user's colour theme (light, dark or system), so the window's first frame matches the page."""
        theme = self._read_theme()
        if theme != self._theme_hint():
            with contextlib.suppress(OSError):
                (Path(self.settings.data_dir) / THEME_HINT_FILE_NAME).write_text(theme, "utf-8")
        return theme

    def _read_theme(self) -> str:
        import httpx

        try:
            answer = httpx.get(f"{self.api.url}/api/v1/settings", headers={"Authorization": f"Bearer {self._token}"},
                               timeout=2.0)
            theme = answer.json().get("values", {}).get("theme") if answer.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            theme = None
        return theme if theme in ("light", "dark", "system") else "system"

    def _close_window_on_stop(self) -> None:
        self.stop_event.wait()
        if self.window is not None:
            self.window.close()

    def _show_window(self) -> bool:
        return self.window.show() if self.window is not None else False

    def _open_browser(self, login_url: str) -> bool:
        """Open the UI in the system browser, if there is one to open here (``desktop/browser.py``)."""
        return open_browser(login_url, self.login_file, no_browser=self.settings.no_browser)

    def _shutdown(self) -> None:
        log.info("shutting down")
        if self.ui is not None:
            self.ui.stop()
        if self.api is not None:
            self.api.stop()  # the app's lifespan checkpoints and closes DuckDB
        instance.remove_runtime(self.settings.runtime_path, os.getpid())
        remove_login_file(self.login_file)
        log.info("stopped cleanly")

    # -- signals -----------------------------------------------------------------------------------------------
    def _block_signals(self) -> None:
        """Route SIGINT/SIGTERM to a watcher thread.

        The GUI loop owns the main thread and may not give Python a chance to run a handler, so on POSIX the
        signals are blocked everywhere and one thread waits for them with ``sigwait``.
        """
        wanted = {signal.SIGINT, signal.SIGTERM}
        if hasattr(signal, "pthread_sigmask") and hasattr(signal, "sigwait"):
            signal.pthread_sigmask(signal.SIG_BLOCK, wanted)

            def watch() -> None:
                signum = signal.sigwait(wanted)
                log.info("received %s", signal.Signals(signum).name)
                self.stop_event.set()

            threading.Thread(target=watch, name="atelier-signals", daemon=True).start()
        else:
            for signum in wanted:
                signal.signal(signum, lambda *_: self.stop_event.set())


#: The colour theme the last launch read from the settings; the next window opens with its background.
THEME_HINT_FILE_NAME = "window-theme"


class _AlreadyRunning(Exception):
    def __init__(self, info: dict):
        super().__init__("already running")
        self.info = info


class _StartupFailed(Exception):
    pass


class _PolicyInvalid(Exception):
    pass


def _load_policy(settings: Settings):
    """The machine policy in force, or None. An invalid policy file stops start-up with a clear message."""
    try:
        from backend.core.policy import PolicyError, load_policy
    except ImportError:
        return None
    try:
        return load_policy(settings.policy_file)
    except PolicyError as exc:
        raise _PolicyInvalid(str(exc)) from None
