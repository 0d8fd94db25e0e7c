"""Conversations in the Studio: the branch being read, one turn at a time, the list in the side panel, rename
and delete. A turn is sent by the Studio's stream (``/studio/stream`` with ``conversation_id``/``parent_id``)."""

from __future__ import annotations

from collections import defaultdict
from contextlib import suppress
from typing import Any

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for

from frontend.backend_client import BackendError
from frontend.web import backend, flash_backend_error, wants_json

bp = Blueprint("conversations", __name__)


def ident(value: Any) -> str | None:
    text = str(value or "").strip()
    return text if text and text.isalnum() and len(text) <= 64 else None


def branch(turns: list[dict[str, Any]], selected: str | None, leaf_id: str | None) -> list[dict[str, Any]]:
    """The turns shown for ``selected`` (default: the leaf): its ancestors from the root, itself, then its
    newest descendants. Each item is ``{"turn", "siblings": [ids, oldest first], "index"}`` — the
    siblings are the other answers to the same parent (regenerations and edits), browsed with ‹ n/m ›; the first
    turns of a conversation (a regenerated or edited first prompt) are siblings of each other."""
    by_id = {t["id"]: t for t in turns}
    children: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for t in turns:  # oldest first, as the API lists them
        parent = t.get("parent_id") if t.get("parent_id") in by_id else None
        children[parent].append(t)
    start = by_id.get(selected or "") or by_id.get(leaf_id or "")
    if start is None:
        return []
    path: list[dict[str, Any]] = []
    seen: set[str] = set()
    current: dict[str, Any] | None = start
    while current is not None and current["id"] not in seen:
        seen.add(current["id"])
        path.append(current)
        current = by_id.get(current.get("parent_id") or "")
    path.reverse()
    current = start
    while children.get(current["id"]):
        current = children[current["id"]][-1]
        if current["id"] in seen:
            break
        seen.add(current["id"])
        path.append(current)
    out = []
    for t in path:
        parent = t.get("parent_id") if t.get("parent_id") in by_id else None
        siblings = [s["id"] for s in children[parent]]
        out.append({"turn": t, "siblings": siblings, "index": siblings.index(t["id"]) + 1})
    return out


def effective_system(items: list[dict[str, Any]]) -> str:
    """The system prompt the next reply inherits: the nearest one on the branch."""
    for item in reversed(items):
        if item["turn"].get("system"):
            return str(item["turn"]["system"])
    return ""


def studio_context(args: Any) -> dict[str, Any]:
    """What the Studio's text mode shows: the open conversation (``?conversation=``, ``?turn=``; or the
    conversation of ``?continue=<generation id>``), its branch, and the list in the side panel."""
    # The composer's own fields (conversation_id, parent_id) when the form itself came back as a GET ("Use
    # template" without JavaScript).
    conversation_id = ident(args.get("conversation") or args.get("conversation_id"))
    selected = ident(args.get("turn") or args.get("parent_id"))
    cont = ident(args.get("continue"))
    if cont and not conversation_id:
        with suppress(BackendError):
            record = backend().generation(cont)
            conversation_id, selected = record.get("conversation_id"), cont
    conversation = None
    items: list[dict[str, Any]] = []
    if conversation_id:
        try:
            conversation = backend().conversation(conversation_id)
        except BackendError as exc:
            if exc.status != 404:
                flash_backend_error(exc)
        if conversation:
            items = branch(conversation["turns"], selected, conversation.get("leaf_id"))
    try:
        listing = backend().conversations(limit=50).get("items", [])
    except BackendError:
        listing = []
    return {"conversation": conversation, "thread": items, "conversations": listing,
            "inherited_system": effective_system(items),
            "leaf": items[-1]["turn"] if items else None}


@bp.get("/studio/turn/<rid:generation_id>")
def turn(generation_id: str) -> str:
    """One turn (prompt and answer, with its branch arrows): the Studio swaps it in when a stream ends."""
    record = backend().generation(generation_id)
    siblings, index = [record["id"]], 1
    if record.get("conversation_id"):
        with suppress(BackendError):
            conversation = backend().conversation(record["conversation_id"])
            for item in branch(conversation["turns"], generation_id, conversation.get("leaf_id")):
                if item["turn"]["id"] == generation_id:
                    siblings, index = item["siblings"], item["index"]
    return render_template("studio/_turn.html", item={"turn": record, "siblings": siblings, "index": index},
                           conversation_id=record.get("conversation_id"))


@bp.get("/studio/conversations")
def listing() -> str:
    """The side panel's list (search with ``q``)."""
    q = (request.args.get("q") or "").strip()[:200]
    try:
        items = backend().conversations(limit=50, **({"q": q} if q else {})).get("items", [])
    except BackendError:
        items = []
    return render_template("studio/_conversations.html", conversations=items,
                           current=ident(request.args.get("current")), q=q)


@bp.post("/c/<rid:conversation_id>/rename")
def rename(conversation_id: str):
    title = (request.form.get("title") or "").strip()[:300] or None
    try:
        record = backend().rename_conversation(conversation_id, title)
    except BackendError as exc:
        if wants_json():
            return jsonify(exc.payload), exc.status
        flash_backend_error(exc)
        return redirect(url_for("studio.index", mode="text", conversation=conversation_id))
    if wants_json():
        return jsonify(record)
    return redirect(url_for("studio.index", mode="text", conversation=conversation_id))


@bp.post("/c/<rid:conversation_id>/delete")
def delete(conversation_id: str):
    try:
        backend().delete_conversation(conversation_id)
    except BackendError as exc:
        if exc.status != 404:
            flash_backend_error(exc)
            return redirect(url_for("studio.index", mode="text", conversation=conversation_id))
    flash("Conversation deleted.", "success")
    return redirect(url_for("studio.index", mode="text"))
