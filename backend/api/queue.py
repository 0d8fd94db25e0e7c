"""``/queue``: what waits in the outbox and what is being sent; pause and resume."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from backend.api.deps import StateDep, StoreDep
from backend.db import generations as gens

router = APIRouter(tags=["queue"])


async def _queue(state: Any, store: Any) -> dict[str, Any]:
    rows = await store.fetchall(
        "SELECT id FROM generations WHERE status IN ('queued', 'running') ORDER BY created_at"
    )
    items = [await gens.record(store, row["id"], with_attempts=False) for row in rows]
    return {"items": items, "online": state.connectivity.online, "paused": state.outbox.paused}


@router.get("/queue")
async def get_queue(state: StateDep, store: StoreDep) -> dict[str, Any]:
    return await _queue(state, store)


@router.post("/queue/pause")
async def pause_queue(state: StateDep, store: StoreDep) -> dict[str, Any]:
    """Stop sending queued items (running ones finish)."""
    await state.outbox.set_paused(True)
    return await _queue(state, store)


@router.post("/queue/resume")
async def resume_queue(state: StateDep, store: StoreDep) -> dict[str, Any]:
    await state.outbox.set_paused(False)
    return await _queue(state, store)
