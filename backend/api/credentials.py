"""``/credentials``: the OpenRouter key (never returned; only its last four characters)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from .deps import StateDep

router = APIRouter(tags=["credentials"])


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_key: str = Field(min_length=1, max_length=1024)


@router.get("/credentials")
async def get_credentials(state: StateDep) -> dict[str, Any]:
    return await state.keys.describe()


@router.put("/credentials")
async def put_credentials(body: KeyIn, state: StateDep) -> dict[str, Any]:
    """Validate the key with OpenRouter (when reachable) and store it in the OS keychain or a private file."""
    described = await state.keys.set(body.api_key)
    state.outbox.wake()  # deferred requests waiting for a key can go now
    return described


@router.delete("/credentials")
async def delete_credentials(state: StateDep) -> dict[str, Any]:
    return await state.keys.delete()
