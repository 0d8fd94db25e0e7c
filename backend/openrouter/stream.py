"""Reading a streamed chat answer: SSE events become stream events, in-band errors become UpstreamError."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from backend.openrouter.answers import content_text, image_urls
from backend.openrouter.classification import in_band_error
from backend.openrouter.errors import UpstreamError, empty_response, human_seconds, shorten
from backend.openrouter.results import (
    ImageDelta,
    KeepAlive,
    ReasoningDelta,
    StreamEvent,
    StreamFinished,
    StreamStarted,
    TextDelta,
    Usage,
)
from backend.openrouter.sse import SSEEvent, SSEParser

__all__ = ["StreamState", "read_stream"]


class StreamState:
    """What a chat stream has produced so far; turns SSE events into stream events and errors."""

    def __init__(self, *, model: str | None, generation_id: str | None) -> None:
        self.model = model
        self.generation_id = generation_id
        self.started = False
        self.output_started = False
        self.done = False
        self.finish_reason: str | None = None
        self.usage: Usage | None = None

    def handle(self, sse: SSEEvent) -> list[StreamEvent]:
        if sse.is_comment:
            return [KeepAlive()]
        data = sse.data.strip()
        if data == "[DONE]":
            self.done = True
            return []
        if not data:
            return []
        try:
            chunk = json.loads(data)
        except ValueError:
            raise self.broken("OpenRouter sent a garbled part of the answer.") from None
        if not isinstance(chunk, dict):
            return []
        if "error" in chunk:
            raise self._error(chunk["error"])
        events: list[StreamEvent] = []
        if isinstance(chunk.get("model"), str):
            self.model = chunk["model"]
        if not self.generation_id and isinstance(chunk.get("id"), str):
            self.generation_id = chunk["id"]
        usage = Usage.from_payload(chunk.get("usage"))
        if usage is not None:
            self.usage = usage
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            return events
        for choice in choices:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            if choice.get("finish_reason") == "error":
                raise self._error(choice.get("error") or {})
            delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
            reasoning = delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                events.append(ReasoningDelta(reasoning))
            text = content_text(delta.get("content"))
            if text:
                events.append(TextDelta(text))
            events.extend(ImageDelta(url) for url in image_urls(delta.get("images")))
            if isinstance(choice.get("finish_reason"), str):
                self.finish_reason = choice["finish_reason"]
        if not self.started and (events or choices):
            self.started = True
            events.insert(0, StreamStarted(upstream_id=self.generation_id, model=self.model))
        if any(not isinstance(e, StreamStarted) for e in events):
            self.output_started = True
        return events

    def _error(self, error: Any) -> UpstreamError:
        err = in_band_error(error, model=self.model, context="chat", output_started=self.output_started)
        if self.generation_id:
            err.metadata.setdefault("generation_id", self.generation_id)
        return err

    def broken(
        self, what: str, *, cause: Exception | None = None, code: str = "stream_broken"
    ) -> UpstreamError:
        """The stream failed outside OpenRouter's control (connection, timeout, truncation)."""
        metadata: dict[str, Any] = {}
        if cause is not None:
            metadata["cause"] = shorten(f"{type(cause).__name__}: {cause}")
        if self.generation_id:
            metadata["generation_id"] = self.generation_id
        if self.output_started:
            return UpstreamError(
                code,
                "reject",
                f"{what} The part received so far is kept.",
                output_started=True,
                metadata=metadata,
            )
        # The request reached OpenRouter (it answered 200); whether a model ran is unknown.
        return UpstreamError(
            code,
            "unknown",
            f"{what} No output had arrived yet; it may still have been processed.",
            metadata=metadata,
        )

    def check_not_empty(self) -> None:
        if self.output_started:
            return
        extra = {"generation_id": self.generation_id} if self.generation_id else None
        if self.finish_reason == "content_filter":
            raise UpstreamError(
                "content_blocked",
                "reject",
                "The model's content filter withheld the answer. Rephrase the prompt or pick another model.",
                metadata=extra or {},
            )
        raise empty_response(extra)


async def read_stream(
    response: httpx.Response, state: StreamState, api_key: str, *, idle_timeout: float
) -> AsyncIterator[StreamEvent]:
    """The events of a 200 SSE answer, then StreamFinished; failures raise UpstreamError (key scrubbed)."""
    parser = SSEParser()
    chunks = response.aiter_bytes()
    while not state.done:
        error: UpstreamError | None = None
        try:
            chunk = await chunks.__anext__()
        except StopAsyncIteration:
            break
        except httpx.ReadTimeout as exc:
            error = state.broken(
                f"OpenRouter sent nothing for {human_seconds(idle_timeout)}.",
                cause=exc,
                code="timeout",
            )
        except httpx.TransportError as exc:
            error = state.broken("The connection to OpenRouter broke during the answer.", cause=exc)
        if error is not None:
            raise error.scrubbed(api_key)
        for sse in parser.feed(chunk):
            try:
                events = state.handle(sse)
            except UpstreamError as err:
                raise err.scrubbed(api_key) from None
            for event in events:
                yield event
            if state.done:
                break
    if not state.done:
        parser.close()
        if state.finish_reason is None:
            raise state.broken("The answer stopped before it was complete.").scrubbed(api_key)
    try:
        state.check_not_empty()
    except UpstreamError as err:
        raise err.scrubbed(api_key) from None
    yield StreamFinished(usage=state.usage, finish_reason=state.finish_reason, model=state.model)
