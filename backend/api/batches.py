"""``/batches``: one template (or prompt) over rows × models × repeat, drained through the outbox; a compare
is a batch of one prompt × 2–4 models. See docs/api.md ("Batches and compare")."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from backend.api.deps import BatchesDep, StoreDep
from backend.core.vocabulary import Kind, Status
from backend.db import batches as rows
from backend.db import listing
from backend.services.batches import BatchRequest

router = APIRouter(tags=["batches"])

MAX_PROMPT = 200_000
_Tag = Annotated[str, Field(min_length=1, max_length=64)]
_Model = Annotated[str, Field(min_length=1, max_length=200)]
_Row = Annotated[dict[str, Any], Field(max_length=200)]


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    kind: Kind
    models: list[_Model] = Field(min_length=1, max_length=8)
    template_id: str | None = Field(default=None, min_length=1, max_length=64)
    prompt: str | None = Field(default=None, min_length=1, max_length=MAX_PROMPT)
    rows: list[_Row] = Field(min_length=1, max_length=1000,
                             description="One object of variables per row; `[{}]` for a plain prompt.")
    repeat: int = Field(default=1, ge=1, le=10)
    system: str | None = Field(default=None, max_length=MAX_PROMPT)
    params: dict[str, Any] = Field(default_factory=dict)
    tags: list[_Tag] = Field(default_factory=list, max_length=32)

    @field_validator("models")
    @classmethod
    def _model_ids(cls, value: list[str]) -> list[str]:
        value = [m.strip() for m in value]
        if any(not m or any(c.isspace() for c in m) for m in value):
            raise ValueError("a model id has no spaces, e.g. openai/gpt-4o-mini")
        return value

    @model_validator(mode="after")
    def _template_or_prompt(self) -> BatchIn:
        if (self.template_id is None) == (self.prompt is None):
            raise ValueError("give either a template_id or a prompt")
        return self


@router.post("/batches", status_code=201)
async def create_batch(body: BatchIn, batches: BatchesDep) -> dict[str, Any]:
    """Write every row × model × repeat as a queued generation, in one transaction, before any is sent.
    422 ``batch_too_large`` past 5,000 items; 422 ``missing_variable`` names the row and the variable."""
    return await batches.create(BatchRequest(**body.model_dump()))


@router.get("/batches")
async def list_batches(store: StoreDep, limit: Annotated[int, Query(ge=1, le=200)] = 50,
                       cursor: Annotated[str | None, Query(max_length=500)] = None) -> dict[str, Any]:
    """Newest first, each with its counts per status and cost so far."""
    items, next_cursor = await rows.search(store, limit=limit, cursor=cursor)
    return {"items": items, "next_cursor": next_cursor}


@router.get("/batches/{batch_id}")
async def get_batch(
    batch_id: str,
    store: StoreDep,
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> dict[str, Any]:
    """The batch with its ``items`` (generation records in the order they were made), paged like
    ``/generations`` (``next_cursor``; ``status`` keeps one status)."""
    batch = await rows.record(store, batch_id=batch_id)
    items, next_cursor = await listing.search(store, batch_id=batch_id, status=status, limit=limit, cursor=cursor,
                                           oldest_first=True)
    return {**batch, "items": items, "next_cursor": next_cursor}


@router.post("/batches/{batch_id}/pause")
async def pause_batch(batch_id: str, batches: BatchesDep) -> dict[str, Any]:
    """Send nothing more of this batch; items already out finish."""
    return await batches.pause(batch_id)


@router.post("/batches/{batch_id}/resume")
async def resume_batch(batch_id: str, batches: BatchesDep) -> dict[str, Any]:
    return await batches.resume(batch_id)


@router.post("/batches/{batch_id}/cancel")
async def cancel_batch(batch_id: str, batches: BatchesDep) -> dict[str, Any]:
    """Cancel every item that has not finished; finished items stay."""
    return await batches.cancel(batch_id)
