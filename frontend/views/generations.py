"""One generation: its page, actions on it (retry, cancel, delete, favourite, tags), live events, assets."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)

from frontend import forms
from frontend.backend_client import BackendError
from frontend.web import backend, flash_backend_error, safe_next, wants_json

bp = Blueprint("generations", __name__)

#: Response headers of an asset worth passing on to the browser (Range support included).
_ASSET_HEADERS = ("Content-Length", "Content-Range", "Accept-Ranges", "ETag", "Last-Modified")
#: Asset types the browser may render inline; anything else is offered as a download.
_INLINE_PREFIXES = ("image/", "video/", "audio/")


def _done(generation_id: str, message: str | None = None, record: dict[str, Any] | None = None):
    """Answer an action: JSON for our scripts, else a flash message and a redirect."""
    if wants_json():
        return jsonify({"ok": True, "generation": record})
    if message:
        flash(message, "success")
    return redirect(safe_next(url_for("generations.detail", generation_id=generation_id)))


@bp.get("/g/<rid:generation_id>")
def detail(generation_id: str) -> str:
    """Everything about one generation."""
    record = backend().generation(generation_id)
    try:
        collections = backend().collections().get("items", [])
    except BackendError:
        collections = []
    return render_template("generations/detail.html", gen=record, collections=collections)


@bp.get("/g/<rid:generation_id>/result")
def result(generation_id: str) -> str:
    """The result panel alone (the Studio swaps it in when a stream ends)."""
    record = backend().generation(generation_id)
    return render_template("generations/_result.html", gen=record, compact=True, follow=True)


def _act(generation_id: str, call: Callable[[str], dict[str, Any]], done: str):
    """Run a backend action on one generation; a refusal is flashed (or raised for scripts)."""
    try:
        record = call(generation_id)
    except BackendError as exc:
        if wants_json():
            raise
        flash_backend_error(exc)
        return redirect(safe_next(url_for("generations.detail", generation_id=generation_id)))
    return _done(generation_id, done, record)


@bp.post("/g/<rid:generation_id>/retry")
def retry(generation_id: str):
    """Send a failed, interrupted or queued generation again now."""
    return _act(generation_id, backend().retry_generation, "Sent again.")


@bp.post("/g/<rid:generation_id>/cancel")
def cancel(generation_id: str):
    """Stop a queued or running generation (partial output is kept)."""
    return _act(generation_id, backend().cancel_generation, "Cancelled.")


@bp.post("/g/<rid:generation_id>/delete")
def delete(generation_id: str):
    """Delete a generation and its files."""
    backend().delete_generation(generation_id)
    if wants_json():
        return jsonify({"ok": True})
    flash("Deleted.", "success")
    target = safe_next(url_for("library.index"))
    if target.startswith(f"/g/{generation_id}"):
        target = url_for("library.index")
    return redirect(target)


@bp.post("/g/<rid:generation_id>/favorite")
def favorite(generation_id: str):
    """Mark or unmark as a favourite (``favorite=1|0``)."""
    value = forms.is_on(request.form.get("favorite", "1"))
    record = backend().update_generation(generation_id, {"favorite": value})
    return _done(generation_id, None, record)


@bp.post("/g/<rid:generation_id>/tags")
def tags(generation_id: str):
    """Replace the tags (comma-separated)."""
    record = backend().update_generation(generation_id, {"tags": forms.tags(request.form.get("tags", ""))})
    return _done(generation_id, "Tags saved.", record)


@bp.get("/g/<rid:generation_id>/events")
def events(generation_id: str) -> Response:
    """Relay the backend's live event stream for one generation (EventSource on the detail page)."""
    stack = ExitStack()
    upstream = stack.enter_context(backend().generation_events(generation_id))

    def relay() -> Iterator[bytes]:
        try:
            yield from upstream.iter_raw()
        except httpx.TransportError:
            # The engine went away (shutdown, restart): end the stream; EventSource reconnects by itself.
            return
        finally:
            stack.close()

    response = Response(stream_with_context(relay()), mimetype="text/event-stream")
    response.headers["X-Accel-Buffering"] = "no"
    return response


@bp.get("/assets/<rid:asset_id>")
def asset(asset_id: str) -> Response:
    """Stream an asset's bytes from the backend, by id only.

    ``Range`` passes through (video seeking gets 206), so do ``If-None-Match`` (304) and the backend's
    ``ETag``; ``?thumb=1`` asks for the thumbnail, ``?download=1`` for an attachment.
    """
    thumb = request.args.get("thumb") == "1"
    download = request.args.get("download") == "1"
    stack = ExitStack()
    try:
        upstream = stack.enter_context(backend().asset(
            asset_id,
            range_header=None if thumb else request.headers.get("Range"),
            if_none_match=request.headers.get("If-None-Match"),
            thumb=thumb,
            download=download,
        ))
    except BackendError as exc:
        stack.close()
        if exc.status in {404, 416}:
            abort(exc.status)
        raise

    def relay() -> Iterator[bytes]:
        try:
            yield from upstream.iter_raw()
        except httpx.TransportError:
            return  # the engine stopped mid-file: the browser sees a short body and retries the range
        finally:
            stack.close()

    content_type = upstream.headers.get("Content-Type", "application/octet-stream")
    response = Response(stream_with_context(relay()), status=upstream.status_code, content_type=content_type)
    for name in _ASSET_HEADERS:
        if name in upstream.headers:
            response.headers[name] = upstream.headers[name]
    inline = content_type.split(";")[0].strip().lower().startswith(_INLINE_PREFIXES) and "svg" not in content_type
    if not inline:
        # Never let a stored file render as a page in our origin.
        response.headers["Content-Type"] = "application/octet-stream"
    disposition = upstream.headers.get("Content-Disposition", "")
    if download and disposition.startswith("attachment"):
        response.headers["Content-Disposition"] = disposition
    elif inline and not download:
        response.headers["Content-Disposition"] = "inline"
    else:
        response.headers["Content-Disposition"] = f'attachment; filename="atelier-{asset_id[:8]}"'
    # Assets are content-addressed and never change under an id; the ETag revalidates cheaply anyway.
    response.headers["Cache-Control"] = "private, max-age=31536000, immutable"
    return response
