"""Sign in with OpenRouter: OAuth PKCE for a desktop app (docs/openrouter.md, "Sign in with OpenRouter").

The verifier never leaves the backend; the browser only sees the S256 challenge. Each flow is identified by a
single-use random ``state`` that travels in the loopback callback path (OpenRouter documents no ``state``
parameter) and expires after 10 minutes, like OpenRouter's codes.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import urllib.parse
from dataclasses import dataclass

from backend.core.errors import AtelierError
from backend.net.hosts import is_loopback_host

FLOW_SECONDS = 600
MAX_FLOWS = 8


def code_verifier() -> str:
    """43 characters of base64url from 32 random bytes."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def code_challenge(verifier: str) -> str:
    """base64url(SHA-256(verifier)) without padding (S256)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


def site_url(api_base_url: str) -> str:
    """``https://openrouter.ai/api/v1`` → ``https://openrouter.ai`` (the consent page lives on the site root)."""
    base = api_base_url.rstrip("/")
    for suffix in ("/api/v1", "/v1", "/api"):
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return base


def is_loopback_callback(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or not parts.port:
        return False
    return is_loopback_host(parts.hostname)


@dataclass
class _Flow:
    verifier: str
    callback_url: str
    created: float


class OAuthFlows:
    """Pending sign-ins, in memory only (a restart simply means signing in again)."""

    def __init__(self, clock=time.monotonic) -> None:
        self._flows: dict[str, _Flow] = {}
        self._clock = clock

    def start(self, api_base_url: str, callback_base: str) -> tuple[str, str]:
        """Return ``(state, auth_url)``. ``callback_base`` is the loopback URL prefix the browser returns to;
        the state is appended as the last path segment."""
        if not is_loopback_callback(callback_base):
            raise AtelierError("The sign-in callback must be a loopback http URL with a port.",
                               code="invalid_request", status=422)
        self._expire()
        while len(self._flows) >= MAX_FLOWS:
            self._flows.pop(next(iter(self._flows)))
        state = secrets.token_urlsafe(24)
        verifier = code_verifier()
        callback = callback_base.rstrip("/") + "/" + state
        self._flows[state] = _Flow(verifier, callback, self._clock())
        query = urllib.parse.urlencode({
            "callback_url": callback,
            "code_challenge": code_challenge(verifier),
            "code_challenge_method": "S256",
            "key_label": "Atelier",
        })
        return state, f"{site_url(api_base_url)}/auth?{query}"

    def take(self, state: str) -> str:
        """The verifier of a pending flow; single use."""
        self._expire()
        flow = self._flows.pop(state, None)
        if flow is None:
            raise AtelierError("This sign-in link has expired or was already used. Start again from Settings.",
                               code="oauth_state_invalid")
        return flow.verifier

    def _expire(self) -> None:
        now = self._clock()
        for state in [s for s, f in self._flows.items() if now - f.created > FLOW_SECONDS]:
            del self._flows[state]
