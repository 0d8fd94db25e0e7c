"""Your data, from Settings: back up now, restore a backup, export, download an export, import one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, flash, jsonify, redirect, request, stream_with_context, url_for
from werkzeug.wrappers import Response as WerkzeugResponse

from frontend.backend_client import BackendError
from frontend.web import backend, backend_error_json, flash_backend_error, json_error, wants_json

bp = Blueprint("data", __name__)

FORMATS = {"markdown": "Markdown", "jsonl": "JSONL", "parquet": "Parquet"}
#: The most the UI server reads in one request (desktop/servers.py, UI_MAX_BODY_BYTES): the plain form's limit.
#: The page's script sends larger exports in chunks, up to ATELIER_IMPORT_MAX_BYTES (docs/data.md).
IMPORT_MAX_BYTES = 128 * 2**20


def _back() -> WerkzeugResponse:
    # To the top of Settings, where the message shows (an #anchor would scroll it out of view).
    return redirect(url_for("settings.index"))


@bp.post("/settings/backups")
def backup_now() -> WerkzeugResponse:
    try:
        made = backend().make_backup()
    except BackendError as exc:
        flash_backend_error(exc)
        return _back()
    flash(f"Backed up {made['items']} item{'' if made['items'] == 1 else 's'}.", "success")
    return _back()


@bp.post("/settings/backups/<rid:backup_id>/restore")
def restore(backup_id: str) -> WerkzeugResponse:
    try:
        done = backend().restore_backup(backup_id)
    except BackendError as exc:
        flash_backend_error(exc)
        return _back()
    flash(f"Restored {done['items']} item{'' if done['items'] == 1 else 's'} from the backup. Your library "
          f"as it was before is kept as {done['kept_aside']}. The outbox is paused: resume it on the Queue page "
          "when you want waiting requests to be sent.", "success")
    return _back()


@bp.post("/settings/exports")
def export() -> WerkzeugResponse:
    fmt = request.form.get("format", "jsonl")
    if fmt not in FORMATS:
        fmt = "jsonl"
    try:
        made = backend().create_export(fmt)
    except BackendError as exc:
        flash_backend_error(exc)
        return _back()
    flash(f"Exported {made['items']} item{'' if made['items'] == 1 else 's'} as {FORMATS[fmt]}: {made['file']} "
          "(download it below).", "success")
    return _back()


@bp.get("/settings/exports/<rid:export_id>")
def download(export_id: str) -> Response:
    """The export zip, streamed from the backend as a download."""
    context = backend().open_stream("GET", f"/exports/{export_id}")
    upstream = context.__enter__()

    def chunks() -> Iterator[bytes]:
        try:
            yield from upstream.iter_raw()
        finally:
            context.__exit__(None, None, None)

    headers = {"Content-Disposition": upstream.headers.get("content-disposition", "attachment"),
               "Content-Type": "application/zip"}
    if upstream.headers.get("content-length"):
        headers["Content-Length"] = upstream.headers["content-length"]
    return Response(stream_with_context(chunks()), headers=headers)


def _body() -> Iterator[bytes]:
    """This request's raw body, read a MiB at a time (passed on to the backend, never held whole)."""
    while chunk := request.stream.read(1 << 20):
        yield chunk


@bp.post("/settings/import")
def import_export():
    """An export zip in one request: the raw body, or the plain form's file without JavaScript."""
    request.max_content_length = IMPORT_MAX_BYTES
    if not wants_json():
        return _import_form()
    try:
        result = backend().import_export(_body(), request.content_length)
    except BackendError as exc:
        return backend_error_json(exc)
    return jsonify(result)


def _import_form() -> WerkzeugResponse:
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        flash("Choose an export file (.zip) to import.", "error")
        return _back()

    def chunks() -> Iterator[bytes]:
        while chunk := upload.stream.read(1 << 20):
            yield chunk

    try:
        result = backend().import_export(chunks(), None)
    except BackendError as exc:
        flash_backend_error(exc)
        return _back()
    flash(_imported(result), "success")
    return _back()


def _imported(result: dict[str, Any]) -> str:
    added, skipped = result["added"], result["skipped"]
    return (f"Added {added} item{'' if added == 1 else 's'}"
            + (f"; {skipped} already here {'was' if skipped == 1 else 'were'} skipped." if skipped else "."))


# The page's script sends larger exports in chunks through an upload session (docs/data.md, "Imports").
@bp.post("/settings/import/uploads")
def start_upload() -> Any:
    try:
        return jsonify(backend().start_import_upload())
    except BackendError as exc:
        return backend_error_json(exc)


@bp.put("/settings/import/uploads/<rid:upload_id>")
def upload_chunk(upload_id: str) -> Any:
    """One chunk, streamed through (the backend bounds its size: 32 MiB)."""
    request.max_content_length = IMPORT_MAX_BYTES
    try:
        offset = int(request.args.get("offset", ""))
    except ValueError:
        return json_error("invalid_request", "The chunk's offset is missing.", 422)
    try:
        return jsonify(backend().send_import_chunk(upload_id, offset, _body(), request.content_length))
    except BackendError as exc:
        return backend_error_json(exc)


@bp.post("/settings/import/uploads/<rid:upload_id>/finish")
def finish_upload(upload_id: str) -> Any:
    try:
        return jsonify(backend().finish_import_upload(upload_id))
    except BackendError as exc:
        return backend_error_json(exc)


@bp.delete("/settings/import/uploads/<rid:upload_id>")
def cancel_upload(upload_id: str) -> Any:
    try:
        backend().cancel_import_upload(upload_id)
    except BackendError as exc:
        return backend_error_json(exc)
    return "", 204
