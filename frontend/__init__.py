"""Atelier's user interface: a Flask app rendered on the server, talking to the backend over HTTP.

The window (pywebview) and any browser talk only to this app; it calls the backend's ``/api/v1`` with the
launch token, server-side. Build it with :func:`create_app`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from flask import Flask

from frontend.backend_client import BackendClient
from frontend.security import RequestTargetGuard


def create_app(
    *,
    api_url: str,
    token: str,
    port_getter: Callable[[], int] | None = None,
    test_config: dict[str, Any] | None = None,
) -> Flask:
    """Create the UI app.

    ``api_url`` is the backend's base URL (``http://127.0.0.1:<port>``) and ``token`` the launch token,
    used both to call the backend and to check ``/login?token=``. ``port_getter`` returns the port this
    app is served on once the server has bound it (the Host check needs it); without it the port the
    request arrived on is used. ``test_config`` overrides Flask config values.
    """
    app = Flask(__name__)
    app.config.from_mapping(
        # Per-launch secrets: a restart logs every window and tab out, which is what a launch token means.
        SECRET_KEY=secrets.token_bytes(32),
        ATELIER_SESSION_VALUE=secrets.token_urlsafe(32),
        ATELIER_SESSION_COOKIE="atelier_session",
        ATELIER_TOKEN=token,
        ATELIER_API_URL=api_url,
        SESSION_COOKIE_NAME="atelier_flash",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=False,  # plain http on loopback
        MAX_CONTENT_LENGTH=2 * 1024 * 1024,
        TEMPLATES_AUTO_RELOAD=False,
        SEND_FILE_MAX_AGE_DEFAULT=0,
        JSON_SORT_KEYS=False,
    )
    if test_config:
        app.config.update(test_config)
    app.extensions["atelier_port_getter"] = port_getter
    app.extensions["atelier_backend"] = BackendClient(api_url, token)

    from frontend import templating, web
    from frontend.views import (
        api_docs,
        auth,
        batches,
        conversations,
        data,
        generations,
        library,
        oauth,
        queue,
        settings,
        status,
        studio,
        templates,
    )

    templating.install(app)
    app.url_map.converters["rid"] = web.ResourceIdConverter
    app.register_blueprint(auth.bp)
    app.register_blueprint(studio.bp)
    app.register_blueprint(conversations.bp)
    app.register_blueprint(generations.bp)
    app.register_blueprint(library.bp)
    app.register_blueprint(templates.bp)
    app.register_blueprint(batches.bp)
    app.register_blueprint(queue.bp)
    app.register_blueprint(settings.bp)
    app.register_blueprint(data.bp)
    app.register_blueprint(oauth.bp)
    app.register_blueprint(status.bp)
    app.register_blueprint(api_docs.bp)
    app.wsgi_app = RequestTargetGuard(app.wsgi_app)  # type: ignore[method-assign]
    return app


def backend_of(app: Flask) -> BackendClient:
    """The :class:`BackendClient` an app created by :func:`create_app` uses."""
    return app.extensions["atelier_backend"]


__all__ = ["create_app", "backend_of"]
