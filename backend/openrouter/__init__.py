"""OpenRouter: the client, its error type and what it returns."""

from backend.openrouter.client import OpenRouterClient
from backend.openrouter.errors import Disposition, UpstreamError, parse_retry_after
from backend.openrouter.results import (
    ChatResult,
    ImageDelta,
    KeepAlive,
    Modality,
    ReasoningDelta,
    StreamEvent,
    StreamFinished,
    StreamStarted,
    TextDelta,
    Usage,
)

__all__ = [
    "ChatResult",
    "Disposition",
    "ImageDelta",
    "KeepAlive",
    "Modality",
    "OpenRouterClient",
    "ReasoningDelta",
    "StreamEvent",
    "StreamFinished",
    "StreamStarted",
    "TextDelta",
    "UpstreamError",
    "Usage",
    "parse_retry_after",
]
