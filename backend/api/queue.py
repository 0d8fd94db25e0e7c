"""``/queue``: what waits in the outbox and what is being sent; pause and resume."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from backend.api.deps import OutboxDep, StoreDep
from backend.db import generations as gens
from backend.db.store import Store
from backend.outbox.worker import Outbox

router = APIRouter(tags=["queue"])


async def _queue(outbox: Outbox, store: Store) -> dict[str, Any]:
    items = await gens.pending_records(store)
    return {"items": items, "online": outbox.connectivity.online, "paused": outbox.paused}


@router.get("/queue")
async def get_queue(outbox: OutboxDep, store: StoreDep) -> dict[str, Any]:
    return await _queue(outbox, store)


@router.post("/queue/pause")
async def pause_queue(outbox: OutboxDep, store: StoreDep) -> dict[str, Any]:
    """Stop sending queued items (running ones finish)."""
    await outbox.set_paused(True)
    return await _queue(outbox, store)


@router.post("/queue/resume")
async def resume_queue(outbox: OutboxDep, store: StoreDep) -> dict[str, Any]:
    await outbox.set_paused(False)
    return await _queue(outbox, store)
