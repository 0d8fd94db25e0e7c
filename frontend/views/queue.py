"""The Queue: what the outbox is waiting to send, with Retry now / Cancel and Pause / Resume."""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for

from frontend.backend_client import BackendError
from frontend.web import backend, wants_json

bp = Blueprint("queue", __name__)


@bp.get("/queue")
def index() -> str:
    """Queued and running generations; ``?partial=1`` answers only the live part (auto-refresh)."""
    answer = backend().queue()
    template = "queue/_live.html" if request.args.get("partial") == "1" else "queue/index.html"
    items = answer.get("items", [])
    return render_template(
        template,
        items=[item for item in items if not item.get("batch_id")],
        batches=_batch_groups(items),
        waiting=len(items),
        online=answer.get("online"),
        paused=answer.get("paused"),
    )


def _batch_groups(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Batch items grouped under their batch (one line per batch instead of hundreds of rows), oldest first."""
    groups: dict[str, dict[str, Any]] = {}
    for item in items:
        batch_id = item.get("batch_id")
        if not batch_id:
            continue
        group = groups.setdefault(batch_id, {"id": batch_id, "queued": 0, "running": 0, "batch": None})
        group[item["status"]] = group.get(item["status"], 0) + 1
    for group in groups.values():
        with suppress(BackendError):
            group["batch"] = backend().batch(group["id"], limit=1)
    return list(groups.values())


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
