"""Reading OpenRouter's finished (non-streamed) answers: chat completions and lists."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from backend.openrouter.classification import in_band_error
from backend.openrouter.errors import UpstreamError, empty_response, unexpected_answer
from backend.openrouter.results import ChatResult, Usage

__all__ = ["chat_result", "content_text", "data_list", "image_urls"]

log = logging.getLogger(__name__)


def content_text(content: Any) -> str:
    """Message content as text: a string, or a list of parts (some providers) whose text parts are joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def image_urls(images: Any) -> list[str]:
    """Data URLs from a ``message.images`` / ``delta.images`` list (entries with or without ``type``)."""
    urls: list[str] = []
    if not isinstance(images, list):
        return urls
    for entry in images:
        url: Any = None
        if isinstance(entry, dict):
            image_url = entry.get("image_url")
            url = image_url.get("url") if isinstance(image_url, dict) else image_url
            if url is None:
                url = entry.get("url")
        elif isinstance(entry, str):
            url = entry
        if isinstance(url, str) and url.startswith("data:"):
            urls.append(url)
        elif isinstance(url, str):
            # Images are expected inline; a remote URL is not fetched (it could be anywhere).
            log.warning("Ignoring a non-inline image URL in an OpenRouter answer")
    return urls


def data_list(payload: Any, api_key: str | None) -> list[dict]:
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        raise unexpected_answer(200, "no data list").scrubbed(api_key)
    return [item for item in data if isinstance(item, dict)]


def chat_result(payload: Any, headers: httpx.Headers, *, model: str | None) -> ChatResult:
    """Interpret a non-streamed chat answer that came with HTTP 200."""
    if not isinstance(payload, dict):
        raise unexpected_answer(200, "not a JSON object")
    generation_id = headers.get("x-generation-id")
    usage = Usage.from_payload(payload.get("usage"))
    if "error" in payload and not payload.get("choices"):
        raise in_band_error(
            payload["error"], model=model, context="chat", output_started=False, headers=headers, usage=usage
        )
    answer_model = payload.get("model") if isinstance(payload.get("model"), str) else model
    upstream_id = payload.get("id") if isinstance(payload.get("id"), str) else generation_id
    choices = payload.get("choices")
    extra = {"generation_id": upstream_id} if upstream_id else {}
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise empty_response(extra)
    choice = choices[0]
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    text = content_text(message.get("content"))
    reasoning = message.get("reasoning") if isinstance(message.get("reasoning"), str) else None
    images = image_urls(message.get("images"))
    finish_reason = choice.get("finish_reason") if isinstance(choice.get("finish_reason"), str) else None
    if finish_reason == "error":
        err = in_band_error(
            choice.get("error") or payload.get("error") or {},
            model=answer_model,
            context="chat",
            output_started=bool(text),
            usage=usage,
        )
        err.partial_text = text
        err.metadata.update(extra)
        raise err
    tool_calls = [call for call in message.get("tool_calls") or [] if isinstance(call, dict)]
    if not text and not images and not reasoning and not tool_calls:
        if finish_reason == "content_filter":
            raise UpstreamError(
                "content_blocked",
                "reject",
                "The model's content filter withheld the answer. Rephrase the prompt or pick another model.",
                metadata=extra,
            )
        raise empty_response(extra)
    return ChatResult(
        upstream_id=upstream_id,
        model=answer_model,
        text=text,
        reasoning=reasoning or None,
        images=images,
        usage=usage,
        finish_reason=finish_reason,
        tool_calls=tool_calls,
    )
