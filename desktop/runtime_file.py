"""``runtime.json``: how a running Atelier is found (the runtime contract, docs/runtime.md).

While the app runs, ``<data dir>/runtime.json`` (mode 0600) holds ``{"pid", "api_url", "ui_url", "token",
"version", "started_at"}``; it is removed on clean exit. The desktop shell writes it; the shell's hand-off and the
diagnostics read it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any


def write_runtime(path: Path, info: dict[str, Any]) -> None:
    """Write ``runtime.json`` atomically, readable by the user only."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)
        os.write(fd, json.dumps(info, indent=2).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_runtime(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def remove_runtime(path: Path, pid: int) -> None:
    """Remove ``runtime.json`` if it is ours (a newer instance may have replaced it)."""
    info = read_runtime(path)
    if info is not None and info.get("pid") != pid:
        return
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if sys.platform == "win32":
        import ctypes

        process_query_limited_information = 0x1000
        still_active = 259
        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        handle = kernel32.OpenProcess(process_query_limited_information, False, pid)
        if not handle:
            return False
        try:
            code = ctypes.c_ulong()
            kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
            return code.value == still_active
        finally:
            kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
