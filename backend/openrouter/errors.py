"""The one exception type of the OpenRouter client and the errors that do not depend on OpenRouter's words:
transport failures, answers that cannot be understood, empty or oversized answers.

``UpstreamError.code`` says what happened, ``disposition`` whether the outbox may send the request again
(``retry``: OpenRouter cannot have started or billed it; ``reject``: sending it again will not help;
``unknown``: it may have reached a model), and ``message`` tells the user what to do. The key never appears
in an error's text, ``repr`` or metadata (``scrubbed()``).
"""

from __future__ import annotations

import math
import ssl
import time
from email.utils import parsedate_to_datetime
from typing import Literal

import httpx

from backend.core.redaction import redact
from backend.core.sizes import format_size
from backend.openrouter.results import Usage

__all__ = ["Disposition", "UpstreamError", "answer_too_large", "parse_retry_after"]

_MESSAGE_DETAIL_LIMIT = 300

Disposition = Literal["retry", "reject", "unknown"]


class UpstreamError(Exception):
    """Anything that went wrong talking to OpenRouter, classified for the outbox and explained for the user.

    ``partial_text`` holds content that came with a failed non-streamed answer (a choice-level error); for
    streams the caller already has the deltas, and ``output_started`` says whether any had arrived.
    ``usage`` is set when OpenRouter reported tokens and cost with the error: the failure was billed.
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
        usage: Usage | None = None,
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
        self.usage = usage

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


def human_seconds(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{round(seconds / 3600, 1):g} h"


def shorten(text: str, limit: int = _MESSAGE_DETAIL_LIMIT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def empty_response(extra: dict | None = None) -> UpstreamError:
    return UpstreamError(
        "empty_response",
        "retry",
        "The model returned an empty answer (this happens while a model is starting up); Atelier will send it "
        "again by itself.",
        metadata=extra or {},
    )


def unexpected_answer(status: int, what: str) -> UpstreamError:
    return UpstreamError(
        "upstream_error",
        "retry",
        f"OpenRouter sent an answer Atelier does not understand ({what}); Atelier will send it again by itself.",
        upstream_status=status,
    )


def too_large(max_bytes: int) -> UpstreamError:
    return UpstreamError(
        "upstream_error",
        "reject",
        f"The file is larger than the {format_size(max_bytes)} limit and was not saved.",
        metadata={"max_bytes": max_bytes},
    )


def answer_too_large(max_bytes: int, *, partial_kept: bool) -> UpstreamError:
    """OpenRouter's answer outgrew ``max_bytes``: the model ran (and billed), so it is never sent again."""
    kept = "the part received so far is kept" if partial_kept else "nothing of it was kept"
    return UpstreamError(
        "answer_too_large",
        "reject",
        f"The answer grew past the {format_size(max_bytes)} Atelier accepts, so it was cut off and {kept}; "
        "ask for a shorter answer (lower max tokens) or raise ATELIER_MAX_ANSWER_BYTES.",
        output_started=True,
        metadata={"max_bytes": max_bytes},
    )


def transport_error(exc: Exception, *, sent: bool, idempotent: bool, timeout: float | None) -> UpstreamError:
    """Map an httpx exception. ``sent``: the request may have been fully written before it happened."""
    cause = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    metadata = {"cause": shorten(cause)}
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return UpstreamError(
            "bad_request",
            "reject",
            "The OpenRouter base URL is not a valid http(s) address. Check it in Settings.",
            metadata=metadata,
        )
    if is_tls_error(exc):
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
            "OpenRouter cannot be reached; Atelier keeps the request and sends it when the connection is back.",
            metadata=metadata,
        )
    if isinstance(exc, httpx.WriteError | httpx.WriteTimeout):
        # The request body did not get out completely, so no model can have started on it.
        return UpstreamError(
            "network",
            "retry",
            "The connection to OpenRouter broke while sending the request; Atelier will send it again by itself.",
            metadata=metadata,
        )
    disposition: Disposition = "retry" if idempotent else "unknown"
    if isinstance(exc, httpx.ReadTimeout):
        waited = f" within {human_seconds(timeout)}" if timeout else ""
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


def is_tls_error(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLError | ssl.CertificateError):
            return True
        current = current.__cause__ or current.__context__
    text = str(exc)
    return "CERTIFICATE_VERIFY_FAILED" in text or "SSL:" in text
