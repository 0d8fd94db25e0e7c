"""``atelier doctor``: the installation, network, policy and key checks on the command line.

The checks themselves live in ``backend/diagnostics/`` (the app serves them at ``/api/v1/diagnostics`` too);
the shell adds what only it knows: whether an Atelier is running (``runtime.json``) and whether the window
can open here (the GUI toolkit, its system libraries, the display). Exit status 0 when nothing fails, 1
otherwise, so IT can script it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from backend.diagnostics.checks import diagnose
from backend.diagnostics.checks import run_doctor as _run_doctor
from backend.diagnostics.report import FAIL, OK, WARN, Check, ShellCheck

from .runtime_file import pid_alive, read_runtime
from .toolkit import LddRunner, display_reachable, missing_libraries, qt_binaries, run_ldd

__all__ = ["diagnose", "instance_check", "main", "run_doctor", "shell_checks", "window_check"]


def shell_checks(
    settings: Any, env: Mapping[str, str] | None = None, ldd: LddRunner = run_ldd
) -> dict[str, tuple[str, ShellCheck]]:
    """The shell's checks, as :func:`backend.diagnostics.checks.diagnose` takes them."""
    env = os.environ if env is None else env
    return {
        "window": ("Window", lambda: window_check(env, ldd=ldd)),
        "instance": ("Running instance", lambda: instance_check(settings)),
    }


def run_doctor(
    settings: Any,
    *,
    out: TextIO | None = None,
    json_output: bool = False,
    env: Mapping[str, str] | None = None,
    timeout: float = 5.0,
    ldd: LddRunner = run_ldd,
) -> int:
    """Run every check, the shell's included, print the report and return the exit status (0 or 1)."""
    checks = shell_checks(settings, os.environ if env is None else env, ldd)
    return _run_doctor(settings, out=out, json_output=json_output, env=env, timeout=timeout, shell_checks=checks)


def instance_check(settings: Any) -> Check:
    """Whether an Atelier is running on this data directory, read from ``runtime.json``."""
    runtime_path = Path(settings.runtime_path)
    info = read_runtime(runtime_path)
    if info is None:
        db_path = Path(settings.db_path)
        wal = db_path.with_name(db_path.name + ".wal")
        if wal.exists():
            return Check(
                "",
                "",
                WARN,
                "not running, but the last session did not close cleanly",
                "Nothing is lost: the next start replays the database journal.",
                {"running": False, "wal": str(wal)},
            )
        return Check("", "", OK, "not running", details={"running": False})
    pid = info.get("pid")
    # Only non-secret fields: runtime.json also holds the launch token.
    details = {
        "running": False,
        "pid": pid,
        "version": info.get("version"),
        "started_at": info.get("started_at"),
    }
    if isinstance(pid, int) and pid_alive(pid):
        details["running"] = True
        details["ui_url"] = info.get("ui_url")
        return Check(
            "",
            "",
            OK,
            f"running (pid {pid}, version {info.get('version')}, since {info.get('started_at')})",
            details=details,
        )
    return Check(
        "",
        "",
        WARN,
        f"stale {runtime_path.name} from pid {pid} (the app did not exit cleanly)",
        "Nothing to do: the next start replaces it.",
        details,
    )


def window_check(
    env: Mapping[str, str] | None = None, *, ldd: LddRunner = run_ldd, binaries: list[Path] | None = None
) -> Check:
    """Whether the window can open here: the toolkit, the shared libraries Qt needs, and the display.

    ``binaries`` are the Qt files to check (default: PySide6's xcb platform plugin and web engine).
    """
    env = os.environ if env is None else env
    if importlib.util.find_spec("webview") is None:
        return Check(
            "", "", WARN, "pywebview is not installed: Atelier serves headless and prints its address",
            "Install the app with its window: pip install 'atelier[gui]'.", {"toolkit": None},
        )
    if sys.platform == "win32":
        return Check("", "", OK, "Edge WebView2 (pywebview)", details={"toolkit": "edgechromium"})
    if sys.platform == "darwin":
        return Check("", "", OK, "WKWebView (pywebview)", details={"toolkit": "cocoa"})

    display = env.get("WAYLAND_DISPLAY") or env.get("DISPLAY") or None
    reachable = display_reachable(env)
    details: dict[str, Any] = {"display": display, "display_reachable": reachable}
    if importlib.util.find_spec("PySide6") is None:
        if importlib.util.find_spec("gi") is not None:
            details["toolkit"] = "gtk"
            return Check("", "", OK, "GTK (WebKit2GTK)" + _display_note(env, display, reachable), details=details)
        details["toolkit"] = None
        return Check(
            "", "", WARN, "no GUI toolkit is installed: Atelier serves headless and prints its address",
            "Install the 'gui' extra: pip install 'atelier[gui]'.", details,
        )

    details["toolkit"] = "qt"
    details["pyside6"] = _pyside_version()
    libraries = missing_libraries(qt_binaries() if binaries is None else binaries, ldd)
    details.update(
        checked=libraries.checked,
        missing_libraries=libraries.missing + libraries.bundled_missing,
        packages=libraries.packages,
    )
    name = f"Qt (PySide6 {details['pyside6']})"
    if libraries.missing or libraries.bundled_missing:
        # With a display, the user expects a window and will not get one; without, headless is expected.
        status = FAIL if reachable else WARN
        hint = (
            f"sudo apt install {' '.join(libraries.packages)}"
            if libraries.missing
            else "pip install --force-reinstall 'atelier[gui]'"
        )
        return Check(
            "", "", status, f"{name} cannot start its window: {libraries.describe()}",
            f"Install what is missing ({hint}), then start Atelier again.", details,
        )
    message = f"{name}, libraries complete" + _display_note(env, display, reachable)
    if display and not reachable:
        return Check(
            "", "", WARN, message,
            "Start Atelier from the desktop session, or unset DISPLAY to serve headless on purpose.", details,
        )
    return Check("", "", OK, message, details=details)


def _display_note(env: Mapping[str, str], display: str | None, reachable: bool) -> str:
    if env.get("ATELIER_NO_WINDOW", "").lower() in ("1", "true", "yes", "on"):
        return "; ATELIER_NO_WINDOW is set, so the UI opens in the system browser"
    if display is None:
        return "; no display (DISPLAY and WAYLAND_DISPLAY are not set): Atelier serves headless"
    if not reachable:
        return f", but no X server answers at DISPLAY={display}: Atelier serves headless"
    return f" on {display}"


def _pyside_version() -> str | None:
    for distribution in ("PySide6-Essentials", "PySide6"):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def main(argv: list[str] | None = None) -> int:
    """``python -m desktop.doctor [--json]`` (the app's CLI offers the same as ``atelier doctor``)."""
    import argparse

    from backend.core.settings import Settings

    parser = argparse.ArgumentParser(prog="atelier doctor", description="Check the installation, network and key.")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--data-dir", type=Path, help="data directory (default: ATELIER_DATA_DIR or the platform one)")
    args = parser.parse_args(argv)
    try:
        settings = Settings.load(data_dir=args.data_dir)
    except (ValueError, OSError) as exc:
        print(f"atelier doctor: {exc}", file=sys.stderr)
        return 2
    return run_doctor(settings, json_output=args.json)


if __name__ == "__main__":
    sys.exit(main())
