"""Opening the UI in the system browser without putting the launch token on a command line: the browser gets a
file only this user can read, which sends it on to the login URL (docs/security.md)."""

from __future__ import annotations

import contextlib
import html
import logging
import os
import threading
import webbrowser
from pathlib import Path

from .toolkit import display_reachable

log = logging.getLogger("desktop.app")

LOGIN_FILE_NAME = "open-atelier.html"


def open_browser(login_url: str, login_file: Path, *, no_browser: bool) -> bool:
    """Open the UI in the system browser, if there is one to open here. True when one was started.

    The browser never gets the login URL itself: a command line is readable by every local user (``ps``),
    and that URL carries the launch token. It gets the path of a file only this user can read, which
    sends it on to the login URL.
    """
    if no_browser:
        return False
    if not display_reachable():
        # DISPLAY names no X server (and there is no Wayland session): a browser started now would fail, or
        # a terminal browser would take over the console. The address is printed instead.
        log.info("no reachable display: not starting a browser")
        return False
    try:
        browser = webbrowser.get()
    except webbrowser.Error:
        return False
    try:
        target = write_login_file(login_file, login_url).as_uri()
    except OSError as exc:
        log.warning("cannot write the browser login file: %s", exc.strerror or exc)
        return False
    # Some browser commands only return when the browser exits: do not hold start-up or shutdown on them.
    threading.Thread(target=_open_quietly, args=(browser, target), name="atelier-browser", daemon=True).start()
    return True


def write_login_file(path: Path, login_url: str) -> Path:
    """Write an HTML page, readable by this user only (0600), that sends the browser to ``login_url``."""
    url = html.escape(login_url, quote=True)
    page = (
        "<!doctype html>\n<html><head><meta charset=\"utf-8\">\n"
        '<meta name="referrer" content="no-referrer">\n'
        f'<meta http-equiv="refresh" content="0;url={url}">\n'
        "<title>Opening Atelier…</title></head>\n"
        f'<body><p><a href="{url}">Open Atelier</a></p></body></html>\n'
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)
        os.write(fd, page.encode("utf-8"))
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path


def remove_login_file(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def _open_quietly(browser: webbrowser.BaseBrowser, target: str) -> None:
    try:
        browser.open(target)
    except Exception as exc:  # noqa: BLE001 - a browser that fails to start must not take the app down
        log.warning("the system browser could not be started: %s", exc)
