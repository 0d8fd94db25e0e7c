"""The single-instance hand-off.

A second launch that finds a live instance through ``runtime.json`` (see ``desktop/runtime_file.py``) asks it
(an authenticated API call) to show its window, then exits 0 instead of hitting DuckDB's file lock.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from desktop.runtime_file import pid_alive, read_runtime, remove_runtime, write_runtime

__all__ = ["ask_to_show", "find_live_instance", "remove_runtime", "wait_for_instance", "write_runtime"]


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
