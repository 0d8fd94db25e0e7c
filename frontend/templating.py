"""Template filters and globals, the page context every template gets, and the error pages."""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, render_template

from backend.core.sizes import format_size
from backend.core.vocabulary import TERMINAL, Status
from frontend import rendering
from frontend.backend_client import BackendError, BackendUnavailable
from frontend.web import (
    backend_error_json,
    current_credentials,
    current_settings,
    current_status,
    forget_request_state,
    wants_json,
)

STATUS_LABELS = {
    Status.QUEUED: "Queued",
    Status.RUNNING: "Running",
    Status.SUCCEEDED: "Done",
    Status.FAILED: "Failed",
    Status.INTERRUPTED: "Interrupted",
    Status.CANCELLED: "Cancelled",
}


def model_label(model_id: str | None) -> str:
    """The short part of a model id (``openai/gpt-4o`` → ``gpt-4o``) for dense lists."""
    if not model_id:
        return "—"
    return model_id.split("/", 1)[-1]


#: Where the key is (or a pasted key will go), by the backend's ``source``/``saves_to``, for "kept in …".
KEY_PLACES = {
    "keyring": "your system keychain",
    "file": "a private file in Atelier's data folder, readable only by you",
    "env": "the OPENROUTER_API_KEY environment variable",
    "policy": "your organisation's policy",
}


def key_place(credentials: dict[str, Any] | None, *, new: bool = False) -> str | None:
    """Where the key is (``new``: where a pasted key will go), in words; None when the backend did not say."""
    if not credentials:
        return None
    where = credentials.get("saves_to") if new else credentials.get("source")
    return KEY_PLACES.get(str(where)) if where else None


def _theme() -> str:
    settings = current_settings()
    theme = (settings or {}).get("values", {}).get("theme", "system")
    return theme if theme in {"light", "dark", "system"} else "system"


def _error_response(exc: BackendError):
    if wants_json():
        return backend_error_json(exc)
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
        filesize=format_size,
    )
    app.jinja_env.globals.update(
        duration=rendering.format_duration,
        key_place=key_place,
        status_labels=STATUS_LABELS,
        terminal_statuses=TERMINAL,
    )
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True

    @app.context_processor
    def page_context() -> dict[str, Any]:
        return {"atelier_status": current_status, "atelier_credentials": current_credentials, "theme": _theme}

    app.register_error_handler(BackendError, _error_response)

    @app.errorhandler(404)
    def not_found(_exc):  # type: ignore[no-untyped-def]
        if wants_json():
            return jsonify({"error": {"code": "not_found", "message": "Not found."}}), 404
        return render_template("errors/not_found.html"), 404

    @app.teardown_appcontext
    def _forget(_exc):  # type: ignore[no-untyped-def]
        forget_request_state()
