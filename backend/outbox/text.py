"""One chat attempt (text, or images through chat): streamed or not, saved as it arrives."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from backend.core.errors import error_dict
from backend.core.vocabulary import Kind, Status
from backend.db import attempts as attempts_db
from backend.db import generations as gens
from backend.media import MediaError
from backend.openrouter import (
    ImageDelta,
    KeepAlive,
    ReasoningDelta,
    StreamFinished,
    StreamStarted,
    TextDelta,
    UpstreamError,
    Usage,
)
from backend.outbox.attempt import AttemptRules
from backend.outbox.events import Running
from backend.outbox.image import media_error_code, no_image_message, store_images

#: Streamed text is written to the database at most this often, so a crash keeps what arrived.
FLUSH_SECONDS = 0.25


class ChatAttempt:
    """Sends a text or image generation through ``/chat/completions`` and records how it ended."""

    def __init__(self, rules: AttemptRules) -> None:
        self.rules = rules
        self.s = rules.s

    async def run(self, running: Running, row: dict[str, Any]) -> None:
        s, rules = self.s, self.rules
        gen_id = running.gen_id
        started = await rules.begin(running, row)
        if started is None:
            return
        key, number = started
        body = await s.bodies.chat(row)
        text: list[str] = []
        reasoning: list[str] = []
        images: list[str] = []
        usage: Usage | None = None
        upstream_id = None
        upstream_model = None
        flushed_len = 0
        last_flush = time.monotonic()
        try:
            if row["stream"]:
                async with contextlib.aclosing(s.client.chat_stream(key, body)) as events:
                    async for event in events:
                        if isinstance(event, StreamStarted):
                            # Tell listeners first; upstream_id is saved with the first flush, FLUSH_SECONDS
                            # on (no write competes with the first tokens).
                            upstream_id, upstream_model = event.upstream_id, event.model
                            s.connectivity.mark(True)
                            running.started.set()
                            running.publish("started", {"upstream_id": upstream_id})
                            last_flush = time.monotonic()
                        elif isinstance(event, TextDelta):
                            text.append(event.text)
                            running.publish("delta", {"text": event.text})
                        elif isinstance(event, ReasoningDelta):
                            reasoning.append(event.text)
                            running.publish("reasoning", {"text": event.text})
                        elif isinstance(event, ImageDelta):
                            images.append(event.data_url)
                        elif isinstance(event, StreamFinished):
                            usage = event.usage
                            upstream_model = event.model or upstream_model
                        elif isinstance(event, KeepAlive):
                            running.publish("keepalive", {})
                        if time.monotonic() - last_flush >= FLUSH_SECONDS and len("".join(text)) != flushed_len:
                            joined = "".join(text)
                            await gens.update(s.store, gen_id, index=False, output_text=joined,
                                              upstream_id=upstream_id, reasoning_text="".join(reasoning) or None)
                            flushed_len = len(joined)
                            last_flush = time.monotonic()
            else:
                result = await s.client.chat(key, body)
                s.connectivity.mark(True)
                running.started.set()
                text = [result.text]
                reasoning = [result.reasoning] if result.reasoning else []
                images = list(result.images)
                usage = result.usage
                upstream_id, upstream_model = result.upstream_id, result.model
        except UpstreamError as exc:
            await rules.failed(running, row, number, exc, partial="".join(text) or exc.partial_text,
                               reasoning="".join(reasoning) or None, upstream_id=upstream_id)
            return
        except asyncio.CancelledError:
            await self._stopped(running, number, "".join(text), "".join(reasoning) or None, upstream_id)
            if running.cancel_reason == "shutdown":
                raise
            return

        output = "".join(text)
        done = dict(usage=usage, upstream_id=upstream_id, upstream_model=upstream_model)
        saved: list[str] = []
        if images:
            try:
                saved = await store_images(s, gen_id, images)
            except MediaError as exc:
                await rules.end(running, "error", Status.FAILED, attempt=dict(
                    number=number, outcome="rejected", error_code=exc.code, error_message=str(exc)),
                    output_text=output or None, error=error_dict(media_error_code(exc), str(exc)), **done)
                return
        if row["kind"] == Kind.IMAGE and not saved:
            await rules.end(running, "error", Status.FAILED, attempt=dict(
                number=number, outcome="rejected", error_code="no_image_output"),
                output_text=output or None, error=error_dict("no_image_output", no_image_message(row["model"])),
                **done)
            return
        # One transaction closes the attempt and stores the answer; the record for ``done`` needs no read back
        # (its files only when images were saved).
        await rules.end(running, "done", Status.SUCCEEDED, attempt=dict(number=number, outcome="succeeded",
                                                                       http_status=200), outputs=bool(saved),
                        output_text=output, reasoning_text="".join(reasoning) or None, error=None, **done)

    async def _stopped(self, running: Running, number: int, partial: str, reasoning: str | None,
                       upstream_id: str | None) -> None:
        """The attempt was cancelled: the app is closing, or the user cancelled (already recorded). OpenRouter's
        id of the stream is kept with what arrived, so that its cost can be looked up afterwards."""
        ids = {"upstream_id": upstream_id} if upstream_id else {}
        s, rules = self.s, self.rules
        gen_id = running.gen_id
        if running.cancel_reason == "shutdown":
            await attempts_db.end(s.store, generation_id=gen_id, number=number, outcome="shutdown")
            if partial:
                await rules.finish(gen_id, Status.INTERRUPTED, output_text=partial, error=error_dict(
                    "interrupted", "Atelier was closed while this answer was streaming; the text received so "
                    "far is kept."), **ids)
            else:
                await gens.transition(s.store, gen_id, status=Status.QUEUED, next_attempt_at=None)
            return
        await rules.end(running, "done", Status.CANCELLED, attempt=dict(number=number, outcome="cancelled"),
                        from_statuses=(Status.RUNNING, Status.CANCELLED), output_text=partial or None,
                        reasoning_text=reasoning, **ids)
