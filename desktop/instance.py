"""``runtime.json`` and the single-instance hand-off.

While the app runs, ``<data dir>/runtime.json`` (mode 0600) holds the pid, both URLs and the launch token. A second
launch that finds a live instance asks it (an authenticated API call) to show its window, then exits 0 instead of
hitting DuckDB's file lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx


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


def find_live_instance(path: Path) -> dict[str, Any] | None:
    """The running instance described by ``runtime.json``, or None when there is none (or it is stale)."""
    info = read_runtime(path)
    if not info or not isinstance(info.get("pid"), int) or not pid_alive(info["pid"]):
        return None
    try:
        r = httpx.get(f"{info['api_url']}/api/v1/health", timeout=2.0)
    except (httpx.HTTPError, KeyError, TypeError):
        return None
    return info if r.status_code == 200 else None


def ask_to_show(info: dict[str, Any]) -> bool:
    """Ask a running instance to bring its window forward. True when it did."""
    try:
        r = httpx.post(
            f"{info['api_url']}/api/v1/app/show",
            headers={"Authorization": f"Bearer {info['token']}"},
            timeout=5.0,
        )
    except httpx.HTTPError:
        return False
    return r.status_code == 200 and bool(r.json().get("shown"))


def wait_for_instance(path: Path, seconds: float) -> dict[str, Any] | None:
    """Wait for another instance that is starting (it holds the database lock) to publish runtime.json."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        info = find_live_instance(path)
        if info:
            return info
        time.sleep(0.1)
    return None
