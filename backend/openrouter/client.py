"""The OpenRouter client: the only code in Atelier that talks to OpenRouter.

Everything that can go wrong on the wire is turned into one exception type, :class:`UpstreamError`, whose
``code`` says what happened, whose ``disposition`` says whether the outbox may send the request again
(``retry``: OpenRouter cannot have started or billed it; ``reject``: sending it again will not help;
``unknown``: it may have reached a model), and whose ``message`` tells the user what to do.

Security rules kept here (see SECURITY.md §12, §14): the API key travels only in the ``Authorization`` header
and only to the origin of ``base_url``; redirects are never followed for API calls; certificates are verified
against the OS trust store; the key never appears in an exception's text, ``repr`` or metadata.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import math
import ssl
import time
import urllib.parse
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx
import truststore

from backend.core.redaction import redact
from backend.core.settings import DEFAULT_BASE_URL
from backend.openrouter.sse import SSEEvent, SSEParser

__all__ = [
    "DEFAULT_BASE_URL",
    "ChatResult",
    "GeneratedImage",
    "ImageDelta",
    "ImageResult",
    "KeepAlive",
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

log = logging.getLogger(__name__)


# Error bodies are read for their message only; a misbehaving server must not make us buffer megabytes.
_MAX_ERROR_BODY = 256 * 1024
# Writes of large requests (images as data URLs) may be slow on a poor uplink; this bounds each write call.
_WRITE_TIMEOUT = 60.0
_MAX_DOWNLOAD_REDIRECTS = 5
_MESSAGE_DETAIL_LIMIT = 300

Disposition = Literal["retry", "reject", "unknown"]

_REJECT_CODES = frozenset(
    {
        "invalid_key",
        "insufficient_credits",
        "content_blocked",
        "model_not_found",
        "context_too_long",
        "bad_request",
    }
)


# ----------------------------------------------------------------------------------------------------
# Results and stream events


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
            prompt_tokens=_as_int(payload.get("prompt_tokens")),
            completion_tokens=_as_int(payload.get("completion_tokens")),
            cost_usd=_as_float(payload.get("cost")),
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


# ----------------------------------------------------------------------------------------------------
# The error


class UpstreamError(Exception):
    """Anything that went wrong talking to OpenRouter, classified for the outbox and explained for the user.

    ``partial_text`` holds content that came with a failed non-streamed answer (a choice-level error); for
    streams the caller already has the deltas, and ``output_started`` says whether any had arrived.
    """

    def __init__(
        self,
        code: str,
        disposition: Disposition,
        message: str,
        *,
        upstream_status: int | None = None,
        retry_after: float | None = None,
        output_started: bool = False,
        metadata: dict | None = None,
        partial_text: str = "",
    ) -> None:
        super().__init__(message)
        self.code = code
        self.disposition: Disposition = disposition
        self.message = message
        self.upstream_status = upstream_status
        self.retry_after = retry_after
        self.output_started = output_started
        self.metadata: dict = metadata if metadata is not None else {}
        self.partial_text = partial_text

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return (
            f"UpstreamError(code={self.code!r}, disposition={self.disposition!r}, "
            f"upstream_status={self.upstream_status!r}, message={self.message!r})"
        )

    def scrubbed(self, secret: str | None) -> UpstreamError:
        """Remove every occurrence of ``secret`` from the message, metadata and partial text (in place)."""
        if secret:
            self.message = redact(self.message, [secret])
            self.args = (self.message,)
            self.metadata = redact(self.metadata, [secret])
            self.partial_text = redact(self.partial_text, [secret])
        return self


# ----------------------------------------------------------------------------------------------------
# Error classification


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: a number of seconds or an HTTP-date. None if unusable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive result means the zone was missing
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _rate_limit_reset(value: Any) -> float | None:
    """``X-RateLimit-Reset`` as epoch seconds; OpenRouter has been seen sending epoch milliseconds."""
    number = _as_float(value)
    if number is None or number <= 0:
        return None
    return number / 1000.0 if number > 1e11 else number


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _shorten(text: str, limit: int = _MESSAGE_DETAIL_LIMIT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _raw_detail(raw: Any) -> str | None:
    """A readable message from a provider's ``metadata.raw``: a string, a JSON string or an object."""
    if isinstance(raw, str):
        stripped = raw.strip()
        if stripped[:1] in ("{", "["):
            with contextlib.suppress(ValueError):
                return _raw_detail(json.loads(stripped))
        return stripped or None
    if isinstance(raw, dict):
        for key in ("error", "message", "detail", "error_message"):
            inner = raw.get(key)
            if isinstance(inner, str) and inner.strip():
                return inner.strip()
            if isinstance(inner, dict | list):
                found = _raw_detail(inner)
                if found:
                    return found
        return None
    if isinstance(raw, list):
        for item in raw:
            found = _raw_detail(item)
            if found:
                return found
    return None


_CONTEXT_TYPES = {"context_length_exceeded", "max_tokens_exceeded", "token_limit_exceeded", "string_too_long"}
_BLOCKED_TYPES = {"content_policy_violation", "refusal"}
_IMAGE_INPUT_TYPES = {
    "invalid_image",
    "image_too_large",
    "image_too_small",
    "unsupported_image_format",
    "image_not_found",
    "image_download_failed",
}
_MODEL_AVAILABILITY = {
    "model_not_found",
    "wrong_endpoint",
    "no_endpoints",
    "model_deprecated",
    "model_unavailable_upstream",
    "region_restricted",
    "privacy_restricted",
    "constraint_filtered",
    "free_variant_ended",
}


@dataclass
class _ErrorInfo:
    """The parts of an OpenRouter error object that matter, whatever shape it came in."""

    status: int | None = None
    message: str = ""
    error_type: str | None = None
    availability: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    detail: str | None = None  # a better message from metadata.raw

    @classmethod
    def parse(cls, error: Any, http_status: int | None) -> _ErrorInfo:
        info = cls(status=http_status)
        if isinstance(error, str):
            info.message = error
            return info
        if not isinstance(error, dict):
            return info
        code = error.get("code")
        code_int = _as_int(code)
        if http_status is None or http_status == 200:
            # In-band and 200-with-error bodies: the real status is in the body (code or http_status).
            info.status = code_int if code_int is not None else _as_int(error.get("http_status"))
        if isinstance(code, str) and code_int is None:
            info.metadata["upstream_code"] = code
        if isinstance(error.get("message"), str):
            info.message = error["message"].strip()
        metadata = error.get("metadata")
        if isinstance(metadata, dict):
            info.metadata.update(metadata)
        availability = error.get("availability")
        if isinstance(availability, dict):
            info.availability = availability
        error_type = error.get("error_type")
        if not isinstance(error_type, str) and isinstance(metadata, dict):
            error_type = metadata.get("error_type")
        info.error_type = error_type if isinstance(error_type, str) else None
        if isinstance(metadata, dict) and "raw" in metadata:
            info.detail = _raw_detail(metadata["raw"])
        return info

    def describe(self) -> str:
        """The upstream's own words, for inclusion in our message."""
        parts = [p for p in (self.message, self.detail) if p]
        if len(parts) == 2 and parts[1] in parts[0]:
            parts = parts[:1]
        provider = self.metadata.get("provider_name")
        text = " — ".join(parts)
        if provider and isinstance(provider, str) and text:
            text = f"{text} ({provider})"
        return _shorten(text)


def _classify(info: _ErrorInfo, *, model: str | None, context: str) -> tuple[str, Disposition, str]:
    """(code, disposition, message) for an OpenRouter error. ``context`` names the endpoint family."""
    status = info.status
    etype = info.error_type
    avail_code = info.availability.get("code") if isinstance(info.availability.get("code"), str) else None
    said = info.describe()
    said_suffix = f" OpenRouter said: {said}" if said else ""
    model_name = model
    requested = info.availability.get("requested_models")
    if isinstance(requested, list) and requested and isinstance(requested[0], str):
        model_name = requested[0]
    model_ref = f"'{model_name}'" if model_name else "this model"

    if status == 401 or etype == "authentication":
        return (
            "invalid_key",
            "reject",
            "OpenRouter rejected the API key (revoked or mistyped). Paste a new key in Settings.",
        )
    if status == 402 or etype == "payment_required":
        return (
            "insufficient_credits",
            "reject",
            "Not enough OpenRouter credits for this request. Add credits at https://openrouter.ai/credits "
            "or lower max tokens.",
        )
    if etype in _CONTEXT_TYPES:
        return (
            "context_too_long",
            "reject",
            f"The prompt is too long for {model_ref}. Shorten it, lower max tokens, or pick a model with a "
            f"larger context.{said_suffix}",
        )
    if etype in _BLOCKED_TYPES or (status == 403 and etype != "permission_denied" and avail_code is None):
        reasons = info.metadata.get("reasons")
        reason_text = ", ".join(r for r in reasons if isinstance(r, str)) if isinstance(reasons, list) else ""
        because = f" (flagged: {reason_text})" if reason_text else ""
        return (
            "content_blocked",
            "reject",
            f"The request was blocked by moderation or a guardrail{because}. Rephrase the prompt or pick "
            f"another model.{said_suffix}",
        )
    if avail_code in _MODEL_AVAILABILITY and not info.availability.get("retryable"):
        return "model_not_found", "reject", _availability_message(avail_code, model_ref, info)
    not_a_model = "not a valid model" in info.message.lower()
    if not_a_model or (status == 404 and context in ("chat", "image", "video_submit") and said):
        return (
            "model_not_found",
            "reject",
            f"OpenRouter does not know the model {model_ref}. Pick another model."
            + ("" if not_a_model else said_suffix),
        )
    if status == 429 or etype == "rate_limit_exceeded" or avail_code == "capacity_exhausted":
        return (
            "rate_limited",
            "retry",
            f"OpenRouter is rate limiting requests; this one will be sent again automatically.{said_suffix}",
        )
    if status in (408, 504, 524) or etype == "timeout":
        return (
            "timeout",
            "retry",
            f"OpenRouter or the model provider timed out; the request will be sent again.{said_suffix}",
        )
    if status is None or status >= 500 or info.availability.get("retryable") is True:
        return (
            "upstream_unavailable",
            "retry",
            f"The model provider is unavailable right now; the request will be sent again automatically."
            f"{said_suffix}",
        )
    if etype in _IMAGE_INPUT_TYPES:
        return (
            "bad_request",
            "reject",
            f"An attached image was not accepted. Check the attachment.{said_suffix}",
        )
    if status == 413 or etype == "payload_too_large":
        return (
            "bad_request",
            "reject",
            f"The request is too large for OpenRouter. Remove or shrink attachments.{said_suffix}",
        )
    if etype == "permission_denied":
        return (
            "bad_request",
            "reject",
            f"This API key is not allowed to make this request. Check the key's settings on OpenRouter."
            f"{said_suffix}",
        )
    return (
        "bad_request",
        "reject",
        f"OpenRouter refused the request (HTTP {status}). Check the model and its settings.{said_suffix}",
    )


def _availability_message(avail_code: str, model_ref: str, info: _ErrorInfo) -> str:
    fallbacks = info.availability.get("fallback_models")
    suggestion = ""
    if isinstance(fallbacks, list):
        names = [f for f in fallbacks if isinstance(f, str)][:3]
        if names:
            suggestion = " Suggested instead: " + ", ".join(names) + "."
    text = {
        "model_not_found": f"OpenRouter does not know the model {model_ref}. Pick another model.",
        "wrong_endpoint": f"The model {model_ref} cannot produce this kind of output. Pick another model.",
        "no_endpoints": f"No provider currently serves {model_ref} with these settings. Pick another model.",
        "model_deprecated": f"The model {model_ref} has been retired. Pick another model.",
        "model_unavailable_upstream": f"The model {model_ref} is no longer offered by its provider. "
        "Pick another model.",
        "region_restricted": f"The model {model_ref} is not available in your region. Pick another model.",
        "privacy_restricted": f"Your OpenRouter privacy settings exclude every provider of {model_ref}. "
        "Change them at https://openrouter.ai/settings/privacy or pick another model.",
        "constraint_filtered": f"No provider of {model_ref} supports the requested parameters. Change the "
        "parameters or pick another model.",
        "free_variant_ended": f"The free variant {model_ref} has ended. Pick the paid model or another one.",
    }[avail_code]
    return text + suggestion


def _error_from_info(
    info: _ErrorInfo,
    *,
    model: str | None,
    context: str,
    headers: Mapping[str, str] | None = None,
    extra: dict | None = None,
) -> UpstreamError:
    code, disposition, message = _classify(info, model=model, context=context)
    metadata: dict[str, Any] = {}
    if info.message:
        metadata["upstream_message"] = info.message
    if info.error_type:
        metadata["error_type"] = info.error_type
    if info.detail:
        metadata["provider_detail"] = info.detail
    if info.availability:
        metadata["availability"] = info.availability
    for key in ("provider_name", "provider_code", "reasons", "flagged_input", "model_slug", "upstream_code"):
        if key in info.metadata:
            metadata[key] = info.metadata[key]
    retry_after = parse_retry_after(headers.get("retry-after")) if headers is not None else None
    if retry_after is None:
        retry_after = _as_float(info.availability.get("retry_after"))
        if retry_after is not None:
            retry_after = max(0.0, retry_after)
    limit_headers: dict[str, Any] = {}
    nested = info.metadata.get("headers")
    if isinstance(nested, dict):
        limit_headers.update({str(k).lower(): v for k, v in nested.items()})
    if headers is not None:
        for name in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"):
            if name in headers:
                limit_headers[name] = headers[name]
    if limit_headers:
        metadata["rate_limit"] = {
            "limit": _as_int(limit_headers.get("x-ratelimit-limit")),
            "remaining": _as_int(limit_headers.get("x-ratelimit-remaining")),
            "reset_at": _rate_limit_reset(limit_headers.get("x-ratelimit-reset")),
        }
    if headers is not None and headers.get("x-generation-id"):
        metadata["generation_id"] = headers["x-generation-id"]
    if extra:
        metadata.update(extra)
    if retry_after is not None and disposition == "retry":
        message = f"{message} Next try in about {_human_seconds(retry_after)}."
    return UpstreamError(
        code,
        disposition,
        message,
        upstream_status=info.status,
        retry_after=retry_after,
        metadata=metadata,
    )


def _human_seconds(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{round(seconds / 3600, 1):g} h"


def _error_from_http(
    status: int, headers: httpx.Headers, body: bytes, *, model: str | None, context: str
) -> UpstreamError:
    """Map a non-success HTTP answer (JSON error envelope, bare JSON, HTML or nothing) to an UpstreamError."""
    payload: Any = None
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        payload = json.loads(body) if body else None
    if isinstance(payload, dict) and "error" in payload:
        info = _ErrorInfo.parse(payload["error"], status)
    elif isinstance(payload, dict) and isinstance(payload.get("message"), str):
        info = _ErrorInfo(status=status, message=payload["message"])
    else:
        info = _ErrorInfo(status=status)
        if status == 404:
            # A web page, not the API: the base URL is wrong (or a proxy answered).
            return UpstreamError(
                "bad_request",
                "reject",
                "The OpenRouter address answered 'not found' with a web page instead of the API. Check the "
                "OpenRouter base URL in Settings.",
                upstream_status=status,
                metadata={"content_type": headers.get("content-type", "")},
            )
    info.status = status  # the real HTTP status wins over whatever the body says
    if status == 404 and context == "video_poll":
        return UpstreamError(
            "bad_request",
            "reject",
            "OpenRouter no longer knows this video job; it may have expired. Start the video again.",
            upstream_status=status,
            metadata={"upstream_message": info.message} if info.message else {},
        )
    return _error_from_info(info, model=model, context=context, headers=headers)


def _in_band_error(
    error: Any,
    *,
    model: str | None,
    context: str,
    output_started: bool,
    headers: Mapping[str, str] | None = None,
) -> UpstreamError:
    """An error delivered inside a 200 answer (body, choice or stream chunk)."""
    info = _ErrorInfo.parse(error, None)
    err = _error_from_info(info, model=model, context=context, headers=headers)
    if output_started:
        # The model was producing output: it ran and billed. Never send again on our own.
        said = info.describe()
        return UpstreamError(
            "stream_broken",
            "reject",
            "The answer was cut off by an error before it was complete; the part received so far is kept."
            + (f" OpenRouter said: {said}" if said else ""),
            upstream_status=err.upstream_status,
            output_started=True,
            metadata={**err.metadata, "upstream_error_code": err.code},
        )
    return err


def _transport_error(exc: Exception, *, sent: bool, idempotent: bool, timeout: float | None) -> UpstreamError:
    """Map an httpx exception. ``sent``: the request may have been fully written before it happened."""
    cause = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    metadata = {"cause": _shorten(cause)}
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return UpstreamError(
            "bad_request",
            "reject",
            "The OpenRouter base URL is not a valid http(s) address. Check it in Settings.",
            metadata=metadata,
        )
    if _is_tls_error(exc):
        return UpstreamError(
            "network",
            "retry",
            "The secure connection to OpenRouter could not be verified. If your network inspects TLS "
            "traffic, ask your IT team to install its certificate in the system trust store. The request is "
            "kept and will be sent when the connection works.",
            metadata={**metadata, "tls": True},
        )
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout | httpx.ProxyError) or (
        not sent and isinstance(exc, httpx.TransportError)
    ):
        return UpstreamError(
            "network",
            "retry",
            "OpenRouter cannot be reached. The request is kept and will be sent when the connection is back.",
            metadata=metadata,
        )
    if isinstance(exc, httpx.WriteError | httpx.WriteTimeout):
        # The request body did not get out completely, so no model can have started on it.
        return UpstreamError(
            "network",
            "retry",
            "The connection to OpenRouter broke while sending the request. It will be sent again.",
            metadata=metadata,
        )
    disposition: Disposition = "retry" if idempotent else "unknown"
    if isinstance(exc, httpx.ReadTimeout):
        waited = f" within {_human_seconds(timeout)}" if timeout else ""
        return UpstreamError(
            "timeout",
            disposition,
            f"OpenRouter did not answer{waited}. The request may still have been processed.",
            metadata=metadata,
        )
    return UpstreamError(
        "network",
        disposition,
        "The connection to OpenRouter was lost after the request was sent; it may have been processed.",
        metadata=metadata,
    )


def _is_tls_error(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLError | ssl.CertificateError):
            return True
        current = current.__cause__ or current.__context__
    text = str(exc)
    return "CERTIFICATE_VERIFY_FAILED" in text or "SSL:" in text


# ----------------------------------------------------------------------------------------------------
# Response parsing helpers


def _content_text(content: Any) -> str:
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


def _image_urls(images: Any) -> list[str]:
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


def _sniff_image_mime(data: bytes) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data.lstrip()[:5] in (b"<?xml", b"<svg ") or data.lstrip()[:4] == b"<svg":
        return "image/svg+xml"
    return "application/octet-stream"


def _empty_response(extra: dict | None = None) -> UpstreamError:
    return UpstreamError(
        "empty_response",
        "retry",
        "The model returned an empty answer (this happens when a model is starting up). The request will be "
        "sent again.",
        metadata=extra or {},
    )


def _unexpected_answer(status: int, what: str) -> UpstreamError:
    return UpstreamError(
        "upstream_error",
        "retry",
        f"OpenRouter sent an answer Atelier does not understand ({what}). The request will be sent again.",
        upstream_status=status,
    )


# ----------------------------------------------------------------------------------------------------
# The client


class OpenRouterClient:
    """An async OpenRouter client with one connection pool for its whole life; close it with ``aclose()``."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        connect_timeout: float = 15,
        read_timeout: float = 600,
        stream_idle_timeout: float = 180,
        proxy: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        app_url: str = "https://github.com/atelier-studio/atelier",
        app_title: str = "Atelier",
        categories: str = "creative-writing,image-gen",
    ) -> None:
        base = httpx.URL(base_url.rstrip("/") + "/")
        if base.scheme not in ("http", "https") or not base.host:
            raise ValueError("The OpenRouter base URL must be an http(s) URL")
        self._base = base
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._stream_idle_timeout = stream_idle_timeout
        self._timeout = httpx.Timeout(
            connect=connect_timeout, read=read_timeout, write=_WRITE_TIMEOUT, pool=connect_timeout
        )
        self._stream_timeout = httpx.Timeout(
            connect=connect_timeout, read=stream_idle_timeout, write=_WRITE_TIMEOUT, pool=connect_timeout
        )
        if ssl_context is None:
            # The OS trust store, so TLS-inspecting corporate proxies work once IT installs their CA.
            ssl_context = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self._http = httpx.AsyncClient(
            timeout=self._timeout,
            follow_redirects=False,
            verify=ssl_context,
            proxy=proxy,
            transport=transport,
            headers={
                "HTTP-Referer": app_url,
                "X-OpenRouter-Title": app_title,
                "X-Title": app_title,
                "X-OpenRouter-Categories": categories,
                "User-Agent": f"{app_title} ({app_url})",
            },
        )

    @property
    def base_url(self) -> str:
        """The API base URL (no trailing slash)."""
        return str(self._base).rstrip("/")

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> OpenRouterClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ---- URLs and requests ----

    def _url(self, path_or_url: str) -> httpx.URL:
        """Resolve an API path ("key", "/api/v1/videos/x") or an absolute URL; refuse anything but http(s)."""
        prefix = "/api/v1/"
        if path_or_url.startswith(prefix) and self._base.path.endswith(prefix):
            # OpenRouter's root-relative links ("/api/v1/videos/…") keep a gateway's path prefix when the
            # base URL is not OpenRouter's own (e.g. https://gateway.example/openrouter/api/v1).
            path_or_url = path_or_url[len(prefix) :]
        url = self._base.join(path_or_url)  # absolute URLs replace the base, as in a browser
        if url.scheme not in ("http", "https") or not url.host:
            raise UpstreamError(
                "bad_request",
                "reject",
                "OpenRouter returned a link that is not an http(s) address; it was not opened.",
                metadata={"scheme": url.scheme},
            )
        return url

    def _same_origin(self, url: httpx.URL) -> bool:
        return (url.scheme, url.host, url.port) == (self._base.scheme, self._base.host, self._base.port)

    def _headers(
        self, url: httpx.URL, api_key: str | None, accept: str = "application/json"
    ) -> dict[str, str]:
        headers = {"Accept": accept}
        # The key goes only to the configured OpenRouter origin, never to a host a response pointed us at.
        if api_key and self._same_origin(url):
            headers["Authorization"] = f"Bearer {api_key}"
        return headers

    async def _send(
        self,
        method: str,
        url: httpx.URL,
        api_key: str | None,
        *,
        json_body: dict | None = None,
        params: dict | None = None,
        stream: bool = False,
        accept: str = "application/json",
        timeout: httpx.Timeout | None = None,
        idempotent: bool,
    ) -> httpx.Response:
        request = self._http.build_request(
            method,
            url,
            params=params,
            json=json_body,
            headers=self._headers(url, api_key, accept),
            timeout=timeout or self._timeout,
        )
        error: UpstreamError | None = None
        try:
            return await self._http.send(request, stream=stream)
        except httpx.TransportError as exc:
            read = (timeout or self._timeout).read
            # httpx sends the whole request before it reads: a read-side failure means it went out.
            sent = isinstance(exc, httpx.ReadError | httpx.ReadTimeout | httpx.RemoteProtocolError)
            error = _transport_error(exc, sent=sent, idempotent=idempotent, timeout=read)
        # Raised outside the except block so the httpx exception (which holds the request and its headers)
        # is not chained to our error.
        raise error.scrubbed(api_key)

    async def _json_call(
        self,
        method: str,
        path_or_url: str,
        api_key: str | None,
        *,
        context: str,
        json_body: dict | None = None,
        params: dict | None = None,
        model: str | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> tuple[httpx.Response, Any]:
        """Send a request, read the whole answer, raise UpstreamError unless it is ``ok`` JSON."""
        url = self._url(path_or_url)
        idempotent = method == "GET"
        response = await self._send(
            method, url, api_key, json_body=json_body, params=params, stream=True, idempotent=idempotent
        )
        error: UpstreamError | None = None
        payload: Any = None
        try:
            if response.status_code in ok:
                body = await response.aread()
                try:
                    payload = json.loads(body)
                except (ValueError, UnicodeDecodeError):
                    error = _unexpected_answer(response.status_code, "not JSON")
            else:
                body = await _read_capped(response, _MAX_ERROR_BODY)
                error = self._status_error(response, body, model=model, context=context)
        except httpx.TransportError as exc:
            error = _transport_error(exc, sent=True, idempotent=idempotent, timeout=self._read_timeout)
        finally:
            await response.aclose()
        if error is not None:
            raise error.scrubbed(api_key)
        return response, payload

    def _status_error(
        self, response: httpx.Response, body: bytes, *, model: str | None, context: str
    ) -> UpstreamError:
        if response.is_redirect:
            target = httpx.URL(response.headers.get("location", ""))
            return UpstreamError(
                "network",
                "retry",
                "OpenRouter's address answered with a redirect"
                + (f" to {target.host}" if target.host else "")
                + ", which Atelier does not follow. A captive portal or proxy may be intercepting the "
                "connection, or the OpenRouter base URL in Settings is wrong.",
                upstream_status=response.status_code,
            )
        return _error_from_http(response.status_code, response.headers, body, model=model, context=context)

    # ---- account and catalogue ----

    async def probe(self) -> bool:
        """Is OpenRouter reachable? Any HTTP answer counts; connection failures and timeouts do not."""
        url = self._url("key")
        timeout = httpx.Timeout(
            connect=self._connect_timeout, read=self._connect_timeout, write=10, pool=self._connect_timeout
        )
        try:
            response = await self._http.send(
                self._http.build_request("GET", url, headers=self._headers(url, None), timeout=timeout),
                stream=True,
            )
        except httpx.TransportError:
            return False
        await response.aclose()
        return True

    async def get_key_info(self, api_key: str) -> dict:
        """``GET /key``: the key's ``data`` object (label, limit, usage, is_free_tier, …)."""
        _, payload = await self._json_call("GET", "key", api_key, context="key")
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, dict):
            raise _unexpected_answer(200, "no key data").scrubbed(api_key)
        return data

    async def exchange_oauth_code(self, code: str, verifier: str) -> str:
        """``POST /auth/keys`` (PKCE, no Authorization header): the user-controlled key for ``code``."""
        _, payload = await self._json_call(
            "POST", "auth/keys", None, context="oauth",
            json_body={"code": code, "code_verifier": verifier, "code_challenge_method": "S256"},
        )
        key = payload.get("key") if isinstance(payload, dict) else None
        if not isinstance(key, str) or not key:
            raise _unexpected_answer(200, "no key in the sign-in answer")
        return key

    async def list_models(self, output: str = "text", api_key: str | None = None) -> list[dict]:
        """``GET /models?output_modalities=<output>``: the model catalogue entries."""
        _, payload = await self._json_call(
            "GET", "models", api_key, context="models", params={"output_modalities": output}
        )
        return _data_list(payload, api_key)

    async def video_models(self, api_key: str | None = None) -> list[dict]:
        """``GET /videos/models``: video models with their supported resolutions, durations, …"""
        _, payload = await self._json_call("GET", "videos/models", api_key, context="models")
        return _data_list(payload, api_key)

    # ---- chat ----

    async def chat(self, api_key: str, body: dict) -> ChatResult:
        """A non-streamed chat completion. Raises UpstreamError for every failure form, including 200 answers
        that carry an error, a choice-level error, or no content at all."""
        request_body = {key: value for key, value in body.items() if key != "stream"}
        model = body.get("model") if isinstance(body.get("model"), str) else None
        response, payload = await self._json_call(
            "POST", "chat/completions", api_key, context="chat", json_body=request_body, model=model
        )
        try:
            return _chat_result(payload, response.headers, model=model)
        except UpstreamError as err:
            raise err.scrubbed(api_key) from None

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
        model = body.get("model") if isinstance(body.get("model"), str) else None
        url = self._url("chat/completions")
        response = await self._send(
            "POST",
            url,
            api_key,
            json_body=body,
            stream=True,
            accept="text/event-stream",
            timeout=self._stream_timeout,
            idempotent=False,
        )
        state = _StreamState(model=model, generation_id=response.headers.get("x-generation-id"))
        try:
            if response.status_code != 200:
                error: UpstreamError | None = None
                try:
                    body_bytes = await _read_capped(response, _MAX_ERROR_BODY)
                    error = self._status_error(response, body_bytes, model=model, context="chat")
                except httpx.TransportError as exc:
                    error = _transport_error(
                        exc, sent=True, idempotent=False, timeout=self._stream_idle_timeout
                    )
                raise error.scrubbed(api_key)
            content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type == "application/json":
                # Some errors (and some gateways) answer a stream request with a plain JSON body.
                async for event in self._json_instead_of_stream(response, api_key, model):
                    yield event
                return
            async for event in self._read_stream(response, state, api_key):
                yield event
        finally:
            # Closing the response without reading it to the end closes the socket: the upstream sees the
            # abort and stops generating.
            await response.aclose()

    async def _json_instead_of_stream(
        self, response: httpx.Response, api_key: str, model: str | None
    ) -> AsyncIterator[StreamEvent]:
        error: UpstreamError | None = None
        result: ChatResult | None = None
        try:
            body = await _read_capped(response, 64 * 1024 * 1024)
            payload = json.loads(body)
            result = _chat_result(payload, response.headers, model=model)
        except (ValueError, UnicodeDecodeError):
            error = _unexpected_answer(200, "not JSON")
        except UpstreamError as err:
            error = err
        except httpx.TransportError as exc:
            error = _transport_error(exc, sent=True, idempotent=False, timeout=self._stream_idle_timeout)
        if error is not None or result is None:
            raise (error or _unexpected_answer(200, "empty")).scrubbed(api_key)
        yield StreamStarted(upstream_id=result.upstream_id, model=result.model)
        if result.reasoning:
            yield ReasoningDelta(result.reasoning)
        if result.text:
            yield TextDelta(result.text)
        for url in result.images:
            yield ImageDelta(url)
        yield StreamFinished(usage=result.usage, finish_reason=result.finish_reason, model=result.model)

    async def _read_stream(
        self, response: httpx.Response, state: _StreamState, api_key: str
    ) -> AsyncIterator[StreamEvent]:
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
                    f"OpenRouter sent nothing for {_human_seconds(self._stream_idle_timeout)}.",
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

    # ---- images and video ----

    async def create_image(self, api_key: str, body: dict) -> ImageResult:
        """``POST /images``: generate images; ``b64_json`` is decoded to bytes with its media type."""
        request_body = {key: value for key, value in body.items() if key != "stream"}
        model = body.get("model") if isinstance(body.get("model"), str) else None
        response, payload = await self._json_call(
            "POST", "images", api_key, context="image", json_body=request_body, model=model
        )
        try:
            return _image_result(payload, response.headers, model=model)
        except UpstreamError as err:
            raise err.scrubbed(api_key) from None

    async def submit_video(self, api_key: str, body: dict) -> dict:
        """``POST /videos``: start a video job; returns ``{"id", "polling_url", "status", …}`` (with
        ``generation_id`` from the ``X-Generation-Id`` header when OpenRouter sends one)."""
        model = body.get("model") if isinstance(body.get("model"), str) else None
        response, payload = await self._json_call(
            "POST", "videos", api_key, context="video_submit", json_body=body, model=model, ok=(200, 201, 202)
        )
        if isinstance(payload, dict) and "error" in payload and "id" not in payload:
            raise _in_band_error(
                payload["error"], model=model, context="video_submit", output_started=False
            ).scrubbed(api_key)
        if not isinstance(payload, dict) or not isinstance(payload.get("id"), str) or not payload["id"]:
            # The job may exist upstream, but without its id it cannot be followed.
            error = _unexpected_answer(200, "no job id")
            error.disposition = "unknown"
            raise error.scrubbed(api_key)
        if not payload.get("generation_id") and response.headers.get("x-generation-id"):
            # The generation id names the job in the user's OpenRouter activity, even before it finishes.
            payload["generation_id"] = response.headers["x-generation-id"]
        return payload

    async def get_video(self, api_key: str, job_id: str, polling_url: str | None = None) -> dict:
        """Poll a video job. ``polling_url`` may be absolute or relative to the OpenRouter origin; without
        it, ``/videos/<job_id>`` is used. The key is sent only when the URL is on the OpenRouter origin."""
        target = polling_url or "videos/" + urllib.parse.quote(job_id, safe="")
        _, payload = await self._json_call("GET", target, api_key, context="video_poll")
        if not isinstance(payload, dict) or not isinstance(payload.get("status"), str):
            raise _unexpected_answer(200, "no job status").scrubbed(api_key)
        return payload

    async def download(self, api_key: str, url: str, *, max_bytes: int) -> AsyncIterator[bytes]:
        """Stream a file (a video's ``unsigned_urls`` entry, …) in chunks.

        Redirects are followed here (storage links often redirect), at most a few, only to http(s), never
        from https to http, and the key is dropped as soon as the URL leaves the OpenRouter origin. Raises
        UpstreamError when the file is larger than ``max_bytes``.
        """
        current = self._url(url)
        for _ in range(_MAX_DOWNLOAD_REDIRECTS + 1):
            response = await self._send(
                "GET",
                current,
                api_key,
                stream=True,
                accept="*/*",
                timeout=self._stream_timeout,
                idempotent=True,
            )
            error: UpstreamError | None = None
            try:
                if response.is_redirect and "location" in response.headers:
                    next_url = current.join(response.headers["location"])
                    if next_url.scheme not in ("http", "https") or (
                        current.scheme == "https" and next_url.scheme == "http"
                    ):
                        error = UpstreamError(
                            "upstream_error",
                            "reject",
                            "The download link redirected to an address Atelier does not open.",
                            upstream_status=response.status_code,
                        )
                    else:
                        current = next_url
                        continue
                elif response.status_code != 200:
                    body = await _read_capped(response, _MAX_ERROR_BODY)
                    error = _error_from_http(
                        response.status_code, response.headers, body, model=None, context="video_poll"
                    )
                else:
                    declared = _as_int(response.headers.get("content-length"))
                    if declared is not None and declared > max_bytes:
                        error = _too_large(max_bytes)
                    else:
                        received = 0
                        try:
                            async for chunk in response.aiter_bytes():
                                received += len(chunk)
                                if received > max_bytes:
                                    error = _too_large(max_bytes)
                                    break
                                yield chunk
                        except httpx.TransportError as exc:
                            error = _transport_error(
                                exc, sent=True, idempotent=True, timeout=self._stream_idle_timeout
                            )
                        if error is None:
                            return
            finally:
                await response.aclose()
            if error is not None:
                raise error.scrubbed(api_key)
        raise UpstreamError(
            "upstream_error", "reject", "The download link redirected too many times; it was not followed."
        )


def _too_large(max_bytes: int) -> UpstreamError:
    return UpstreamError(
        "upstream_error",
        "reject",
        f"The file is larger than the {max_bytes / 1_000_000:g} MB limit and was not saved.",
        metadata={"max_bytes": max_bytes},
    )


async def _read_capped(response: httpx.Response, limit: int) -> bytes:
    """Read at most ``limit`` bytes of a streamed response body (the rest is dropped)."""
    buffer = bytearray()
    async for chunk in response.aiter_bytes():
        buffer += chunk
        if len(buffer) >= limit:
            break
    return bytes(buffer[:limit])


def _data_list(payload: Any, api_key: str | None) -> list[dict]:
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        raise _unexpected_answer(200, "no data list").scrubbed(api_key)
    return [item for item in data if isinstance(item, dict)]


def _chat_result(payload: Any, headers: httpx.Headers, *, model: str | None) -> ChatResult:
    """Interpret a non-streamed chat answer that came with HTTP 200."""
    if not isinstance(payload, dict):
        raise _unexpected_answer(200, "not a JSON object")
    generation_id = headers.get("x-generation-id")
    if "error" in payload and not payload.get("choices"):
        raise _in_band_error(
            payload["error"], model=model, context="chat", output_started=False, headers=headers
        )
    answer_model = payload.get("model") if isinstance(payload.get("model"), str) else model
    upstream_id = payload.get("id") if isinstance(payload.get("id"), str) else generation_id
    choices = payload.get("choices")
    extra = {"generation_id": upstream_id} if upstream_id else {}
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise _empty_response(extra)
    choice = choices[0]
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    text = _content_text(message.get("content"))
    reasoning = message.get("reasoning") if isinstance(message.get("reasoning"), str) else None
    images = _image_urls(message.get("images"))
    finish_reason = choice.get("finish_reason") if isinstance(choice.get("finish_reason"), str) else None
    if finish_reason == "error":
        err = _in_band_error(
            choice.get("error") or payload.get("error") or {},
            model=answer_model,
            context="chat",
            output_started=bool(text),
        )
        err.partial_text = text
        err.metadata.update(extra)
        raise err
    if not text and not images and not reasoning and not message.get("tool_calls"):
        if finish_reason == "content_filter":
            raise UpstreamError(
                "content_blocked",
                "reject",
                "The model's content filter withheld the answer. Rephrase the prompt or pick another model.",
                metadata=extra,
            )
        raise _empty_response(extra)
    return ChatResult(
        upstream_id=upstream_id,
        model=answer_model,
        text=text,
        reasoning=reasoning or None,
        images=images,
        usage=Usage.from_payload(payload.get("usage")),
        finish_reason=finish_reason,
    )


def _image_result(payload: Any, headers: httpx.Headers, *, model: str | None) -> ImageResult:
    if not isinstance(payload, dict):
        raise _unexpected_answer(200, "not a JSON object")
    if "error" in payload and not payload.get("data"):
        raise _in_band_error(
            payload["error"], model=model, context="image", output_started=False, headers=headers
        )
    images: list[GeneratedImage] = []
    for item in payload.get("data") or []:
        if not isinstance(item, dict) or not isinstance(item.get("b64_json"), str):
            continue
        try:
            data = base64.b64decode(item["b64_json"], validate=True)
        except (binascii.Error, ValueError):
            raise _unexpected_answer(200, "image data is not base64") from None
        if not data:
            continue
        mime = item.get("media_type") if isinstance(item.get("media_type"), str) else None
        images.append(GeneratedImage(data=data, mime=mime or _sniff_image_mime(data)))
    generation_id = headers.get("x-generation-id") or (
        payload.get("id") if isinstance(payload.get("id"), str) else None
    )
    if not images:
        raise _empty_response({"generation_id": generation_id} if generation_id else None)
    return ImageResult(
        upstream_id=generation_id,
        model=payload.get("model") if isinstance(payload.get("model"), str) else model,
        images=images,
        usage=Usage.from_payload(payload.get("usage")),
    )


class _StreamState:
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
            text = _content_text(delta.get("content"))
            if text:
                events.append(TextDelta(text))
            events.extend(ImageDelta(url) for url in _image_urls(delta.get("images")))
            if isinstance(choice.get("finish_reason"), str):
                self.finish_reason = choice["finish_reason"]
        if not self.started and (events or choices):
            self.started = True
            events.insert(0, StreamStarted(upstream_id=self.generation_id, model=self.model))
        if any(not isinstance(e, StreamStarted) for e in events):
            self.output_started = True
        return events

    def _error(self, error: Any) -> UpstreamError:
        err = _in_band_error(error, model=self.model, context="chat", output_started=self.output_started)
        if self.generation_id:
            err.metadata.setdefault("generation_id", self.generation_id)
        return err

    def broken(
        self, what: str, *, cause: Exception | None = None, code: str = "stream_broken"
    ) -> UpstreamError:
        """The stream failed outside OpenRouter's control (connection, timeout, truncation)."""
        metadata: dict[str, Any] = {}
        if cause is not None:
            metadata["cause"] = _shorten(f"{type(cause).__name__}: {cause}")
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
        raise _empty_response(extra)
