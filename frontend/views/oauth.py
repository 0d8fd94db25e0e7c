"""Sign in with OpenRouter from the Settings screen (OAuth PKCE; the backend keeps the verifier).

The consent page opens in the system browser, where the user is already signed in to OpenRouter. OpenRouter
sends that browser back to ``http://localhost:<this port>/oauth/callback/<state>?code=…``; the browser has no
session cookie, so that one route is public and is guarded by the single-use ``state`` instead.
"""

from __future__ import annotations

import logging
import os
import webbrowser

from flask import Blueprint, jsonify, redirect, render_template, request, url_for

from frontend.backend_client import BackendError, BackendUnavailable
from frontend.views.auth import current_port
from frontend.web import backend, backend_error_json, flash_backend_error, wants_json

log = logging.getLogger(__name__)
bp = Blueprint("oauth", __name__)


def _open_in_browser(url: str) -> bool:
    # ATELIER_NO_BROWSER is a boolean setting (backend/core/settings.py): 1/true/yes/on.
    if os.environ.get("ATELIER_NO_BROWSER", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    try:
        return webbrowser.open(url)
    except webbrowser.Error:
        return False


@bp.post("/settings/oauth/start")
def start():
    """Begin signing in: open OpenRouter's consent page in the system browser."""
    try:
        answer = backend().oauth_start(f"http://localhost:{current_port()}/oauth/callback")
    except BackendError as exc:
        if wants_json():
            return backend_error_json(exc)
        flash_backend_error(exc)
        return redirect(url_for("settings.index") + "#key")
    opened = _open_in_browser(answer["auth_url"])
    if wants_json():
        return jsonify({"auth_url": answer["auth_url"], "opened": opened})
    return render_template("settings/oauth_wait.html", auth_url=answer["auth_url"], opened=opened)


@bp.get("/oauth/callback/<state>")
def callback(state: str):
    """Where OpenRouter sends the browser back after consent (public; the state is the guard)."""
    code = request.args.get("code", "")
    if not code or len(code) > 500 or len(state) > 100:
        return render_template("settings/oauth_done.html", ok=False,
                               message="OpenRouter did not send a sign-in code. Start again from Settings."), 400
    try:
        credentials = backend().oauth_finish(state, code)
    except BackendUnavailable:
        return render_template("settings/oauth_done.html", ok=False,
                               message="Atelier is not running any more. Start it and sign in again."), 503
    except BackendError as exc:
        return render_template("settings/oauth_done.html", ok=False, message=exc.message), 400
    return render_template("settings/oauth_done.html", ok=True, message=None, credentials=credentials)
