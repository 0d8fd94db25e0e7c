"""Health, status, preferences and the shell's show-window hook."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body
from pydantic import BaseModel

from backend import __version__
from backend.api.deps import KeysDep, OutboxDep, PolicyDep, PreferencesDep, ShellDep, StoreDep
from backend.core.vocabulary import Status

router = APIRouter(tags=["system"])


class Health(BaseModel):
    status: str
    version: str


@router.get("/health", response_model=Health)
async def health() -> dict[str, Any]:
    """Liveness probe. Needs no token and reveals no data."""
    return {"status": "ok", "version": __version__}


@router.get("/status")
async def status(store: StoreDep, outbox: OutboxDep, keys: KeysDep, shell: ShellDep) -> dict[str, Any]:
    """Online state, whether a key is set, the outbox counts and notices for the user."""
    rows = await store.fetchall(
        "SELECT status, count(*) AS n FROM generations WHERE status IN ('queued', 'running') GROUP BY status"
    )
    counts = {row["status"]: row["n"] for row in rows}
    return {
        "online": outbox.connectivity.online,
        "key_configured": bool((await keys.status()).configured),
        "queue": {"queued": counts.get(Status.QUEUED, 0), "running": counts.get(Status.RUNNING, 0),
                  "paused": outbox.paused},
        "version": __version__,
        "notices": list(shell.notices),
    }


@router.get("/settings")
async def get_settings(prefs: PreferencesDep, policy: PolicyDep) -> dict[str, Any]:
    """User preferences, with the names locked by machine policy."""
    return {
        "values": await prefs.values(),
        "locked": prefs.locked(),
        "policy_file": str(policy.path) if policy is not None and getattr(policy, "path", None) else None,
    }


@router.put("/settings")
async def put_settings(
    prefs: PreferencesDep, policy: PolicyDep, changes: dict[str, Any] = Body(..., examples=[{"theme": "dark"}])
) -> dict[str, Any]:
    """Change some preferences (a flat object of name → value). Locked names answer 403 ``locked_by_policy``."""
    await prefs.update(changes)
    return await get_settings(prefs, policy)


@router.post("/activity")
async def activity(outbox: OutboxDep) -> dict[str, Any]:
    """The user is here (the window gained focus): while OpenRouter is unreachable, probe it now instead of at
    the next interval. Answers at once with the current state; the probe runs in the outbox."""
    outbox.activity()
    return {"online": outbox.connectivity.online}


@router.post("/app/show")
async def show_window(shell: ShellDep) -> dict[str, Any]:
    """Bring the window to the front (a second launch calls this instead of opening the database)."""
    show = shell.show_window
    shown = bool(show()) if show is not None else False
    return {"shown": shown}
