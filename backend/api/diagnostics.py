"""``/diagnostics``: the ``atelier doctor`` checks, run inside the app, for the Settings page and IT tooling.

The checks are the doctor's own (``backend/diagnostics/``), run with the policy this app started with and
``in_process=True``: the database file is never opened a second time (only its header is read) and the
running-instance check describes this process. The report is scrubbed of the API key and of the launch
token before it leaves the process.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel

from backend.api.deps import StateDep

router = APIRouter(tags=["diagnostics"])

_STATUS = {"OK": "ok", "WARN": "warn", "FAIL": "fail"}
# A diagnosis should answer within seconds even when OpenRouter does not.
_PROBE_TIMEOUT = 5.0


class DiagnosticCheck(BaseModel):
    id: str
    name: str
    status: Literal["ok", "warn", "fail"]
    detail: str
    fix: str | None
    data: dict[str, Any]


class Diagnostics(BaseModel):
    ok: bool
    version: str
    checks: list[DiagnosticCheck]


@router.get("/diagnostics", response_model=Diagnostics)
async def diagnostics(state: StateDep) -> dict[str, Any]:
    """Run the doctor's checks (version, data dir, database, policy, key storage, certificates, proxy,
    OpenRouter reachability and latency, key validity). ``ok`` is false when any check fails; the key is
    never part of the answer."""
    from backend.diagnostics.checks import diagnose

    secrets = [state.token]
    keys = getattr(state, "keys", None)
    if keys is not None:
        key = await keys.get()
        if key:
            secrets.append(key)
    settings = state.settings
    # One report at a time per app: repeated clicks on "Run again" must not start parallel network probes.
    lock = getattr(state, "diagnostics_lock", None)
    if lock is None:
        lock = state.diagnostics_lock = asyncio.Lock()
    async with lock:
        report = await asyncio.to_thread(
            diagnose,
            settings,
            timeout=min(float(settings.connect_timeout_seconds), _PROBE_TIMEOUT),
            policy=state.policy,
            in_process=True,
            secrets=secrets,
        )
    data = report.to_dict()
    return {
        "ok": data["ok"],
        "version": data["atelier_version"],
        "checks": [
            {
                "id": check["id"],
                "name": check["title"],
                "status": _STATUS[check["status"]],
                "detail": check["message"],
                "fix": check["hint"],
                "data": check["details"],
            }
            for check in data["checks"]
        ],
    }
