"""``/conversations``: threads of text (and refined image) turns. A turn is created with ``POST /generations``
(``conversation_id`` / ``parent_id``); see docs/api.md ("Conversations")."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from backend.api.deps import LibraryDep, StoreDep
from backend.db import conversations as convs
from backend.db import generations as gens
from backend.services.conversations import delete_conversation

router = APIRouter(tags=["conversations"])


class ConversationPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(max_length=300)

    @field_validator("title")
    @classmethod
    def _title(cls, value: str | None) -> str | None:
        value = " ".join(value.split()) if value else None
        return value or None  # empty: back to the default (the first prompt)


class ConversationItem(BaseModel):
    id: str
    title: str
    turns: int
    last_model: str | None
    cost_usd: float
    created_at: str | None
    updated_at: str | None


class ConversationList(BaseModel):
    items: list[ConversationItem]
    next_cursor: str | None


def _checked(conversation_id: str) -> str:
    if not (0 < len(conversation_id) <= 64 and conversation_id.isalnum()):
        raise convs.not_found(conversation_id)
    return conversation_id


@router.get("/conversations", response_model=ConversationList)
async def list_conversations(
    store: StoreDep,
    q: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> dict[str, Any]:
    """By last activity, newest first; ``q`` searches the title and every turn's prompt and answer."""
    items, next_cursor = await convs.search(store, q=q, limit=limit, cursor=cursor)
    return {"items": items, "next_cursor": next_cursor}


@router.get("/conversations/{conversation_id}")
async def get_conversation(conversation_id: str, store: StoreDep) -> dict[str, Any]:
    """The conversation with every turn (records, oldest first, each with ``parent_id``) and ``leaf_id``, the
    newest turn (the end of the branch the user worked on last)."""
    summary = await convs.summary(store, _checked(conversation_id))
    turns = await gens.conversation_records(store, conversation_id)
    return {**summary, "turns": turns, "leaf_id": turns[-1]["id"] if turns else None}


@router.patch("/conversations/{conversation_id}", response_model=ConversationItem)
async def patch_conversation(conversation_id: str, body: ConversationPatch, store: StoreDep) -> dict[str, Any]:
    """Rename it (``title``; null or empty goes back to the first prompt)."""
    await convs.summary(store, _checked(conversation_id))
    await convs.rename(store, conversation_id, body.title)
    return await convs.summary(store, conversation_id)


@router.delete("/conversations/{conversation_id}", status_code=204)
async def remove_conversation(conversation_id: str, store: StoreDep, library: LibraryDep) -> Response:
    """Delete the conversation and all its turns, with their files."""
    if not await convs.exists(store, _checked(conversation_id)):
        raise convs.not_found(conversation_id)
    await delete_conversation(store, library=library, conversation_id=conversation_id)
    return Response(status_code=204)
