"""Turning OpenRouter's error answers (HTTP errors, 200 bodies with an error, choice-level and in-stream
errors) into :class:`UpstreamError`: what happened, whether sending again may help, what the user can do."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from backend.openrouter.errors import Disposition, UpstreamError, human_seconds, parse_retry_after, shorten
from backend.openrouter.results import Usage, as_float, as_int

__all__ = ["RETRY_PROMISE", "error_from_http", "gave_up_message", "in_band_error"]

#: How every retryable message ends: what Atelier will do next. Replaced by :func:`gave_up_message` once the
#: attempts are used up, so a message never promises a retry that will not happen (see docs/outbox.md).
RETRY_PROMISE = "; Atelier will send it again by itself."


def gave_up_message(message: str, attempts: int) -> str:
    """A retryable error's message once Atelier stops trying: the promise gives way to what the user can do."""
    stopped = f"; Atelier tried {attempts} times and stopped, so press Retry to send it again."
    if RETRY_PROMISE in message:
        return message.replace(RETRY_PROMISE, stopped)
    return f"{message.rstrip()} Atelier tried {attempts} times and stopped; press Retry to send it again."


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


def _rate_limit_reset(value: Any) -> float | None:
    """``X-RateLimit-Reset`` as epoch seconds; OpenRouter has been seen sending epoch milliseconds."""
    number = as_float(value)
    if number is None or number <= 0:
        return None
    return number / 1000.0 if number > 1e11 else number


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
        code_int = as_int(code)
        if http_status is None or http_status == 200:
            # In-band and 200-with-error bodies: the real status is in the body (code or http_status).
            info.status = code_int if code_int is not None else as_int(error.get("http_status"))
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
        return shorten(text)


def _classify(info: _ErrorInfo, *, model: str | None, context: str) -> tuple[str, Disposition, str]:
    """(code, disposition, message) for an OpenRouter error. ``context`` names the endpoint family."""
    status = info.status
    etype = info.error_type
    avail_code = info.availability.get("code") if isinstance(info.availability.get("code"), str) else None
    said = info.describe()
    said_suffix = f" OpenRouter said: {said}" if said else ""
    if said_suffix and not said_suffix.endswith((".", "!", "?")):
        said_suffix += "."
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
    limit_source = info.metadata.get("limit_source")
    if status == 402 and limit_source == "openrouter_key_limit":
        reset = info.metadata.get("limit_reset")
        when = f" (it resets {reset})" if isinstance(reset, str) and reset else ""
        return (
            "key_limit_reached",
            "reject",
            f"This API key has spent its own credit limit on OpenRouter{when}, so buying credits will not help; "
            f"raise the key's limit in OpenRouter's key settings (https://openrouter.ai/settings/keys).{said_suffix}",
        )
    if status == 402 and limit_source == "openrouter_in_flight_budget":
        # Documented as transient: requests still running fill the budget; refused before any provider ran.
        return (
            "in_flight_limit",
            "retry",
            f"Too many paid requests are running on this OpenRouter account at once{RETRY_PROMISE}{said_suffix}",
        )
    if status == 402 or etype == "payment_required":
        return (
            "insufficient_credits",
            "reject",
            "Not enough OpenRouter credits for this request. Add credits at https://openrouter.ai/credits "
            "or lower max tokens.",
        )
    if status == 403 and isinstance(limit_source, str) and limit_source:
        return "spend_limit_reached", "reject", _spend_limit_message(limit_source, info) + said_suffix
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
    if avail_code == "privacy_restricted" or (status == 404 and "data policy" in info.message.lower()):
        return (
            "privacy_restricted",
            "reject",
            f"The model {model_ref} exists, but your OpenRouter privacy settings exclude every provider that "
            "serves it; allow more providers at https://openrouter.ai/settings/privacy or pick another model."
            f"{said_suffix}",
        )
    if avail_code in _MODEL_AVAILABILITY and not info.availability.get("retryable"):
        return "model_not_found", "reject", _availability_message(avail_code, model_ref, info)
    not_a_model = "not a valid model" in info.message.lower()
    if not_a_model or (status == 404 and context in ("chat", "image", "video_submit") and said):
        return (
            "model_not_found",
            "reject",
            f"OpenRouter does not know the model {model_ref}. Pick another model.",
        )
    if status == 429 or etype == "rate_limit_exceeded" or avail_code == "capacity_exhausted":
        return (
            "rate_limited",
            "retry",
            f"OpenRouter is limiting how fast requests may be sent{RETRY_PROMISE}{said_suffix}",
        )
    if status in (408, 504, 524) or etype == "timeout":
        return (
            "timeout",
            "retry",
            f"OpenRouter or the model provider took too long to answer{RETRY_PROMISE}{said_suffix}",
        )
    if status is None or status >= 500 or info.availability.get("retryable") is True:
        return (
            "upstream_unavailable",
            "retry",
            f"The model provider is unavailable right now{RETRY_PROMISE}{said_suffix}",
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


_LIMIT_NAMES = {
    "openrouter_guardrail_budget": "A guardrail budget on your OpenRouter account",
    "openrouter_workspace_budget": "Your OpenRouter workspace's budget",
    "openrouter_key_limit": "This API key's spending limit on OpenRouter",
}


def _spend_limit_message(limit_source: str, info: _ErrorInfo) -> str:
    """A 403 budget refusal: which limit, how much of it is spent, when it resets."""
    name = _LIMIT_NAMES.get(limit_source, f"An OpenRouter spending limit ({limit_source})")
    scope = info.metadata.get("scope")
    if isinstance(scope, str) and scope and limit_source != "openrouter_key_limit":
        name += f" (scope: {scope})"
    spent, limit = as_float(info.metadata.get("spend_usd")), as_float(info.metadata.get("limit_usd"))
    amounts = f" (US${spent:g} of US${limit:g})" if spent is not None and limit is not None else ""
    resets = info.metadata.get("resets_at")
    when = f"wait until it resets at {resets}" if isinstance(resets, str) and resets else "wait until it resets"
    return (
        f"{name} is used up for now{amounts}, so OpenRouter refused the request; {when}, or have the "
        "limit raised in OpenRouter's settings."
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
    for key in (
        "provider_name", "provider_code", "reasons", "flagged_input", "model_slug", "upstream_code",
        "limit_source", "limit_reset", "scope", "limit_usd", "spend_usd", "resets_at",
    ):
        if key in info.metadata:
            metadata[key] = info.metadata[key]
    # The wait: the Retry-After header, else the body's own (in-band errors never have the header).
    retry_after = parse_retry_after(headers.get("retry-after")) if headers is not None else None
    for stated in (info.metadata.get("retry_after_seconds"), info.availability.get("retry_after")):
        if retry_after is None:
            seconds = as_float(stated)
            retry_after = max(0.0, seconds) if seconds is not None else None
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
            "limit": as_int(limit_headers.get("x-ratelimit-limit")),
            "remaining": as_int(limit_headers.get("x-ratelimit-remaining")),
            "reset_at": _rate_limit_reset(limit_headers.get("x-ratelimit-reset")),
        }
    if headers is not None and headers.get("x-generation-id"):
        metadata["generation_id"] = headers["x-generation-id"]
    if extra:
        metadata.update(extra)
    if retry_after is not None and disposition == "retry":
        message = f"{message} Next try in about {human_seconds(retry_after)}."
    return UpstreamError(
        code,
        disposition,
        message,
        upstream_status=info.status,
        retry_after=retry_after,
        metadata=metadata,
    )


def error_from_http(
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
        if status < 500 and status not in (408, 429):
            # Not OpenRouter's JSON (a proxy's or portal's page): nothing says the request was wrong, so it
            # is retried with backoff rather than failed for a reason OpenRouter never gave.
            return UpstreamError(
                "upstream_error",
                "retry",
                f"Something other than OpenRouter answered (HTTP {status} without OpenRouter's error details), "
                "so the request will be sent again later; if this goes on, check the OpenRouter base URL and "
                "proxy settings.",
                upstream_status=status,
                retry_after=parse_retry_after(headers.get("retry-after")),
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


def in_band_error(
    error: Any,
    *,
    model: str | None,
    context: str,
    output_started: bool,
    headers: Mapping[str, str] | None = None,
    usage: Usage | None = None,
) -> UpstreamError:
    """An error delivered inside a 200 answer (body, choice or stream chunk). ``usage`` is what OpenRouter
    reported with it: tokens and cost of a failure that was billed."""
    info = _ErrorInfo.parse(error, None)
    err = _error_from_info(info, model=model, context=context, headers=headers)
    err.usage = usage
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
            usage=usage,
        )
    return err
