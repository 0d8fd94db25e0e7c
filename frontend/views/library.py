"""The Library: everything ever made, searchable, newest first."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as WerkzeugResponse

from backend.core.vocabulary import Kind, Status
from frontend.backend_client import BackendError
from frontend.web import backend, flash_backend_error, safe_next, wants_json

bp = Blueprint("library", __name__)

PAGE_SIZE = 30
#: The grid shows more per page: tiles are small and their thumbnails load lazily.
GRID_PAGE_SIZE = 60
VIEWS = ("grid", "list")
FILTERS = ("q", "kind", "status", "model", "tag", "favorite", "collection_id")
KINDS = tuple(Kind)
STATUSES = tuple(Status)


def current_filters() -> dict[str, str]:
    """The filters in the query string, validated (unknown values dropped)."""
    filters = {name: request.args.get(name, "").strip() for name in FILTERS}
    if filters["kind"] not in KINDS:
        filters["kind"] = ""
    if filters["status"] not in STATUSES:
        filters["status"] = ""
    filters["favorite"] = "true" if filters["favorite"] in {"1", "true", "on"} else ""
    return {name: value for name, value in filters.items() if value}


def current_view() -> str:
    """``grid`` (thumbnails; the default) or ``list`` (dense rows)."""
    view = request.args.get("view", "")
    return view if view in VIEWS else "grid"


@bp.get("/library")
def index() -> str:
    """A page of the library; ``?partial=1`` answers only the items (Load more / endless scroll append them).

    Paging follows the backend's cursor, so the thousandth page costs the same as the first; the grid
    shows thumbnails only (``?thumb=1``), loaded lazily.
    """
    filters = current_filters()
    view = current_view()
    cursor = request.args.get("cursor") or None
    size = GRID_PAGE_SIZE if view == "grid" else PAGE_SIZE
    page: dict[str, Any] = backend().generations(limit=size, cursor=cursor, **filters)
    items = page.get("items", [])
    next_cursor = page.get("next_cursor")
    partial = request.args.get("partial") == "1"
    template = "library/_page.html" if partial else "library/index.html"
    collections = [] if partial else backend().collections().get("items", [])
    current = next((c for c in collections if c["id"] == filters.get("collection_id")), None)
    return render_template(
        template,
        collections=collections,
        current_collection=current,
        selectable=True,
        formats=EXPORT_FORMATS,
        items=items,
        next_cursor=next_cursor,
        filters=filters,
        view=view,
        cursor=cursor,
        kinds=KINDS,
        statuses=STATUSES,
    )


EXPORT_FORMATS = {"markdown": "Markdown", "jsonl": "JSONL", "parquet": "Parquet"}
BULK_ACTIONS = {"favorite", "unfavorite", "tag", "untag", "add_to_collection", "remove_from_collection", "delete"}
_DONE = {"favorite": "Added {n} to favourites.", "unfavorite": "Removed {n} from favourites.",
         "tag": "Tagged {n} “{value}”.", "untag": "Removed the tag “{value}” from {n}.",
         "add_to_collection": "Added {n} to the collection.", "remove_from_collection": "Removed {n} from the "
         "collection.", "delete": "Deleted {n}."}


def _items(n: int) -> str:
    return f"{n} item{'' if n == 1 else 's'}"


def _back() -> WerkzeugResponse:
    return redirect(safe_next(url_for("library.index")))


@bp.post("/library/bulk")
def bulk() -> Any:
    """One action on the selected items (``ids``): the bulk actions, or ``export`` (then the download)."""
    ids = list(dict.fromkeys(i for i in request.form.getlist("ids") if i))[:500]
    action = request.form.get("action", "")
    if not ids:
        flash("Select some items first.", "error")
        return _back()
    if action == "export":
        fmt = request.form.get("format", "markdown")
        fmt = fmt if fmt in EXPORT_FORMATS else "markdown"
        try:
            made = backend().create_export(fmt, {"ids": ids})
        except BackendError as exc:
            flash_backend_error(exc)
            return _back()
        return redirect(url_for("data.download", export_id=made["id"]))
    if action not in BULK_ACTIONS:
        flash("Choose what to do with the selected items.", "error")
        return _back()
    value = None
    if action in ("tag", "untag"):
        value = request.form.get("tag", "").strip()
    elif action in ("add_to_collection", "remove_from_collection"):
        value = request.form.get("collection_id", "").strip()
    try:
        done = backend().bulk(ids, action, value)
    except BackendError as exc:
        if wants_json():
            raise
        flash_backend_error(exc)
        return _back()
    if wants_json():
        return jsonify(done)
    flash(_DONE[action].format(n=_items(done["done"]), value=value or ""), "success")
    return _back()


@bp.post("/library/collections")
def create_collection() -> WerkzeugResponse:
    name = request.form.get("name", "").strip()
    try:
        made = backend().create_collection(name)
    except BackendError as exc:
        flash_backend_error(exc)
        return _back()
    flash(f"Collection “{made['name']}” created.", "success")
    return redirect(url_for("library.index", collection_id=made["id"]))


@bp.post("/library/collections/<rid:collection_id>/rename")
def rename_collection(collection_id: str) -> WerkzeugResponse:
    try:
        backend().rename_collection(collection_id, request.form.get("name", "").strip())
    except BackendError as exc:
        flash_backend_error(exc)
    return redirect(url_for("library.index", collection_id=collection_id))


@bp.post("/library/collections/<rid:collection_id>/delete")
def delete_collection(collection_id: str) -> WerkzeugResponse:
    try:
        backend().delete_collection(collection_id)
    except BackendError as exc:
        flash_backend_error(exc)
        return _back()
    flash("Collection deleted; its items are still in your library.", "success")
    return redirect(url_for("library.index"))


@bp.get("/library/tags")
def tags() -> Any:
    """Tags in use with their counts, for autocompletion (``q``: tags starting with it)."""
    return jsonify(backend().tags(request.args.get("q", "").strip()[:64] or None))


@bp.post("/g/<rid:generation_id>/title")
def title(generation_id: str) -> Any:
    """Rename a generation (an empty title goes back to showing the prompt). The backend checks the length."""
    value = request.form.get("title", "").strip()
    try:
        record = backend().update_generation(generation_id, {"title": value or None})
    except BackendError as exc:
        if wants_json():
            raise
        flash_backend_error(exc)
        return redirect(safe_next(url_for("generations.detail", generation_id=generation_id)))
    if wants_json():
        return jsonify({"ok": True, "generation": record})
    return redirect(safe_next(url_for("generations.detail", generation_id=generation_id)))
