"""The Library: everything ever made, searchable, newest first."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template, request

from frontend.web import backend

bp = Blueprint("library", __name__)

PAGE_SIZE = 30
#: The grid shows more per page: tiles are small and their thumbnails load lazily.
GRID_PAGE_SIZE = 60
VIEWS = ("grid", "list")
FILTERS = ("q", "kind", "status", "model", "tag", "favorite")
KINDS = ("text", "image", "video")
STATUSES = ("queued", "running", "succeeded", "failed", "interrupted", "cancelled")


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
    template = "library/_page.html" if request.args.get("partial") == "1" else "library/index.html"
    return render_template(
        template,
        items=items,
        next_cursor=next_cursor,
        filters=filters,
        view=view,
        cursor=cursor,
        kinds=KINDS,
        statuses=STATUSES,
    )
