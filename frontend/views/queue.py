"""The Queue: what the outbox is waiting to send, with Retry now / Cancel and Pause / Resume."""

from __future__ import annotations

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for

from frontend.web import backend, wants_json

bp = Blueprint("queue", __name__)


@bp.get("/queue")
def index() -> str:
    """Queued and running generations; ``?partial=1`` answers only the live part (auto-refresh)."""
    answer = backend().queue()
    template = "queue/_live.html" if request.args.get("partial") == "1" else "queue/index.html"
    return render_template(
        template,
        items=answer.get("items", []),
        online=answer.get("online"),
        paused=answer.get("paused"),
    )


@bp.post("/queue/pause")
def pause():
    """Stop sending queued items until resumed."""
    backend().pause_queue()
    if wants_json():
        return jsonify({"ok": True})
    flash("Outbox paused: nothing will be sent until you resume it.", "success")
    return redirect(url_for("queue.index"))


@bp.post("/queue/resume")
def resume():
    """Start sending queued items again."""
    backend().resume_queue()
    if wants_json():
        return jsonify({"ok": True})
    flash("Outbox resumed.", "success")
    return redirect(url_for("queue.index"))
