"""``/exports`` and ``/imports``: take your work elsewhere, bring it back (see docs/data.md)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from backend.api.deps import MediaDep, SettingsDep, StoreDep
from backend.core.errors import AtelierError, NotFound
from backend.core.files import write_all
from backend.core.sizes import format_size
from backend.core.vocabulary import Kind
from backend.data import exports, imports
from backend.db.time import new_id

router = APIRouter(tags=["data"])

_Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9]+$")]


class ExportFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    q: str | None = Field(default=None, max_length=500)
    kind: Kind | None = None
    tag: str | None = Field(default=None, max_length=64)
    collection_id: _Id | None = None
    batch_id: _Id | None = None
    conversation_id: _Id | None = None
    ids: list[_Id] | None = Field(default=None, max_length=5000)


class ExportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["markdown", "jsonl", "parquet"]
    filter: ExportFilter = Field(default_factory=ExportFilter)


class Export(BaseModel):
    id: str
    file: str
    bytes: int
    items: int | None = None
    format: str
    created_at: str


class ExportList(BaseModel):
    items: list[Export]
    next_cursor: str | None = None


class ImportResult(BaseModel):
    added: int
    skipped: int


@router.post("/exports", status_code=201, response_model=Export)
async def create_export(body: ExportIn, media: MediaDep, store: StoreDep, settings: SettingsDep) -> dict[str, Any]:
    """Write a zip of everything, or of what the filter selects, into ``<data>/exports/``."""
    selection = body.filter.model_dump(exclude_none=True)
    info = await store.read(lambda cur: exports.write_export(
        cur, media=media, exports_dir=settings.exports_dir, fmt=body.format, selection=selection))
    return info.to_dict()


@router.get("/exports", response_model=ExportList)
async def list_exports(settings: SettingsDep) -> dict[str, Any]:
    return {"items": await asyncio.to_thread(exports.list_exports, settings.exports_dir), "next_cursor": None}


@router.get("/exports/{export_id}", response_class=FileResponse)
async def download_export(export_id: str, settings: SettingsDep) -> FileResponse:
    """The export's zip file."""
    path = await asyncio.to_thread(exports.find_export, settings.exports_dir, export_id)
    if path is None:
        raise NotFound(f"There is no export {export_id[:64]}.")
    return FileResponse(path, media_type="application/zip", filename=path.name)


@router.post("/imports", response_model=ImportResult,
             openapi_extra={"requestBody": {"content": {"application/octet-stream": {
                 "schema": {"type": "string", "format": "binary"}}}}})
async def import_export(request: Request, media: MediaDep, store: StoreDep, settings: SettingsDep) -> dict[str, Any]:
    """Merge a JSONL or Parquet export zip (the raw body, any content type) into this library: nothing duplicated,
    nothing overwritten, media checked against its sha256."""
    folder = settings.data_dir / "imports"
    await asyncio.to_thread(folder.mkdir, exist_ok=True)
    upload = folder / f".upload-{new_id()}.zip"
    try:
        await _receive(request, upload, settings.import_max_bytes)
        parsed = await asyncio.to_thread(imports.read_export, upload, max_media_bytes=settings.max_media_bytes)
        infos = await asyncio.to_thread(imports.store_media, upload, parsed, media)
        return await store.transaction(lambda cur: imports.merge(cur, parsed, infos))
    finally:
        with contextlib.suppress(OSError):
            upload.unlink()


async def _receive(request: Request, target: Path, limit: int) -> None:
    """Stream the request body to ``target``, refusing (413) past ``limit`` bytes."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise _too_large(limit)
    size = 0
    fd = await asyncio.to_thread(os.open, target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            await asyncio.to_thread(write_all, fd, chunk)
    finally:
        os.close(fd)
    if size == 0:
        raise AtelierError("The import is empty: send an export zip as the request body.", code="invalid_import",
                           status=422)


def _too_large(limit: int) -> AtelierError:
    return AtelierError(f"The file is larger than the import limit ({format_size(limit)}); import a smaller export.",
                        code="payload_too_large", status=413)
