"""Request checks shared by every UI route: Host (DNS rebinding), Origin / Sec-Fetch-Site (CSRF)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

# One Host check for both servers (ipaddress-based, exact port): see backend/net/hosts.py.
from backend.net.hosts import is_allowed_host, tokens_equal

__all__ = ["CONTENT_SECURITY_POLICY", "SECURITY_HEADERS", "RequestTargetGuard", "is_allowed_host", "is_allowed_origin",
           "is_cross_site_write", "secrets_equal"]

#: The Content-Security-Policy every HTML response carries (docs/security.md). No inline code anywhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; frame-ancestors 'none'; connect-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; script-src 'self'; style-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'"
)

#: The headers every answer of both local servers carries, the servers' own error answers included
#: (docs/security.md). "same-origin", not "no-referrer": under no-referrer Chromium sends ``Origin: null`` on
#: our own form posts, which the CSRF check must refuse. Other origins still get no referrer at all.
SECURITY_HEADERS: list[tuple[str, str]] = [
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
]

#: Methods that change state and therefore get the Origin / Sec-Fetch-Site checks.
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def is_allowed_origin(origin: str, port: int) -> bool:
    """Whether an ``Origin`` header is this server's own origin (``http://<allowed host>``)."""
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    if parts.scheme != "http" or parts.path or parts.query or parts.fragment or parts.username:
        return False
    return is_allowed_host(parts.netloc, port)


def is_cross_site_write(method: str, origin: str | None, fetch_site: str | None, port: int) -> bool:
    """True when a state-changing request comes from another site (docs/security.md).

    ``Sec-Fetch-Site`` of ``cross-site`` or ``same-site`` is refused (another port on localhost is
    "same-site"); a present ``Origin`` must be our own (``null`` is foreign). Requests without either
    header come from non-browser clients, which cannot carry the user's cookie by accident.
    """
    if method.upper() not in UNSAFE_METHODS:
        return False
    if fetch_site and fetch_site.strip().lower() in {"cross-site", "same-site"}:
        return True
    return origin is not None and not is_allowed_origin(origin, port)


def secrets_equal(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a presented secret (login token, session cookie) with ours."""
    return tokens_equal(given, expected)


class RequestTargetGuard:
    """WSGI middleware in front of Flask: refuse what the Host check cannot see.

    * an absolute-form request target (``GET http://other.host/path``): the host it names is not the Host
      header's, and WSGI servers do not all reject or rewrite it;
    * more than one Host header (servers join repeated headers with a comma; Flask would read the join).
    """

    def __init__(self, app: Any):
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        target = environ.get("REQUEST_URI") or environ.get("RAW_URI") or "/"
        if not (target.startswith("/") or target == "*"):
            return _refuse(start_response, "Only origin-form request targets (/path) are accepted.")
        if "," in environ.get("HTTP_HOST", ""):
            return _refuse(start_response, "Exactly one Host header is accepted.")
        return self.app(environ, start_response)


def _refuse(start_response: Callable[..., Any], message: str) -> list[bytes]:
    body = (message + "\n").encode("ascii")
    start_response("400 Bad Request", [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
        *SECURITY_HEADERS,
        ("Cache-Control", "no-store"),
    ])
    return [body]
