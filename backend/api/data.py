"""``/exports`` and ``/imports``: take your work elsewhere, bring it back (see docs/data.md)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from backend.api.deps import MediaDep, SettingsDep, StoreDep, UploadsDep
from backend.core.errors import AtelierError, NotFound
from backend.core.files import write_all
from backend.core.settings import Settings
from backend.core.vocabulary import Kind
from backend.data import exports, imports
from backend.data.uploads import too_large
from backend.db.store import Store
from backend.db.time import new_id
from backend.media import MediaStore

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
        return await _import(upload, media=media, store=store, settings=settings)
    finally:
        with contextlib.suppress(OSError):
            upload.unlink()


class UploadSession(BaseModel):
    id: str
    received: int
    chunk_max_bytes: int
    max_bytes: int
    expires_in_seconds: int


@router.post("/imports/uploads", status_code=201, response_model=UploadSession)
async def start_upload(uploads: UploadsDep) -> dict[str, Any]:
    """Start sending an export zip in chunks (for a client that cannot send it in one request)."""
    return await asyncio.to_thread(uploads.create)


@router.put("/imports/uploads/{upload_id}", response_model=UploadSession,
            openapi_extra={"requestBody": {"content": {"application/octet-stream": {
                "schema": {"type": "string", "format": "binary"}}}}})
async def upload_chunk(upload_id: str, offset: Annotated[int, Query(ge=0)], request: Request,
                       uploads: UploadsDep) -> dict[str, Any]:
    """Append the raw body (one chunk) at ``offset``, which must be the number of bytes received so far."""
    length = request.headers.get("content-length")
    return await uploads.append(upload_id, offset, request.stream(),
                                length=int(length) if length and length.isdigit() else None)


@router.post("/imports/uploads/{upload_id}/finish", response_model=ImportResult)
async def finish_upload(upload_id: str, uploads: UploadsDep, media: MediaDep, store: StoreDep,
                        settings: SettingsDep) -> dict[str, Any]:
    """Import what the chunks made, exactly as ``POST /imports`` does; the upload ends either way."""
    path = uploads.take(upload_id)
    try:
        return await _import(path, media=media, store=store, settings=settings)
    finally:
        with contextlib.suppress(OSError):
            await asyncio.to_thread(path.unlink)


@router.delete("/imports/uploads/{upload_id}", status_code=204)
async def cancel_upload(upload_id: str, uploads: UploadsDep) -> Response:
    """Give up an upload: its file is removed."""
    await asyncio.to_thread(uploads.abort, upload_id)
    return Response(status_code=204)


async def _import(path: Path, *, media: MediaStore, store: Store, settings: Settings) -> dict[str, Any]:
    """Check the export zip at ``path`` whole, store its media, then merge its records in one transaction."""
    parsed = await asyncio.to_thread(imports.read_export, path, max_media_bytes=settings.max_media_bytes)
    infos = await asyncio.to_thread(imports.store_media, path, parsed, media)
    return await store.transaction(lambda cur: imports.merge(cur, parsed, infos))


async def _receive(request: Request, target: Path, limit: int) -> None:
    """Stream the request body to ``target``, refusing (413) past ``limit`` bytes."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise too_large(limit)
    size = 0
    fd = await asyncio.to_thread(os.open, target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            await asyncio.to_thread(write_all, fd, chunk)
    finally:
        os.close(fd)
    if size == 0:
        raise AtelierError("The import is empty: send an export zip as the request body.", code="invalid_import",
                           status=422)
