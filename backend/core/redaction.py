"""One rule for keeping secrets out of what leaves the process: responses, logs, reports, errors.

Every place that may hold a third party's text (an upstream error body, an exception, a diagnostics report,
a log line) passes it through :func:`redact` with the secrets it knows, and :func:`redact_key_shapes` where it
cannot know them (logs): anything shaped like an OpenRouter key is replaced too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

REDACTED = "[redacted]"
REDACTED_KEY = "[redacted-key]"
# OpenRouter keys (sk-or-v1-…) and other providers' keys a user may paste by mistake.
KEY_PATTERN = re.compile(r"sk-or-[A-Za-z0-9_-]{8,}|sk-[A-Za-z0-9_-]{20,}")


def redact(value: Any, secrets: Iterable[str | None]) -> Any:
    """``value`` with every occurrence of each secret replaced, through strings, dicts (keys too), lists."""
    secrets = [secret for secret in secrets if secret]
    if not secrets:
        return value
    return _redact(value, secrets)


def _redact(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {_redact(key, secrets): _redact(item, secrets) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(item, secrets) for item in value]
    return value


def redact_key_shapes(text: str) -> str:
    """``text`` with anything that looks like an API key replaced (for logs, where the key may be unknown)."""
    return KEY_PATTERN.sub(REDACTED_KEY, text)
