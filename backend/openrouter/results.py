"""What OpenRouter answers, as Atelier uses it: usage and cost, finished results and stream events."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ChatResult",
    "GeneratedImage",
    "ImageDelta",
    "ImageResult",
    "KeepAlive",
    "ReasoningDelta",
    "StreamEvent",
    "StreamFinished",
    "StreamStarted",
    "TextDelta",
    "Usage",
    "as_float",
    "as_int",
]


@dataclass(frozen=True)
class Usage:
    """What a generation used and cost, as OpenRouter reported it (``cost`` is in USD credits)."""

    prompt_tokens: int | None
    completion_tokens: int | None
    cost_usd: float | None
    raw: dict

    @classmethod
    def from_payload(cls, payload: Any) -> Usage | None:
        """Build from an OpenRouter ``usage`` object; None when there is none."""
        if not isinstance(payload, dict) or not payload:
            return None
        return cls(
            prompt_tokens=as_int(payload.get("prompt_tokens")),
            completion_tokens=as_int(payload.get("completion_tokens")),
            cost_usd=as_float(payload.get("cost")),
            raw=payload,
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


@dataclass
class GeneratedImage:
    """One image from the ``/images`` endpoint, decoded."""

    data: bytes
    mime: str


@dataclass
class ImageResult:
    """The answer of the ``/images`` endpoint."""

    upstream_id: str | None
    model: str | None
    images: list[GeneratedImage]
    usage: Usage | None


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
    """The stream ended normally; always the last event."""

    usage: Usage | None
    finish_reason: str | None
    model: str | None


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
