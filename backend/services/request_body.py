"""The body OpenRouter receives for a generation: chat messages (text and image kinds) and video jobs."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from backend.core.preferences import Preferences
from backend.db import assets as assets_db
from backend.db.store import Store
from backend.media import MediaStore, encode_data_url
from backend.services.catalogue import Catalogue

CHAT_PARAMS = ("temperature", "top_p", "seed", "max_tokens", "stop", "frequency_penalty", "presence_penalty",
               "reasoning")
VIDEO_PARAMS = ("duration", "resolution", "aspect_ratio", "size", "generate_audio", "seed")


class RequestBodies:
    """Builds request bodies from stored generation rows (input images are read from the media store)."""

    def __init__(self, *, store: Store, media: MediaStore, preferences: Preferences,
                 catalogue: Catalogue | None) -> None:
        self.store = store
        self.media = media
        self.preferences = preferences
        self.catalogue = catalogue

    async def input_data_urls(self, row: dict[str, Any]) -> list[str]:
        """The generation's input images as data URLs, in the order the user gave them."""
        ids = json.loads(row["input_asset_ids"] or "[]")
        urls = []
        for asset in await assets_db.files(self.store, asset_ids=ids):
            data = await asyncio.to_thread(self.media.path_for(asset["sha256"]).read_bytes)
            urls.append(encode_data_url(asset["mime"], data))
        return urls

    async def chat(self, row: dict[str, Any]) -> dict[str, Any]:
        """``/chat/completions`` body for a text or image generation."""
        params = json.loads(row["params"] or "{}")
        messages: list[dict[str, Any]] = []
        if row["system"]:
            messages.append({"role": "system", "content": row["system"]})
        images = await self.input_data_urls(row)
        if images:
            content: Any = [{"type": "text", "text": row["prompt"]}] + [
                {"type": "image_url", "image_url": {"url": url}} for url in images
            ]
        else:
            content = row["prompt"]
        messages.append({"role": "user", "content": content})
        body: dict[str, Any] = {"model": row["model"], "messages": messages}
        for name in CHAT_PARAMS:
            if name in params:
                body[name] = params[name]
        if row["kind"] == "text" and "max_tokens" not in body:
            # An explicit cap avoids OpenRouter's credit pre-check against the model's maximum output.
            body["max_tokens"] = await self.preferences.get("default_max_tokens")
        if row["kind"] == "image":
            model = await self.catalogue.get_model(row["model"], "image") if self.catalogue else None
            outputs = (model or {}).get("output_modalities") or ["image", "text"]
            body["modalities"] = ["image", "text"] if "text" in outputs else ["image"]
            image_config = {k: params[k] for k in ("aspect_ratio", "image_size") if k in params}
            if image_config:
                body["image_config"] = image_config
        return body

    async def video(self, row: dict[str, Any]) -> dict[str, Any]:
        """``/videos`` body; the first two input images become the first and last frame."""
        params = json.loads(row["params"] or "{}")
        body: dict[str, Any] = {"model": row["model"], "prompt": row["prompt"]}
        for name in VIDEO_PARAMS:
            if name in params:
                body[name] = params[name]
        frames = await self.input_data_urls(row)
        if frames:
            kinds = ["first_frame", "last_frame"]
            body["frame_images"] = [
                {"type": "image_url", "image_url": {"url": url}, "frame_type": kinds[min(i, 1)]}
                for i, url in enumerate(frames[:2])
            ]
        return body
