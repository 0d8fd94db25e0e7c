"""Images a chat answer carried: decoded, checked, stored and recorded as the generation's outputs."""

from __future__ import annotations

import asyncio

from backend.db import assets as assets_db
from backend.media import MediaError, decode_data_url
from backend.outbox.attempt import OutboxServices

#: How a media store refusal is reported on the generation.
MEDIA_ERROR_CODES = {"too_large": "media_too_large", "disk_full": "storage_error", "io_error": "storage_error"}


def media_error_code(exc: MediaError) -> str:
    return MEDIA_ERROR_CODES.get(exc.code, "bad_media")


async def store_images(services: OutboxServices, gen_id: str, data_urls: list[str]) -> list[str]:
    """Decode, store and record output images; returns their asset ids. All are checked before any row is
    written. Raises :class:`MediaError` for a file the store refuses."""
    infos = []
    for url in data_urls:
        mime, data = decode_data_url(url, max_bytes=services.settings.max_media_bytes)
        infos.append(await asyncio.to_thread(services.media.put_bytes, data, mime))
    return await assets_db.add_outputs(services.store, generation_id=gen_id, infos=infos)


def no_image_message(model: str) -> str:
    return f"The model '{model}' answered with text only. Pick a model that outputs images (the picker lists them)."
