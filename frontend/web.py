"""What every view needs from the request it handles: the backend client, the backend's status and settings
(fetched once per request), whether the caller is our script or a page, where it may be sent next, and the
JSON answer for an error.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Response, current_app, flash, g, jsonify, request
from werkzeug.routing import BaseConverter

from frontend.backend_client import BackendClient, BackendError


class ResourceIdConverter(BaseConverter):
    """Generation and asset ids in URLs: letters, digits, ``-`` and ``_`` only (never a path)."""

    regex = r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}"


def backend() -> BackendClient:
    """The backend client of the current app."""
    return current_app.extensions["atelier_backend"]


def wants_json() -> bool:
    """Whether the caller is our JavaScript (fetch/EventSource) rather than a page navigation."""
    if request.headers.get("X-Requested-With") == "fetch":
        return True
    accept = request.accept_mimetypes
    best = accept.best_match(["text/html", "application/json", "text/event-stream"])
    return best in {"application/json", "text/event-stream"}


def safe_next(default: str) -> str:
    """A same-app redirect target from ``?next=``/form ``next`` (a path only: no scheme, no host)."""
    target = request.values.get("next", "")
    parts = urlsplit(target)
    if target.startswith("/") and not target.startswith("//") and not parts.scheme and not parts.netloc:
        return target
    return default


def current_status() -> dict[str, Any] | None:
    """``GET /status`` once per request; ``None`` when the backend cannot be reached."""
    if "atelier_status" not in g:
        try:
            g.atelier_status = backend().status()
        except BackendError:
            g.atelier_status = None
    return g.atelier_status


def current_settings() -> dict[str, Any] | None:
    """``GET /settings`` once per request; ``None`` when the backend cannot be reached."""
    if "atelier_settings" not in g:
        try:
            g.atelier_settings = backend().settings()
        except BackendError:
            g.atelier_settings = None
    return g.atelier_settings


def current_credentials() -> dict[str, Any] | None:
    """``GET /credentials`` once per request (where the key is, or where a new one would go); ``None`` when
    the backend cannot be reached."""
    if "atelier_credentials" not in g:
        try:
            g.atelier_credentials = backend().credentials()
        except BackendError:
            g.atelier_credentials = None
    return g.atelier_credentials


def forget_request_state() -> None:
    """Drop what this request fetched from the backend (at the end of the request)."""
    for name in ("atelier_status", "atelier_settings", "atelier_credentials"):
        g.pop(name, None)


def json_error(code: str, message: str, status: int = 400) -> tuple[Response, int]:
    """The backend's error shape (``{"error": {"code", "message"}}``) for an error found here."""
    return jsonify({"error": {"code": code, "message": message}}), status


def backend_error_json(exc: BackendError) -> tuple[Response, int]:
    """A backend error passed on to our script as the backend sent it (``action`` and all)."""
    return jsonify(exc.payload or {"error": {"code": exc.code, "message": exc.message}}), exc.status


def flash_backend_error(exc: BackendError) -> None:
    """Show a backend error on the next page (no JavaScript): its message, and its ``action`` for the link."""
    flash({"message": exc.message, "action": exc.error.get("action")}, "error")
