"""Your data, from Settings: back up now, restore a backup, export, download an export, import one."""

from __future__ import annotations

from collections.abc import Iterator

from flask import Blueprint, Response, flash, jsonify, redirect, request, stream_with_context, url_for
from werkzeug.wrappers import Response as WerkzeugResponse

from frontend.backend_client import BackendError
from frontend.web import backend, backend_error_json, flash_backend_error

bp = Blueprint("data", __name__)

FORMATS = {"markdown": "Markdown", "jsonl": "JSONL", "parquet": "Parquet"}
#: The most the UI server reads in one request (desktop/servers.py, UI_MAX_BODY_BYTES); larger exports are
#: imported through the API, which streams up to ATELIER_IMPORT_MAX_BYTES (docs/data.md).
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


@bp.post("/settings/import")
def import_export():
    """An export zip sent as the raw body by the page's script, streamed through to the backend."""
    request.max_content_length = IMPORT_MAX_BYTES

    def chunks() -> Iterator[bytes]:
        while chunk := request.stream.read(1 << 20):
            yield chunk

    try:
        result = backend().import_export(chunks(), request.content_length)
    except BackendError as exc:
        return backend_error_json(exc)
    return jsonify(result)
