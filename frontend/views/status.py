"""A small JSON view of the app state that the layout polls (online pill, outbox count)."""

from __future__ import annotations

from flask import Blueprint, jsonify

from frontend.backend_client import BackendError
from frontend.web import backend

bp = Blueprint("status", __name__)


@bp.get("/ui/status")
def status():
    """``{"engine": bool, "online", "key_configured", "queue": {...}}``; ``engine`` false when unreachable."""
    try:
        answer = backend().status()
    except BackendError:
        return jsonify({"engine": False, "online": False, "key_configured": None,
                        "queue": {"queued": 0, "running": 0}})
    return jsonify({"engine": True, **answer})


@bp.post("/ui/activity")
def activity():
    """The window gained focus: the engine re-checks OpenRouter at once when it was offline."""
    try:
        answer = backend().activity()
    except BackendError:
        return jsonify({"engine": False, "online": False})
    return jsonify({"engine": True, **answer})
