"""The body OpenRouter receives for a generation: chat messages (text and image kinds) and video jobs.

A turn of a conversation is sent with its history, built here at send time from the database, so a retried or
resumed turn sends exactly the context it had (docs/outbox.md, "Conversations"): the system prompt (this
turn's, else the nearest ancestor's), then for each ancestor from the root its prompt (with its input images)
and its answer (``succeeded`` or ``interrupted``), then this turn's prompt. Siblings and other branches are
never sent. When the history does not fit the model's ``context_length``, the oldest turns are left out and
their number is kept as ``context_dropped_turns``. An image turn with a parent edits the parent's images: they
are sent as its input images.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

from backend.core.preferences import Preferences
from backend.core.vocabulary import Kind, Status
from backend.db import assets as assets_db
from backend.db import conversations as convs
from backend.db import generations as gens
from backend.db.store import Store
from backend.media import MediaStore, encode_data_url
from backend.openrouter import Modality
from backend.services.catalogue import Catalogue

CHAT_PARAMS = ("temperature", "top_p", "seed", "max_tokens", "stop", "frequency_penalty", "presence_penalty",
               "reasoning")
VIDEO_PARAMS = ("duration", "resolution", "aspect_ratio", "size", "generate_audio", "seed")
#: Answers that go back into the context (a failed or cancelled turn has none worth sending).
ANSWERED = frozenset({Status.SUCCEEDED, Status.INTERRUPTED})
#: Token estimate for the context cap: generous on purpose (a character is rarely less than a third of a
#: token), plus a fixed cost per message and per image.
CHARS_PER_TOKEN = 3
MESSAGE_TOKENS = 4
IMAGE_TOKENS = 1000


def estimate_tokens(message: dict[str, Any]) -> int:
    """A generous estimate of what one message costs in the model's context."""
    content = message["content"]
    if isinstance(content, str):
        return MESSAGE_TOKENS + math.ceil(len(content) / CHARS_PER_TOKEN)
    total = MESSAGE_TOKENS
    for part in content:
        if part.get("type") == "text":
            total += math.ceil(len(part["text"]) / CHARS_PER_TOKEN)
        else:
            total += IMAGE_TOKENS
    return total


def user_content(prompt: str, images: list[str]) -> Any:
    """A user message's content: the prompt alone, or the prompt and its images as content parts."""
    if not images:
        return prompt
    return [{"type": "text", "text": prompt}] + [{"type": "image_url", "image_url": {"url": url}} for url in images]


def fit(history: list[list[dict[str, Any]]], *, fixed: int, budget: int | None) -> tuple[list[dict[str, Any]], int]:
    """Keep the newest turns of ``history`` (one list of messages per turn, oldest first) that fit in ``budget``
    tokens next to ``fixed``; returns the messages kept and how many turns were left out."""
    if budget is None:
        return [m for turn in history for m in turn], 0
    used = fixed
    kept = 0
    for turn in reversed(history):
        cost = sum(estimate_tokens(m) for m in turn)
        if used + cost > budget:
            break
        used += cost
        kept += 1
    start = len(history) - kept
    return [m for turn in history[start:] for m in turn], start


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
        return await self._data_urls(await assets_db.files(self.store, asset_ids=ids))

    async def _data_urls(self, assets: list[dict[str, Any]]) -> list[str]:
        urls = []
        for asset in assets:
            data = await asyncio.to_thread(self.media.path_for(asset["sha256"]).read_bytes)
            urls.append(encode_data_url(asset["mime"], data))
        return urls

    async def output_data_urls(self, gen_id: str) -> list[str]:
        """A generation's output images as data URLs (what a refining image turn edits)."""
        outputs = (await assets_db.outputs_for(self.store, generation_ids=[gen_id])).get(gen_id, [])
        return await self._data_urls([a for a in outputs if a["kind"] == "image"])

    async def _ancestors(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        if not (row.get("parent_id") and row.get("conversation_id")):
            return []
        return convs.ancestors(await convs.thread(self.store, row["conversation_id"]), row["parent_id"])

    async def _turn_messages(self, turn: dict[str, Any]) -> list[dict[str, Any]]:
        """An ancestor as it goes back into the context: its prompt, then its answer when it has one."""
        messages = [{"role": "user", "content": user_content(turn["prompt"], await self.input_data_urls(turn))}]
        if turn["status"] in ANSWERED and turn["output_text"]:
            messages.append({"role": "assistant", "content": turn["output_text"]})
        return messages

    async def _budget(self, model_id: str, max_tokens: int | None) -> int | None:
        """Tokens the prompt may use: the model's context length less the answer's cap (None: unknown)."""
        model = await self.catalogue.get_model(model_id, Modality.TEXT) if self.catalogue else None
        length = (model or {}).get("context_length")
        if not isinstance(length, int) or length <= 0:
            return None
        return max(0, length - int(max_tokens or 0))

    async def chat(self, row: dict[str, Any]) -> dict[str, Any]:
        """``/chat/completions`` body for a text or image generation (with its conversation's history)."""
        params = json.loads(row["params"] or "{}")
        ancestors = await self._ancestors(row)
        system = row["system"] or next((t["system"] for t in reversed(ancestors) if t["system"]), None)
        images = await self.input_data_urls(row)
        if row["kind"] == Kind.IMAGE and ancestors:
            images = await self.output_data_urls(ancestors[-1]["id"]) + images
            ancestors = []  # an image edit sends the image, not the thread
        head = [{"role": "system", "content": system}] if system else []
        last = {"role": "user", "content": user_content(row["prompt"], images)}
        body: dict[str, Any] = {"model": row["model"]}
        for name in CHAT_PARAMS:
            if name in params:
                body[name] = params[name]
        if row["kind"] == Kind.TEXT and "max_tokens" not in body:
            # An explicit cap avoids OpenRouter's credit pre-check against the model's maximum output.
            body["max_tokens"] = await self.preferences.get("default_max_tokens")
        history: list[dict[str, Any]] = []
        dropped = 0
        if ancestors:
            turns = [await self._turn_messages(t) for t in ancestors]
            fixed = sum(estimate_tokens(m) for m in [*head, last])
            history, dropped = fit(turns, fixed=fixed, budget=await self._budget(row["model"], body.get("max_tokens")))
        if dropped != (row.get("context_dropped_turns") or 0):
            await gens.update(self.store, row["id"], context_dropped_turns=dropped)
        body["messages"] = [*head, *history, last]
        if row["kind"] == Kind.IMAGE:
            model = await self.catalogue.get_model(row["model"], Modality.IMAGE) if self.catalogue else None
            outputs = (model or {}).get("output_modalities") or [Modality.IMAGE, Modality.TEXT]
            body["modalities"] = [Modality.IMAGE, Modality.TEXT] if Modality.TEXT in outputs else [Modality.IMAGE]
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
