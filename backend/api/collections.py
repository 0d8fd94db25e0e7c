"""``/collections`` (projects, boards) and ``POST /generations/bulk``: group and change many items at once."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from backend.api.deps import LibraryDep, StoreDep
from backend.db import collections as rows
from backend.services.library import BulkAction

router = APIRouter(tags=["collections"])

_Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9]+$")]


class CollectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("a collection needs a name")
        return value


class Collection(BaseModel):
    id: str
    name: str
    items: int
    created_at: datetime
    updated_at: datetime


class CollectionList(BaseModel):
    items: list[Collection]
    next_cursor: str | None


class ItemsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    generation_ids: list[_Id] = Field(min_length=1, max_length=500)


class BulkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[_Id] = Field(min_length=1, max_length=500)
    action: BulkAction
    value: str | None = Field(default=None, max_length=200)


class BulkOut(BaseModel):
    done: int
    missing: list[str]


@router.post("/collections", status_code=201, response_model=Collection)
async def create_collection(body: CollectionIn, store: StoreDep) -> dict[str, Any]:
    return await rows.insert(store, name=body.name)


@router.get("/collections", response_model=CollectionList)
async def list_collections(
    store: StoreDep,
    q: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> dict[str, Any]:
    """Newest first, each with its item count."""
    items, next_cursor = await rows.search(store, q=q, limit=limit, cursor=cursor)
    return {"items": items, "next_cursor": next_cursor}


@router.get("/collections/{collection_id}", response_model=Collection)
async def get_collection(collection_id: str, store: StoreDep) -> dict[str, Any]:
    return await rows.get(store, collection_id=collection_id)


@router.patch("/collections/{collection_id}", response_model=Collection)
async def rename_collection(collection_id: str, body: CollectionIn, store: StoreDep) -> dict[str, Any]:
    return await rows.rename(store, collection_id=collection_id, name=body.name)


@router.delete("/collections/{collection_id}", status_code=204)
async def delete_collection(collection_id: str, store: StoreDep) -> Response:
    """Delete the collection; its items stay in the library."""
    await rows.delete(store, collection_id=collection_id)
    return Response(status_code=204)


@router.post("/collections/{collection_id}/items", response_model=BulkOut)
async def add_to_collection(collection_id: str, body: ItemsIn, library: LibraryDep) -> dict[str, Any]:
    """Add generations (each once); ids that do not exist are listed in ``missing``."""
    return await library.apply(body.generation_ids, "add_to_collection", collection_id)


@router.delete("/collections/{collection_id}/items", response_model=BulkOut)
async def remove_from_collection(collection_id: str, body: ItemsIn, library: LibraryDep) -> dict[str, Any]:
    return await library.apply(body.generation_ids, "remove_from_collection", collection_id)


@router.post("/generations/bulk", response_model=BulkOut)
async def bulk(body: BulkIn, library: LibraryDep) -> dict[str, Any]:
    """One action on up to 500 generations, in one transaction: favorite, unfavorite, tag, untag (``value`` is
    the tag), add_to_collection, remove_from_collection (``value`` is the collection id) or delete."""
    return await library.apply(body.ids, body.action, body.value)


class TagCount(BaseModel):
    tag: str
    count: int


class TagList(BaseModel):
    items: list[TagCount]
    next_cursor: str | None = None


@router.get("/tags", response_model=TagList)
async def list_tags(store: StoreDep, q: Annotated[str | None, Query(max_length=64)] = None,
                    limit: Annotated[int, Query(ge=1, le=500)] = 200) -> dict[str, Any]:
    """Tags in use with how many generations carry each, most used first (``q``: tags starting with it,
    any case) — what tag autocompletion offers."""
    where, params = "", []
    if q:
        where, params = "WHERE starts_with(lower(tag), lower(?))", [q]
    found = await store.fetchall(
        f"SELECT tag, count(*) AS count FROM (SELECT unnest(tags) AS tag FROM generations) {where} "  # noqa: S608
        "GROUP BY tag ORDER BY count DESC, tag LIMIT ?", [*params, limit])
    return {"items": found, "next_cursor": None}
