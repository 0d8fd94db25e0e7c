"""What the window needs from the system on Linux: a display that answers, and the shared libraries Qt loads.

Qt aborts the whole process, with no Python exception and only a vague message ("could not load the Qt
platform plugin xcb"), when a library of its xcb platform plugin is missing. ``atelier doctor`` and the
start-up message name the missing files and the Debian/Ubuntu packages that provide them instead, found by
running ``ldd`` on the plugin and the web engine.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Libraries",
    "debian_package",
    "display_reachable",
    "missing_libraries",
    "qt_binaries",
    "run_ldd",
]

#: ``ldd`` runner: path → its output (stdout and stderr), or None when ``ldd`` cannot be run.
LddRunner = Callable[[Path], str | None]

# Libraries whose Debian package name does not follow from the file name (see :func:`debian_package`).
_PACKAGE_OVERRIDES = {
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libgobject-2.0.so.0": "libglib2.0-0",
    "libgio-2.0.so.0": "libglib2.0-0",
    "libGLdispatch.so.0": "libglvnd0",
    "libz.so.1": "zlib1g",
    "libnssutil3.so": "libnss3",
    "libsmime3.so": "libnss3",
    "libplc4.so": "libnspr4",
    "libplds4.so": "libnspr4",
    "libX11.so.6": "libx11-6",
}

_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.MULTILINE)
_DLOPEN_ERROR = re.compile(r"([\w.+-]+\.so[\w.]*): cannot open shared object file")


def debian_package(soname: str) -> str:
    """The Debian/Ubuntu package that ships ``soname``, by the library packaging rules.

    ``libxcb-icccm.so.4`` → ``libxcb-icccm4``, ``libxkbcommon-x11.so.0`` → ``libxkbcommon-x11-0`` (a name
    ending in a digit takes a hyphen), ``libGL.so.1`` → ``libgl1``; a few exceptions come from a table.
    """
    if soname in _PACKAGE_OVERRIDES:
        return _PACKAGE_OVERRIDES[soname]
    stem, _, version = soname.partition(".so")
    version = version.lstrip(".")
    name = stem.lower()
    if not version:
        return name
    return f"{name}-{version}" if name[-1:].isdigit() else f"{name}{version}"


def run_ldd(path: Path) -> str | None:
    """``ldd path`` (what the dynamic loader would resolve), or None when ``ldd`` is not available."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return None
    try:
        done = subprocess.run(
            [ldd, os.fspath(path)], capture_output=True, text=True, timeout=20, env={**os.environ, "LC_ALL": "C"}
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout + done.stderr


def _dlopen_missing(path: Path) -> list[str] | None:
    """Without ``ldd``: load the library and read the first missing one from the loader's error."""
    import ctypes

    try:
        ctypes.CDLL(os.fspath(path))
    except OSError as exc:
        found = _DLOPEN_ERROR.search(str(exc))
        return [found.group(1)] if found else None
    return []


@dataclass
class Libraries:
    """The outcome of checking the Qt binaries: which files are missing and which packages provide them."""

    checked: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # sonames, in the order found
    bundled_missing: list[str] = field(default_factory=list)  # Qt's own libraries: a broken PySide6 install
    unknown: list[str] = field(default_factory=list)  # binaries ldd could not read

    @property
    def packages(self) -> list[str]:
        return list(dict.fromkeys(debian_package(name) for name in self.missing))

    def describe(self) -> str:
        """One sentence for a person: the files, then what to install."""
        parts = []
        if self.missing:
            parts.append(
                f"missing {', '.join(self.missing)}; install: sudo apt install {' '.join(self.packages)}"
            )
        if self.bundled_missing:
            parts.append(
                f"Qt's own {', '.join(self.bundled_missing)} missing; reinstall the 'gui' extra "
                "(pip install --force-reinstall 'atelier[gui]')"
            )
        return "; ".join(parts)


def qt_binaries() -> list[Path]:
    """The PySide6 files whose dependencies decide whether a window can open (xcb plugin, web engine)."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return []
    qt = Path(next(iter(spec.submodule_search_locations))) / "Qt"
    candidates = [
        qt / "plugins" / "platforms" / "libqxcb.so",
        qt / "lib" / "libQt6WebEngineCore.so.6",
        qt / "libexec" / "QtWebEngineProcess",
    ]
    return [path for path in candidates if path.exists()]


def missing_libraries(binaries: Iterable[Path], ldd: LddRunner = run_ldd) -> Libraries:
    """Every shared library the dynamic loader cannot find for ``binaries``."""
    result = Libraries()
    for path in binaries:
        result.checked.append(str(path))
        output = ldd(path)
        names = _NOT_FOUND.findall(output) if output is not None else _dlopen_missing(path)
        if names is None:
            result.unknown.append(str(path))
            continue
        for name in names:
            bucket = result.bundled_missing if name.startswith(("libQt6", "libicu")) else result.missing
            if name not in bucket:
                bucket.append(name)
    return result


def display_reachable(env: Mapping[str, str] | None = None, timeout: float = 1.0) -> bool:
    """Whether a graphical session is reachable: a Wayland display is set, or ``DISPLAY``'s X server answers.

    Only a connection is made (no X protocol), so an X server that refuses this user still counts as there.
    """
    env = os.environ if env is None else env
    if not sys.platform.startswith("linux"):
        return True
    if env.get("WAYLAND_DISPLAY"):
        return True
    display = env.get("DISPLAY", "")
    return bool(display) and x_server_answers(display, timeout)


def x_server_answers(display: str, timeout: float = 1.0) -> bool:
    """Whether something accepts connections where ``display`` (``:0``, ``host:10.0``, ``unix:1``) points."""
    host, sep, rest = display.rpartition(":")
    if not sep:
        return False
    number = rest.split(".", 1)[0]
    if not number.isdigit():
        return False
    if host in ("", "unix") or host.startswith("/"):
        path = f"/tmp/.X11-unix/X{number}"  # noqa: S108 - where X servers put their sockets
        # Linux X servers listen on an abstract socket too (it works where /tmp is private).
        for address in ("\0" + path, path):
            with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(address)
                return True
        return False
    try:
        with socket.create_connection((host.strip("[]"), 6000 + int(number)), timeout=timeout):
            return True
    except OSError:
        return False
