"""Scripted behaviours for the fake OpenRouter server.

A behaviour is a small dataclass queued with ``FakeOpenRouter.enqueue(path, behaviour)``; the next request
to ``path`` consumes it (FIFO per path, glob patterns such as ``/videos/*`` allowed). Requests that find no
behaviour get the normal, successful answer. Every behaviour has a JSON form
(``{"kind": "<kind>", ...fields}``) so a fake running in another process can be scripted through its control
API; :data:`PRESETS` adds ``{"kind": "preset", "name": "rate_limited", "args": {...}}`` for the canned errors.

Which behaviour applies where:

=====================  ==============================================================================
``HttpError``          any path: a JSON (or HTML) error with a real status, before any body byte
``Reply``              ``/chat/completions``: a successful answer with overrides (text, reasoning, images,
                       tool calls, model, delays, stream wire style)
``Body200Error``       ``/chat/completions`` non-stream: HTTP 200 whose body is ``{"error": ...}``
``ChoiceError``        ``/chat/completions`` non-stream: 200 with ``finish_reason:"error"`` + partial text
``EmptyChoices``       ``/chat/completions``: 200 with ``choices: []`` (stream: usage chunk only)
``EmptyContent``       ``/chat/completions``: 200 with ``content: ""`` or ``null``
``StreamError``        ``/chat/completions`` stream: in-band error event before or after some tokens;
                       non-stream: same as ``ChoiceError``; ``/images`` stream: ``type:"error"`` event
``Truncate``           stream or non-stream: the socket is closed before the body is complete
``Stall``              a pause (keep-alive comments only, or silence) before or in the middle of a stream
``PrimaryFails``       ``/chat/completions``: the first candidate model fails, ``models`` fallback used
``VideoJob``           ``POST /videos``: scripts the lifecycle of the job it creates
=====================  ==============================================================================
"""

from __future__ import annotations

import dataclasses
import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = [
    "PRESETS",
    "Behaviour",
    "Body200Error",
    "ChoiceError",
    "EmptyChoices",
    "EmptyContent",
    "HttpError",
    "PrimaryFails",
    "Reply",
    "Stall",
    "StreamError",
    "StreamStyle",
    "Truncate",
    "VideoJob",
    "behaviour_from_json",
    "behaviour_to_json",
]


@dataclass
class StreamStyle:
    """How an SSE stream is put on the wire.

    ``split``: ``"event"`` writes each event whole; ``"odd"`` cuts the byte stream into pieces of 1, 2, 3, 5,
    7, 11 and 13 bytes in turn (so cuts land mid-line, mid-UTF-8 and across events); ``"random"`` uses
    seeded random piece sizes of 1-17 bytes; ``"byte"`` writes one byte at a time.
    ``framing``: ``"chunked"`` (HTTP/1.1 keep-alive, like the real API) or ``"close"`` (no length, the end
    of the body is the socket closing, so a truncated stream looks like a clean EOF).
    """

    keepalives_before: int = 1
    keepalive_every: int = 0
    split: str = "event"
    seed: int = 0
    crlf: bool = False
    piece_delay: float = 0.0
    framing: str = "chunked"
    tokens_per_chunk: int = 1

    def __post_init__(self) -> None:
        if self.split not in {"event", "odd", "random", "byte"}:
            raise ValueError(f"unknown split mode {self.split!r}")
        if self.framing not in {"chunked", "close"}:
            raise ValueError(f"unknown framing {self.framing!r}")


class Behaviour:
    """Base class of all scripted behaviours; ``kind`` names it in the JSON form."""

    kind: ClassVar[str] = ""


@dataclass
class HttpError(Behaviour):
    """An error response with a real HTTP status, sent before any body byte.

    ``error_fields`` are merged into the ``error`` object (``availability``, ``error_type``, ``http_status``),
    ``body_extra`` next to it (``user_id``). ``raw_body`` replaces the JSON entirely (e.g. an HTML page).
    """

    kind: ClassVar[str] = "http_error"
    status: int
    message: str = "Error"
    code: int | str | None = None
    metadata: dict[str, Any] | None = None
    error_fields: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body_extra: dict[str, Any] | None = None
    raw_body: str | None = None
    content_type: str = "application/json"

    def body(self) -> dict[str, Any]:
        """The JSON envelope ``{"error": {...}, ...}``."""
        error: dict[str, Any] = {
            "code": self.status if self.code is None else self.code,
            "message": self.message,
        }
        if self.metadata is not None:
            error["metadata"] = self.metadata
        if self.error_fields:
            error.update(self.error_fields)
        out: dict[str, Any] = {"error": error}
        if self.body_extra:
            out.update(self.body_extra)
        return out


@dataclass
class Reply(Behaviour):
    """A successful chat answer with overrides; ``None`` fields keep the fake's defaults.

    ``text`` defaults to ``"Echo: <last user message>"``. ``images`` defaults to one image when the request
    asked for ``modalities`` including ``image`` and the model can output images. ``untyped_image`` drops
    ``type`` from the last image entry. ``tool_calls`` are ``[{"name", "arguments"}]``. ``image_pixels``
    (``[width, height]``) makes every image a one-colour PNG of that size, e.g. a decompression bomb.
    """

    kind: ClassVar[str] = "reply"
    text: str | None = None
    reasoning: str | None = None
    model: str | None = None
    provider: str | None = None
    finish_reason: str | None = None
    native_finish_reason: str | None = None
    images: int | None = None
    untyped_image: bool = False
    image_pixels: list[int] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    delay: float = 0.0
    token_delay: float | None = None
    style: StreamStyle | None = None


@dataclass
class Body200Error(Behaviour):
    """HTTP 200 whose body is an error envelope and has no ``choices``."""

    kind: ClassVar[str] = "body_200_error"
    code: int = 502
    message: str = "This content was flagged for possible cybersecurity risk"
    user_id: str | None = "user_fake"


@dataclass
class ChoiceError(Behaviour):
    """HTTP 200 with ``choices[0].finish_reason: "error"``, a choice-level ``error`` and partial content."""

    kind: ClassVar[str] = "choice_error"
    partial: str = "Partial answer"
    code: int = 502
    message: str = "Provider disconnected"
    error_type: str = "provider_unavailable"


@dataclass
class EmptyChoices(Behaviour):
    """HTTP 200 with ``choices: []`` (cold start); usage still present."""

    kind: ClassVar[str] = "empty_choices"


@dataclass
class EmptyContent(Behaviour):
    """HTTP 200 with a normal choice whose ``content`` is ``""`` (or ``null`` with ``null=True``)."""

    kind: ClassVar[str] = "empty_content"
    null: bool = False


@dataclass
class StreamError(Behaviour):
    """An in-band error event on a 200 stream.

    ``after_tokens=0`` puts it after the keep-alive comments, before any token. ``empty_choices`` sends
    ``choices: []`` instead of a ``finish_reason:"error"`` choice; ``code`` may be an int or a string such
    as ``"server_error"``; ``done`` appends ``data: [DONE]`` after the error event. ``metadata`` is merged
    into ``error.metadata`` (e.g. ``retry_after_seconds``); ``usage`` puts the tokens used so far and their
    cost on the error chunk (a billed failure).
    """

    kind: ClassVar[str] = "stream_error"
    after_tokens: int = 0
    code: int | str = 502
    message: str = "Provider returned error"
    error_type: str | None = "provider_unavailable"
    provider_code: str | None = None
    empty_choices: bool = False
    done: bool = False
    keepalives: int = 2
    style: StreamStyle | None = None
    metadata: dict[str, Any] | None = None
    usage: bool = False


@dataclass
class Truncate(Behaviour):
    """Close the socket early: after ``after_tokens`` content chunks (stream) or half the body (non-stream).

    ``mid_event`` also cuts the last event in half. No ``[DONE]`` is sent.
    """

    kind: ClassVar[str] = "truncate"
    after_tokens: int = 2
    mid_event: bool = False
    style: StreamStyle | None = None


@dataclass
class Stall(Behaviour):
    """Pause for ``seconds`` after ``after_tokens`` content chunks (0 = before the first token).

    ``keepalive_interval`` sends ``: OPENROUTER PROCESSING`` every so often during the pause; ``None`` means
    total silence. ``then`` is ``"continue"`` (finish normally) or ``"close"`` (drop the connection).
    For non-stream requests the pause happens before the response headers.
    """

    kind: ClassVar[str] = "stall"
    seconds: float = 1.0
    keepalive_interval: float | None = None
    after_tokens: int = 0
    then: str = "continue"
    style: StreamStyle | None = None


@dataclass
class PrimaryFails(Behaviour):
    """The first candidate model fails before the first token.

    With a ``models`` fallback list the next candidate answers (the response ``model`` is the fallback);
    without one the client gets this error.
    """

    kind: ClassVar[str] = "primary_fails"
    status: int = 502
    message: str = "Provider returned error"


@dataclass
class VideoJob(Behaviour):
    """Scripts the video job created by the next ``POST /videos``.

    The job walks ``pending -> in_progress -> <outcome>``. With ``seconds`` unset, each status is shown for
    ``polls_per_stage`` polls; with ``seconds`` set, the job finishes that many seconds (fake clock) after
    submission. ``outcome`` is ``completed``, ``failed`` (with ``error``), ``cancelled`` or ``expired``.
    """

    kind: ClassVar[str] = "video_job"
    outcome: str = "completed"
    polls_per_stage: int = 1
    seconds: float | None = None
    error: str = "The provider rejected the prompt."
    relative_polling_url: bool = False
    cost: float = 0.25

    def __post_init__(self) -> None:
        if self.outcome not in {"completed", "failed", "cancelled", "expired"}:
            raise ValueError(f"unknown video outcome {self.outcome!r}")


# ---------------------------------------------------------------------------------------------------------
# Canned errors, shaped like the real API's (see docs/openrouter.md, "Errors").


def model_not_found(model: str = "acme/fake-1.0", *, availability: bool = True) -> HttpError:
    """400: unknown model id; ``availability=False`` gives the older message-only form."""
    fields = None
    if availability:
        fields = {
            "error_type": "model_not_found",
            "http_status": 400,
            "availability": {
                "code": "model_not_found",
                "retryable": False,
                "requested_models": [model],
                "docs_url": "https://openrouter.ai/docs/api-reference/errors-and-debugging",
            },
        }
    return HttpError(400, f"{model} is not a valid model ID", error_fields=fields)


def context_length_exceeded(limit: int = 128000, requested: int = 140000) -> HttpError:
    """400: the prompt does not fit the model's context window."""
    return HttpError(
        400,
        f"This endpoint's maximum context length is {limit} tokens. However, you requested about "
        f"{requested} tokens. Please reduce the length of either one, or use the "
        '"context-compression" plugin.',
        metadata={"error_type": "context_length_exceeded", "provider_name": None},
    )


def unauthorized(message: str = "User not found.") -> HttpError:
    """401: unknown or revoked key (``"No auth credentials found"`` when the header is missing)."""
    return HttpError(401, message)


def insufficient_credits(requested: int = 32000, affordable: int = 27342) -> HttpError:
    """402: not enough credits for the requested ``max_tokens``."""
    return HttpError(
        402,
        f"This request requires more credits, or fewer max_tokens. You requested up to {requested} tokens, "
        f"but can only afford {affordable}. To increase, visit https://openrouter.ai/settings/credits and "
        "upgrade to a paid account",
        metadata={"provider_name": None},
    )


def moderation(
    reasons: list[str] | None = None,
    flagged_input: str = "a prompt the moderation model...flagged",
    model_slug: str = "openai/gpt-4o-mini",
) -> HttpError:
    """403: the moderation layer flagged the input."""
    reasons = reasons or ["violence"]
    return HttpError(
        403,
        f'{model_slug} requires moderation on OpenAI. Your input was flagged for "{reasons[0]}". No credits '
        "were charged.",
        metadata={
            "reasons": reasons,
            "flagged_input": flagged_input,
            "provider_name": "OpenAI",
            "model_slug": model_slug,
        },
    )


def guardrail(patterns: list[str] | None = None) -> HttpError:
    """403: a workspace guardrail blocked the request."""
    return HttpError(
        403, "Request blocked by guardrail", metadata={"patterns": patterns or ["secret-project"]}
    )


def no_endpoints(model: str = "openai/gpt-4o-mini") -> HttpError:
    """404: no provider endpoint can serve the model under the routing constraints."""
    return HttpError(
        404,
        f"No endpoints found for {model}.",
        error_fields={
            "error_type": "not_found",
            "http_status": 404,
            "availability": {"code": "no_endpoints", "retryable": False, "requested_models": [model]},
        },
    )


def key_limit(message: str = "Key limit exceeded. Raise the limit in your key settings.") -> HttpError:
    """402: the key's own credit limit is spent (not the account's balance)."""
    return HttpError(402, message, metadata={"limit_source": "openrouter_key_limit", "provider_name": None})


def in_flight_budget(retry_after: int = 2) -> HttpError:
    """402: running and recently finished paid requests fill the in-flight budget; transient, with Retry-After."""
    return HttpError(
        402,
        "Too many paid requests in flight for this account. Please retry shortly.",
        metadata={"limit_source": "openrouter_in_flight_budget"},
        headers={"Retry-After": str(retry_after)},
    )


def spend_limit(
    limit_source: str = "openrouter_workspace_budget",
    *,
    scope: str = "workspace",
    limit_usd: float = 50.0,
    spend_usd: float = 50.02,
    resets_at: str = "2026-12-01T00:00:00Z",
) -> HttpError:
    """403: a budget (guardrail, workspace or key limit) is spent for its window; no Retry-After."""
    return HttpError(
        403,
        "Budget limit exceeded for this period.",
        metadata={
            "limit_source": limit_source,
            "scope": scope,
            "limit_usd": limit_usd,
            "spend_usd": spend_usd,
            "resets_at": resets_at,
        },
    )


def data_policy(model: str = "openai/gpt-4o-mini") -> HttpError:
    """404: the model exists, but the account's privacy settings exclude every provider of it."""
    return HttpError(
        404,
        "No endpoints found matching your data policy (Free model publication). Configure: "
        "https://openrouter.ai/settings/privacy",
    )


def rate_limited_in_body(seconds: float = 7) -> HttpError:
    """429 whose wait is only in the body, ``error.metadata.retry_after_seconds`` (no Retry-After header)."""
    return HttpError(
        429,
        "Rate limit exceeded: provider is rate limiting this model.",
        metadata={"error_type": "rate_limit_exceeded", "retry_after_seconds": seconds},
    )


CAPTIVE_PORTAL_HTML = (
    '<!DOCTYPE html><html><head><title>Sign in to the network</title></head><body><a href="http://portal.'
    'example/login">Accept the terms</a></body></html>'
)


def captive_portal(location: str = "http://portal.example/login") -> HttpError:
    """302 to a login page with an HTML body: a captive portal or proxy answering instead of OpenRouter."""
    return HttpError(302, raw_body=CAPTIVE_PORTAL_HTML, content_type="text/html", headers={"Location": location})


def request_timeout() -> HttpError:
    """408: the request timed out upstream."""
    return HttpError(408, "Operation timed out. Please try again later.")


RELATIVE_DATE = "@http-date+"


def resolve_headers(headers: dict[str, str], now: float | None = None) -> dict[str, str]:
    """Turn ``@http-date+<seconds>`` header values into HTTP-dates that many seconds from ``now``."""
    current = time.time() if now is None else now
    return {
        name: email.utils.formatdate(current + float(value[len(RELATIVE_DATE):]), usegmt=True)
        if value.startswith(RELATIVE_DATE) else value
        for name, value in headers.items()
    }


def rate_limited(
    limit_name: str = "free-models-per-min",
    *,
    retry_after: float | None = 5,
    http_date: bool = False,
    limit: int = 20,
    reset_ms: int | None = None,
) -> HttpError:
    """429: OpenRouter's own free-tier limit, with ``X-RateLimit-*`` headers and ``Retry-After``.

    ``http_date=True`` sends ``Retry-After`` as an HTTP-date instead of seconds; ``retry_after=None``
    omits it.
    """
    now = time.time()
    reset = str(reset_ms if reset_ms is not None else int((now + (retry_after or 60)) * 1000))
    rl_headers = {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}
    headers = dict(rl_headers)
    if retry_after is not None:
        if http_date:
            # Resolved to a real HTTP-date when the response is sent (see RELATIVE_DATE), not when the
            # behaviour is built: a behaviour may be built long before it is used (test parametrization).
            headers["Retry-After"] = f"{RELATIVE_DATE}{retry_after}"
        else:
            headers["Retry-After"] = (
                str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)
            )
    message = f"Rate limit exceeded: {limit_name}"
    if limit_name == "free-models-per-day":
        message += ". Add 10 credits to unlock 1000 free model requests per day"
    return HttpError(
        429, message, metadata={"headers": rl_headers, "error_type": "rate_limit_exceeded"}, headers=headers
    )


def capacity_exhausted(model: str = "openai/gpt-4o-mini", retry_after: int = 10) -> HttpError:
    """429: availability error, retryable, with ``Retry-After``."""
    return HttpError(
        429,
        f"All providers for {model} are at capacity.",
        error_fields={
            "error_type": "provider_overloaded",
            "http_status": 429,
            "availability": {
                "code": "capacity_exhausted",
                "retryable": True,
                "retry_after": retry_after,
                "requested_models": [model],
            },
        },
        headers={"Retry-After": str(retry_after)},
    )


def internal_error() -> HttpError:
    """500: masked internal error."""
    return HttpError(500, "Internal Server Error")


def provider_error(
    raw: Any = '{"error":{"message":"upstream exploded"}}', provider_name: str = "OpenAI"
) -> HttpError:
    """502: ``"Provider returned error"`` with legacy ``metadata.raw`` (string, JSON string or object)."""
    return HttpError(502, "Provider returned error", metadata={"provider_name": provider_name, "raw": raw})


def unavailable(model: str = "openai/gpt-4o-mini", retry_after: int = 30) -> HttpError:
    """503: availability ``temporarily_unavailable`` (retryable) with ``Retry-After``."""
    return HttpError(
        503,
        f"{model} is temporarily unavailable. Please try again later.",
        error_fields={
            "error_type": "provider_unavailable",
            "http_status": 503,
            "availability": {
                "code": "temporarily_unavailable",
                "retryable": True,
                "retry_after": retry_after,
                "requested_models": [model],
                "fallback_models": ["anthropic/claude-sonnet-4.5"],
            },
        },
        headers={"Retry-After": str(retry_after)},
    )


def edge_timeout() -> HttpError:
    """524: the edge (Cloudflare) gave up waiting."""
    return HttpError(524, "Request timed out. Please try again later.")


def overloaded() -> HttpError:
    """529: the provider is overloaded."""
    return HttpError(529, "Provider is overloaded", metadata={"error_type": "provider_overloaded"})


HTML_404 = (
    '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>404: This page could not be found'
    "</title></head><body><div><h1>404</h1><h2>This page could not be found.</h2></div></body></html>"
)


def html_not_found() -> HttpError:
    """404 with the website's HTML page instead of JSON."""
    return HttpError(404, raw_body=HTML_404, content_type="text/html; charset=utf-8")


def image_generation_failed() -> HttpError:
    """502: image generation failed (not billed)."""
    return HttpError(502, "Image generation failed", metadata={"error_type": "provider_unavailable"})


PRESETS: dict[str, Callable[..., HttpError]] = {
    "model_not_found": model_not_found,
    "context_length_exceeded": context_length_exceeded,
    "unauthorized": unauthorized,
    "insufficient_credits": insufficient_credits,
    "moderation": moderation,
    "guardrail": guardrail,
    "no_endpoints": no_endpoints,
    "request_timeout": request_timeout,
    "rate_limited": rate_limited,
    "capacity_exhausted": capacity_exhausted,
    "internal_error": internal_error,
    "provider_error": provider_error,
    "unavailable": unavailable,
    "edge_timeout": edge_timeout,
    "overloaded": overloaded,
    "html_not_found": html_not_found,
    "key_limit": key_limit,
    "in_flight_budget": in_flight_budget,
    "spend_limit": spend_limit,
    "data_policy": data_policy,
    "rate_limited_in_body": rate_limited_in_body,
    "captive_portal": captive_portal,
    "image_generation_failed": image_generation_failed,
}

KINDS: dict[str, type[Behaviour]] = {
    cls.kind: cls
    for cls in (
        HttpError,
        Reply,
        Body200Error,
        ChoiceError,
        EmptyChoices,
        EmptyContent,
        StreamError,
        Truncate,
        Stall,
        PrimaryFails,
        VideoJob,
    )
}


def behaviour_to_json(behaviour: Behaviour) -> dict[str, Any]:
    """The JSON form of a behaviour: ``{"kind": ..., **fields}``."""
    return {"kind": behaviour.kind, **dataclasses.asdict(behaviour)}  # type: ignore[call-overload]


def behaviour_from_json(data: dict[str, Any]) -> Behaviour:
    """Build a behaviour from its JSON form; raises ``ValueError`` on unknown kinds or fields."""
    data = dict(data)
    kind = data.pop("kind", None)
    if kind == "preset":
        name = data.get("name")
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; known: {sorted(PRESETS)}")
        return PRESETS[name](**(data.get("args") or {}))
    cls = KINDS.get(kind or "")
    if cls is None:
        raise ValueError(f"unknown behaviour kind {kind!r}; known: {sorted(KINDS)} or 'preset'")
    if isinstance(data.get("style"), dict):
        data["style"] = StreamStyle(**data["style"])
    try:
        return cls(**data)
    except TypeError as exc:
        raise ValueError(f"bad fields for {kind!r}: {exc}") from exc
