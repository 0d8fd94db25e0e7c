"""Chat completions, streamed or not: the one billed call for text and images (docs/openrouter.md).

Answers are capped in size: text (with reasoning) at ``max_answer_bytes``, plus room for inline images when
the request asks for them. A stream request answered with a plain JSON body is read as if it had streamed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator

import httpx

from backend.openrouter.answers import chat_result
from backend.openrouter.connection import MAX_ERROR_BODY, Connection, read_capped, status_error
from backend.openrouter.errors import UpstreamError, answer_too_large, transport_error, unexpected_answer
from backend.openrouter.results import (
    ChatResult,
    ImageDelta,
    Modality,
    ReasoningDelta,
    StreamEvent,
    StreamFinished,
    StreamStarted,
    TextDelta,
)
from backend.openrouter.stream import StreamState, read_stream

__all__ = ["Chat"]


class Chat:
    """``POST /chat/completions``, whole (:meth:`chat`) or as a stream of events (:meth:`chat_stream`)."""

    def __init__(self, connection: Connection, *, max_answer_bytes: int, max_media_bytes: int) -> None:
        self._connection = connection
        self._max_answer_bytes = max_answer_bytes
        self._max_media_bytes = max_media_bytes

    def _answer_limit(self, body: dict) -> int:
        """Most bytes a chat answer to ``body`` may have: text, plus room for images when it asks for them
        (they come inline, base64-encoded; each is checked against the media limit when stored)."""
        modalities = body.get("modalities")
        wants_images = isinstance(modalities, list) and Modality.IMAGE in modalities
        return self._max_answer_bytes + (2 * self._max_media_bytes if wants_images else 0)

    def _check_text_size(self, result: ChatResult) -> None:
        size = len(result.text.encode()) + len((result.reasoning or "").encode())
        if size > self._max_answer_bytes:
            err = answer_too_large(self._max_answer_bytes, partial_kept=False)
            err.usage = result.usage
            raise err

    async def chat(self, api_key: str, body: dict) -> ChatResult:
        """A non-streamed chat completion. Raises UpstreamError for every failure form, including 200 answers
        that carry an error, a choice-level error, or no content at all."""
        request_body = {key: value for key, value in body.items() if key != "stream"}
        model = body.get("model") if isinstance(body.get("model"), str) else None
        response, payload = await self._connection.json_call(
            "POST",
            "chat/completions",
            api_key,
            context="chat",
            json_body=request_body,
            model=model,
            max_bytes=self._answer_limit(request_body),
        )
        try:
            result = chat_result(payload, response.headers, model=model)
            self._check_text_size(result)
        except UpstreamError as err:
            raise err.scrubbed(api_key) from None
        return result

    def chat_stream(self, api_key: str, body: dict) -> AsyncGenerator[StreamEvent, None]:
        """A streamed chat completion as an async generator of stream events.

        Events: KeepAlive (any time), StreamStarted (once, before the first delta), TextDelta /
        ReasoningDelta / ImageDelta, then StreamFinished. Failures raise UpstreamError; deltas already yielded
        stay with the caller (``output_started`` tells it they exist). Closing the generator (``aclose()``,
        leaving an ``aclosing`` block, cancelling the task) closes the upstream connection at once, which
        stops generation (and billing) at providers that support cancellation.
        """
        return self._chat_stream(api_key, {**body, "stream": True})

    async def _chat_stream(self, api_key: str, body: dict) -> AsyncGenerator[StreamEvent, None]:
        connection = self._connection
        model = body.get("model") if isinstance(body.get("model"), str) else None
        url = connection.url("chat/completions")
        response = await connection.send(
            "POST",
            url,
            api_key,
            json_body=body,
            stream=True,
            accept="text/event-stream",
            timeout=connection.stream_timeout,
            idempotent=False,
        )
        state = StreamState(
            model=model,
            generation_id=response.headers.get("x-generation-id"),
            max_text_bytes=self._max_answer_bytes,
        )
        try:
            if response.status_code != 200:
                error: UpstreamError | None = None
                try:
                    body_bytes = await read_capped(response, MAX_ERROR_BODY)
                    error = status_error(response, body_bytes, model=model, context="chat")
                except httpx.TransportError as exc:
                    error = transport_error(
                        exc, sent=True, idempotent=False, timeout=connection.stream_idle_timeout
                    )
                raise error.scrubbed(api_key)
            content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type == "application/json":
                # Some errors (and some gateways) answer a stream request with a plain JSON body.
                async for event in self._json_instead_of_stream(response, api_key, model, self._answer_limit(body)):
                    yield event
                return
            if content_type == "text/html":
                # A web page (captive portal, proxy, wrong base URL) answered, not OpenRouter: nothing ran.
                raise unexpected_answer(200, "a web page instead of an event stream").scrubbed(api_key)
            reading = read_stream(
                response,
                state,
                api_key,
                idle_timeout=connection.stream_idle_timeout,
                max_event_bytes=self._answer_limit(body),
            )
            async for event in reading:
                yield event
        finally:
            # Closing the response without reading it to the end closes the socket: the upstream sees the
            # abort and stops generating.
            await response.aclose()

    async def _json_instead_of_stream(
        self, response: httpx.Response, api_key: str, model: str | None, max_bytes: int
    ) -> AsyncIterator[StreamEvent]:
        error: UpstreamError | None = None
        result: ChatResult | None = None
        try:
            body = await read_capped(response, max_bytes + 1)
            if len(body) > max_bytes:
                raise answer_too_large(max_bytes, partial_kept=False)
            payload = json.loads(body)
            result = chat_result(payload, response.headers, model=model)
            self._check_text_size(result)
        except (ValueError, UnicodeDecodeError):
            error = unexpected_answer(200, "not JSON")
        except UpstreamError as err:
            error = err
        except httpx.TransportError as exc:
            error = transport_error(
                exc, sent=True, idempotent=False, timeout=self._connection.stream_idle_timeout
            )
        if error is not None or result is None:
            raise (error or unexpected_answer(200, "empty")).scrubbed(api_key)
        yield StreamStarted(upstream_id=result.upstream_id, model=result.model)
        if result.reasoning:
            yield ReasoningDelta(result.reasoning)
        if result.text:
            yield TextDelta(result.text)
        for url in result.images:
            yield ImageDelta(url)
        yield StreamFinished(
            usage=result.usage, finish_reason=result.finish_reason, model=result.model, tool_calls=result.tool_calls
        )
