"""What OpenRouter answers, as Atelier uses it: usage and cost, finished results and stream events."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "ChatResult",
    "ImageDelta",
    "KeepAlive",
    "Modality",
    "ReasoningDelta",
    "StreamEvent",
    "StreamFinished",
    "StreamStarted",
    "TextDelta",
    "Usage",
    "as_float",
    "as_int",
]


class Modality(StrEnum):
    """What a model takes and makes, in OpenRouter's words (``input_modalities``, ``output_modalities``, a chat
    request's ``modalities``): the ones Atelier asks for. The catalogue is kept per output modality."""

    TEXT = "text"
    IMAGE = "image"
    VIDEO = "video"


@dataclass(frozen=True)
class Usage:
    """What a generation used and cost, as OpenRouter reported it (amounts in USD credits).

    ``cost_usd`` is what the user spent: OpenRouter's charge (``usage.cost``) plus, for bring-your-own-key
    answers (``is_byok``), the provider's charge to the user's own provider account
    (``cost_details.upstream_inference_cost``), which OpenRouter does not include in ``cost``.
    """

    prompt_tokens: int | None
    completion_tokens: int | None
    cost_usd: float | None
    raw: dict
    openrouter_cost_usd: float | None = None
    upstream_cost_usd: float | None = None
    is_byok: bool = False

    @classmethod
    def from_payload(cls, payload: Any) -> Usage | None:
        """Build from an OpenRouter ``usage`` object; None when there is none."""
        if not isinstance(payload, dict) or not payload:
            return None
        openrouter_cost = as_float(payload.get("cost"))
        is_byok = payload.get("is_byok") is True
        details = payload.get("cost_details")
        upstream = as_float(details.get("upstream_inference_cost")) if isinstance(details, dict) else None
        cost = openrouter_cost
        if is_byok and upstream is not None:
            cost = (openrouter_cost or 0.0) + upstream
        return cls(
            prompt_tokens=as_int(payload.get("prompt_tokens")),
            completion_tokens=as_int(payload.get("completion_tokens")),
            cost_usd=cost,
            raw=payload,
            openrouter_cost_usd=openrouter_cost,
            upstream_cost_usd=upstream,
            is_byok=is_byok,
        )


@dataclass
class ChatResult:
    """A finished, non-streamed chat completion."""

    upstream_id: str | None
    model: str | None
    text: str
    reasoning: str | None
    images: list[str]  # data URLs
    usage: Usage | None
    finish_reason: str | None
    tool_calls: list[dict] = field(default_factory=list)  # OpenAI shape: {id, type, function{name, arguments}}






@dataclass
class StreamStarted:
    """The stream is open; yielded once, with the generation id (``X-Generation-Id``) and model."""

    upstream_id: str | None
    model: str | None


@dataclass
class KeepAlive:
    """OpenRouter sent a keep-alive comment: the request is still being worked on."""


@dataclass
class TextDelta:
    text: str


@dataclass
class ReasoningDelta:
    text: str


@dataclass
class ImageDelta:
    data_url: str


@dataclass
class StreamFinished:
    """The stream ended normally; always the last event. ``tool_calls`` holds the assembled tool calls."""

    usage: Usage | None
    finish_reason: str | None
    model: str | None
    tool_calls: list[dict] = field(default_factory=list)


StreamEvent = StreamStarted | KeepAlive | TextDelta | ReasoningDelta | ImageDelta | StreamFinished


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def as_float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
