"""Reading a streamed chat answer: SSE events become stream events, in-band errors become UpstreamError."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from backend.openrouter.answers import content_text, image_urls
from backend.openrouter.classification import in_band_error
from backend.openrouter.errors import UpstreamError, answer_too_large, empty_response, human_seconds, shorten
from backend.openrouter.results import (
    ImageDelta,
    KeepAlive,
    ReasoningDelta,
    StreamEvent,
    StreamFinished,
    StreamStarted,
    TextDelta,
    Usage,
    as_int,
)
from backend.openrouter.sse import SSEEvent, SSEParser

__all__ = ["StreamState", "read_stream"]


class StreamState:
    """What a chat stream has produced so far; turns SSE events into stream events and errors.

    ``max_text_bytes`` caps the answer's text (content and reasoning, UTF-8): past it the stream fails with
    ``answer_too_large`` and what arrived before stays with the caller.
    """

    def __init__(self, *, model: str | None, generation_id: str | None, max_text_bytes: int) -> None:
        self.model = model
        self.generation_id = generation_id
        self.max_text_bytes = max_text_bytes
        self.text_bytes = 0
        self.started = False
        self.output_started = False
        self.done = False
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self._tool_calls: dict[int, dict[str, Any]] = {}

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        """The tool calls assembled from their fragments, in index order."""
        return [self._tool_calls[index] for index in sorted(self._tool_calls)]

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
        # Usage first: an error chunk may carry it, and then the failure was billed.
        usage = Usage.from_payload(chunk.get("usage"))
        if usage is not None:
            self.usage = usage
        if "error" in chunk:
            raise self._error(chunk["error"])
        events: list[StreamEvent] = []
        if isinstance(chunk.get("model"), str):
            self.model = chunk["model"]
        if not self.generation_id and isinstance(chunk.get("id"), str):
            self.generation_id = chunk["id"]
        produced = False
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
            reasoning = reasoning if isinstance(reasoning, str) else ""
            text = content_text(delta.get("content"))
            self._count_text(len(reasoning.encode()) + len(text.encode()))
            if reasoning:
                events.append(ReasoningDelta(reasoning))
            if text:
                events.append(TextDelta(text))
            produced = self._add_tool_calls(delta.get("tool_calls")) or produced
            events.extend(ImageDelta(url) for url in image_urls(delta.get("images")))
            if isinstance(choice.get("finish_reason"), str):
                self.finish_reason = choice["finish_reason"]
        if not self.started and (events or choices):
            self.started = True
            events.insert(0, StreamStarted(upstream_id=self.generation_id, model=self.model))
        if produced or any(not isinstance(e, StreamStarted) for e in events):
            self.output_started = True
        return events

    def _count_text(self, size: int) -> None:
        self.text_bytes += size
        if self.text_bytes > self.max_text_bytes:
            err = answer_too_large(self.max_text_bytes, partial_kept=self.output_started)
            err.usage = self.usage
            if self.generation_id:
                err.metadata["generation_id"] = self.generation_id
            raise err

    def _add_tool_calls(self, calls: Any) -> bool:
        """Merge tool-call fragments (``index``, ``id``, ``function.name``, ``function.arguments`` pieces);
        True when there were any: a tool call is output, as much as text is."""
        if not isinstance(calls, list):
            return False
        added = False
        for fragment in calls:
            if not isinstance(fragment, dict):
                continue
            index = as_int(fragment.get("index"))
            index = len(self._tool_calls) if index is None else index
            call = self._tool_calls.setdefault(
                index, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
            )
            if isinstance(fragment.get("id"), str):
                call["id"] = fragment["id"]
            if isinstance(fragment.get("type"), str):
                call["type"] = fragment["type"]
            function = fragment.get("function") if isinstance(fragment.get("function"), dict) else {}
            if isinstance(function.get("name"), str):
                call["function"]["name"] += function["name"]
            if isinstance(function.get("arguments"), str):
                self._count_text(len(function["arguments"].encode()))
                call["function"]["arguments"] += function["arguments"]
            added = True
        return added

    def _error(self, error: Any) -> UpstreamError:
        err = in_band_error(
            error, model=self.model, context="chat", output_started=self.output_started, usage=self.usage
        )
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
                usage=self.usage,
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
    response: httpx.Response, state: StreamState, api_key: str, *, idle_timeout: float, max_event_bytes: int
) -> AsyncIterator[StreamEvent]:
    """The events of a 200 SSE answer, then StreamFinished; failures raise UpstreamError (key scrubbed).

    ``max_event_bytes`` bounds what is buffered for one event: a line that never ends is not held in memory
    whole.
    """
    parser = SSEParser()
    chunks = response.aiter_bytes()
    pending = 0  # bytes received since the last complete event (roughly: what the parser holds)
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
        events_in_chunk = parser.feed(chunk)
        pending = len(chunk) if events_in_chunk else pending + len(chunk)
        if pending > max_event_bytes:
            err = answer_too_large(max_event_bytes, partial_kept=state.output_started)
            err.usage = state.usage
            raise err.scrubbed(api_key)
        for sse in events_in_chunk:
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
    yield StreamFinished(
        usage=state.usage, finish_reason=state.finish_reason, model=state.model, tool_calls=state.tool_calls
    )
