"""Template filters, shared page context, error pages and small request helpers for the views."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Flask, current_app, g, jsonify, render_template, request
from werkzeug.routing import BaseConverter

from frontend import rendering
from frontend.backend_client import BackendClient, BackendError, BackendUnavailable

#: What to tell the user for each error code the backend can send: (message, fix, settings link?).
ERROR_FIXES: dict[str, tuple[str, bool]] = {
    "no_api_key": ("Add your OpenRouter API key in Settings to start generating.", True),
    "invalid_key": ("OpenRouter did not accept your API key. Paste a new key in Settings.", True),
    "insufficient_credits": (
        "Your OpenRouter account or key is out of credits. Add credits at openrouter.ai/credits, "
        "lower Max tokens, or pick a cheaper model.",
        False,
    ),
    "model_not_found": ("This model is not available on OpenRouter any more. Pick another model.", False),
    "context_too_long": (
        "The prompt is longer than this model can read. Shorten it or pick a model with a longer context.",
        False,
    ),
    "content_blocked": ("The provider's moderation blocked this request. Rephrase the prompt.", False),
    "bad_request": ("OpenRouter refused these parameters. Check temperature and max tokens.", False),
    "locked_by_policy": ("Your organisation manages this setting, so it cannot be changed here.", False),
    "backend_unreachable": ("Atelier's engine is not running. Close and reopen Atelier.", False),
}

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "interrupted", "cancelled"})

STATUS_LABELS = {
    "queued": "Queued",
    "running": "Running",
    "succeeded": "Done",
    "failed": "Failed",
    "interrupted": "Interrupted",
    "cancelled": "Cancelled",
}


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


def error_fix(code: str | None) -> str | None:
    """The sentence that tells the user how to fix an error, if we know one."""
    entry = ERROR_FIXES.get(code or "")
    return entry[0] if entry else None


def error_needs_settings(code: str | None) -> bool:
    """Whether the fix for ``code`` happens on the Settings page."""
    entry = ERROR_FIXES.get(code or "")
    return bool(entry and entry[1])


def model_label(model_id: str | None) -> str:
    """The short part of a model id (``openai/gpt-4o`` → ``gpt-4o``) for dense lists."""
    if not model_id:
        return "—"
    return model_id.split("/", 1)[-1]


def _theme() -> str:
    settings = current_settings()
    theme = (settings or {}).get("values", {}).get("theme", "system")
    return theme if theme in {"light", "dark", "system"} else "system"


def _error_response(exc: BackendError):
    if wants_json():
        return jsonify(exc.payload or {"error": {"code": exc.code, "message": exc.message}}), exc.status
    status = 503 if isinstance(exc, BackendUnavailable) else (exc.status if exc.status >= 400 else 500)
    if status == 404:
        return render_template("errors/not_found.html"), 404
    return render_template("errors/backend.html", error=exc), status


def install(app: Flask) -> None:
    """Register filters, globals, the shared page context and error handlers on ``app``."""
    app.jinja_env.filters.update(
        markdown=rendering.render_markdown,
        cost=rendering.format_cost,
        per_million=rendering.format_price_per_million,
        tokens=rendering.format_tokens,
        context=rendering.format_context,
        when=rendering.format_time,
        relative=rendering.format_relative,
        model_label=model_label,
    )
    app.jinja_env.globals.update(
        duration=rendering.format_duration,
        error_fix=error_fix,
        error_needs_settings=error_needs_settings,
        status_labels=STATUS_LABELS,
        terminal_statuses=TERMINAL_STATUSES,
    )
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True

    @app.context_processor
    def page_context() -> dict[str, Any]:
        return {"atelier_status": current_status, "theme": _theme}

    app.register_error_handler(BackendError, _error_response)

    @app.errorhandler(404)
    def not_found(_exc):  # type: ignore[no-untyped-def]
        if wants_json():
            return jsonify({"error": {"code": "not_found", "message": "Not found."}}), 404
        return render_template("errors/not_found.html"), 404

    @app.teardown_appcontext
    def _forget(_exc):  # type: ignore[no-untyped-def]
        g.pop("atelier_status", None)
        g.pop("atelier_settings", None)
