"""``/assets``: media by id only (no path from a request reaches the file system), with Range and ETag."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from backend.api.deps import MediaDep, StoreDep
from backend.core.errors import AtelierError, NotFound, StorageError
from backend.db import assets as assets_db
from backend.media import MediaError
from backend.media.http_range import content_range, parse_range, unsatisfiable_content_range

router = APIRouter(tags=["assets"])

CHUNK = 256 * 1024
UPLOAD_TYPES = {"image/png", "image/jpeg", "image/webp", "image/gif"}


def _file_chunks(path: Path, start: int, length: int) -> AsyncIterator[bytes]:
    async def gen() -> AsyncIterator[bytes]:
        # Opened on first iteration and in this frame, so a cancelled or never-started response cannot leak it
        # (opening a local file does not block the loop noticeably; reads go to a thread).
        with open(path, "rb") as fh:  # noqa: ASYNC230
            fh.seek(start)
            remaining = length
            while remaining > 0:
                chunk = await asyncio.to_thread(fh.read, min(CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk

    return gen()


@router.get("/assets/{asset_id}", response_class=Response)
async def get_asset(asset_id: str, request: Request, media: MediaDep, store: StoreDep, thumb: bool = False,
                    download: bool = False) -> Response:
    """The bytes of an asset (``thumb=1``: its thumbnail). Supports single ``Range`` requests for seeking."""
    if not (0 < len(asset_id) <= 64 and asset_id.isalnum()):
        raise NotFound("No such asset.")
    row = await assets_db.get(store, asset_id=asset_id)
    if row is None:
        raise NotFound("No such asset.")
    sha, mime = row["sha256"], row["mime"]
    if thumb:
        if not row["thumb_sha256"]:
            raise NotFound("This asset has no thumbnail.")
        sha = row["thumb_sha256"]
        mime = "image/webp" if media.path_for(sha).read_bytes()[8:12] == b"WEBP" else "image/jpeg"
    path = media.path_for(sha)
    try:
        size = (await asyncio.to_thread(os.stat, path)).st_size
    except FileNotFoundError:
        raise NotFound("The file of this asset is missing from the media folder.") from None
    etag = f'"{sha[:32]}"'
    headers = {
        "ETag": etag,
        "Cache-Control": "private, max-age=31536000, immutable",
        "Accept-Ranges": "bytes",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }
    if download or row["kind"] == "file":
        ext = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif",
               "video/mp4": "mp4", "video/webm": "webm"}.get(mime, "bin")
        headers["Content-Disposition"] = f'attachment; filename="atelier-{asset_id[:8]}.{ext}"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    rng = parse_range(request.headers.get("range"), size)
    if rng == "unsatisfiable":
        return Response(status_code=416, headers={**headers, "Content-Range": unsatisfiable_content_range(size)})
    if rng is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(_file_chunks(path, 0, size), media_type=mime, headers=headers)
    start, end = rng
    headers["Content-Range"] = content_range(start, end, size)
    headers["Content-Length"] = str(end - start + 1)
    return StreamingResponse(_file_chunks(path, start, end - start + 1), status_code=206, media_type=mime,
                             headers=headers)


@router.post("/assets", status_code=201)
async def upload_asset(request: Request, media: MediaDep, store: StoreDep) -> dict[str, Any]:
    """Store a reference image sent as the raw request body (``Content-Type: image/png`` …)."""
    mime = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if mime not in UPLOAD_TYPES:
        raise AtelierError("Upload a PNG, JPEG, WebP or GIF image.", code="unsupported_type", status=415)
    data = await request.body()
    if not data:
        raise AtelierError("The upload is empty.", code="invalid_request", status=422)
    try:
        info = await asyncio.to_thread(media.put_bytes, data, mime)
    except MediaError as exc:
        if exc.code == "disk_full" or exc.code == "io_error":
            raise StorageError(str(exc)) from None
        raise AtelierError(str(exc), code=exc.code, status=413 if exc.code == "too_large" else 422) from None
    if info.kind != "image":
        raise AtelierError("Only images can be used as references.", code="unsupported_type", status=415)
    return await assets_db.add_upload(store, info=info)
