"""The Studio: write a prompt, pick a model, watch the answer stream in."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from datetime import date
from typing import Any

from flask import (
    Blueprint,
    Response,
    jsonify,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from werkzeug.exceptions import RequestEntityTooLarge

from backend.core.sizes import format_size
from backend.core.vocabulary import Status
from frontend import spending
from frontend.backend_client import BackendError
from frontend.forms import (
    IMAGE_ASPECT_RATIOS,
    IMAGE_SIZES,
    MAX_REFERENCES,
    MODES,
    FormError,
    asset_ids,
    generation_request,
)
from frontend.views import conversations
from frontend.web import (
    backend,
    backend_error_json,
    current_settings,
    current_status,
    flash_backend_error,
    json_error,
    wants_json,
)

bp = Blueprint("studio", __name__)

#: Largest reference image the UI forwards (the backend applies its own, possibly lower, limit).
MAX_REFERENCE_BYTES = 25 * 1024 * 1024
REFERENCE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")


def load_models(output: str) -> tuple[list[dict[str, Any]], dict[str, Any] | None, BackendError | None]:
    """Models producing ``output``, sorted by name; plus the raw answer (for ``stale``) or the error."""
    try:
        answer = backend().models(output)
    except BackendError as exc:
        return [], None, exc
    items = [m for m in answer.get("items", []) if isinstance(m, dict) and m.get("id")]
    items.sort(key=lambda m: str(m.get("name") or m["id"]).lower())
    return items, answer, None


def default_model(kind: str) -> str | None:
    """The remembered model for ``kind`` (``default_model_<kind>`` setting)."""
    values = (current_settings() or {}).get("values", {})
    value = values.get(f"default_model_{kind}")
    return value or None


def remember_model(kind: str, model: str) -> None:
    """Save the model just used as the default for ``kind``; a setting locked by policy stays as it is."""
    settings = current_settings() or {}
    name = f"default_model_{kind}"
    if settings.get("values", {}).get(name) == model or name in settings.get("locked", []):
        return
    # Remembering is a convenience: never fail a generation over it.
    with suppress(BackendError):
        backend().update_settings({name: model})


def video_options(model: dict[str, Any] | None) -> dict[str, Any]:
    """The choices a video model offers (``video`` block of ``GET /models``), with safe defaults."""
    video = (model or {}).get("video") or {}
    return {
        "durations": [d for d in video.get("supported_durations") or [] if isinstance(d, int | float)],
        "resolutions": [str(r) for r in video.get("supported_resolutions") or []],
        "aspect_ratios": [str(r) for r in video.get("supported_aspect_ratios") or []],
        "sizes": [str(s) for s in video.get("supported_sizes") or []],
        "frames": [str(f) for f in video.get("supported_frame_images") or []],
        "audio": bool(video.get("generate_audio")),
        "seed": bool(video.get("seed")),
    }


def common_video_options(models: list[dict[str, Any]]) -> dict[str, Any]:
    """What every one of ``models`` offers (a batch sends the same parameters to each): the choices they share."""
    options = [video_options(m) for m in models] or [video_options(None)]
    common = dict(options[0])
    for other in options[1:]:
        for name, value in other.items():
            common[name] = [v for v in common[name] if v in value] if isinstance(value, list) else \
                common[name] and value
    return common


def reference_records(ids: list[str]) -> list[dict[str, Any]]:
    """Minimal records for reference images chosen elsewhere (``?ref=<asset id>``): id and thumbnail URL."""
    return [{"id": ident, "thumb": url_for("generations.asset", asset_id=ident, thumb=1)} for ident in ids]


def active_generations(mode: str) -> list[dict[str, Any]]:
    """Image or video generations still on their way (so a reload shows them rendering)."""
    if mode == "text":
        return []
    items: list[dict[str, Any]] = []
    for status in (Status.RUNNING, Status.QUEUED):
        with suppress(BackendError):
            items.extend(backend().generations(kind=mode, status=status, limit=10).get("items", []))
    items.sort(key=lambda g: str(g.get("created_at") or ""), reverse=True)
    return items


def _budget() -> spending.Budget | None:
    """This month's spending against the budget, for the warning from 80 % (only when a budget is set)."""
    limit = ((current_settings() or {}).get("values") or {}).get("budget_monthly_usd")
    if not limit:
        return None
    try:
        rows = backend().usage("month", **{"from": date.today().replace(day=1).isoformat()}).get("rows", [])
    except BackendError:
        return None
    return spending.budget(rows, limit, date.today())


def _render_studio(mode: str, *, form: Any, selected: str | None, form_error: str | None, recent: list) -> str:
    models, models_answer, models_error = load_models(mode)
    chat = conversations.studio_context(request.args) if mode == "text" else {}
    if chat.get("leaf") and not request.args.get("model"):
        selected = chat["leaf"]["model"]  # the model can change per turn; a reply starts from the last one
    if models and selected not in {m["id"] for m in models}:
        selected = selected if mode == "text" and selected else None
    if mode != "text" and not selected and models:
        selected = models[0]["id"]
    chosen = next((m for m in models if m["id"] == selected), None)
    def ids(name: str) -> list[str]:
        return asset_ids(form.getlist(name) if hasattr(form, "getlist") else form.get(name))

    refs = ids("ref") + ids("input_asset_ids")
    try:
        templates = backend().templates(kind=mode, limit=200).get("items", [])
    except BackendError:
        templates = []
    # "Use template" without JavaScript: the chosen template's variables are drawn here, one field each.
    use_template = next((t for t in templates if t["id"] == form.get("template_id")), None)
    return render_template(
        "studio/index.html",
        use_template=use_template,
        mode=mode,
        models=models,
        models_answer=models_answer,
        models_error=models_error,
        selected_model=selected,
        recent=recent,
        status=current_status(),
        form=form,
        form_error=form_error,
        aspect_ratios=IMAGE_ASPECT_RATIOS,
        image_sizes=IMAGE_SIZES,
        video=video_options(chosen),
        references=reference_records(refs[:MAX_REFERENCES]),
        first_frame=reference_records((ids("first") + ids("first_frame_id"))[:1]),
        last_frame=reference_records((ids("last") + ids("last_frame_id"))[:1]),
        active=active_generations(mode),
        budget=_budget(),
        max_references=MAX_REFERENCES,
        reference_types=REFERENCE_TYPES,
        refine=_refine_source(form) if mode == "image" else None,
        **chat,
        templates=templates,
    )


def _refine_source(form: Any) -> dict[str, Any] | None:
    """The image being refined (``?parent=<generation id>``): the next prompt edits its images."""
    ident = conversations.ident(form.get("parent") or form.get("parent_id"))
    if not ident:
        return None
    try:
        record = backend().generation(ident)
    except BackendError:
        return None
    images = [a for a in record.get("assets") or [] if a.get("kind") == "image"]
    return {"id": record["id"], "prompt": record.get("prompt"),
            "thumbs": [url_for("generations.asset", asset_id=a["id"], thumb=1) for a in images]}


@bp.get("/")
def index() -> str:
    """The Studio page for one mode (text, image, video), with the recent history."""
    mode = request.args.get("mode", "text")
    if mode not in MODES:
        mode = "text"
    try:
        recent = backend().generations(limit=20).get("items", [])
    except BackendError:
        recent = []
    selected = request.args.get("model") or default_model(mode)
    return _render_studio(mode, form=request.args, selected=selected, form_error=None, recent=recent)


@bp.get("/studio/recent")
def recent() -> str:
    """The Recent list alone, so the Studio can refresh it after a generation starts or ends."""
    try:
        items = backend().generations(limit=20).get("items", [])
    except BackendError:
        items = []
    return render_template("studio/_recent.html", recent=items)


def _upload_files(files: list[Any]) -> list[str]:
    """Forward reference images picked in a plain (no-JavaScript) form to the backend; their ids."""
    ids = []
    for storage in files:
        if not storage or not storage.filename:
            continue
        mime = (storage.mimetype or "").lower()
        if mime not in REFERENCE_TYPES:
            raise BackendError(415, "unsupported_type", "Reference images must be PNG, JPEG, WebP or GIF.")
        ids.append(backend().upload_asset(storage.read(), mime)["id"])
    return ids


def _form_dict() -> dict[str, Any]:
    form: dict[str, Any] = request.form.to_dict()
    form["input_asset_ids"] = request.form.getlist("input_asset_ids")
    return form


def _json_answer(record: dict[str, Any], status: int = 200) -> tuple[Response, int]:
    html = render_template("generations/_result.html", gen=record, compact=True, follow=True)
    return jsonify({"generation": record, "html": html}), status


@bp.post("/studio/generate")
def generate() -> Response | tuple[Any, int]:
    """Run a generation from the Studio form.

    Our script posts with ``X-Requested-With: fetch`` and gets ``{"generation", "html"}`` (the result
    panel); a plain form post (no JavaScript) is redirected to the generation's page.
    """
    request.max_content_length = MAX_REFERENCE_BYTES * 4  # reference images may come with a plain form
    as_json = wants_json()
    form = _form_dict()
    mode = form.get("kind") if form.get("kind") in MODES else "text"
    try:
        uploaded = _upload_files(request.files.getlist("reference_files"))
    except BackendError as exc:
        if as_json:
            return backend_error_json(exc)
        return _render_studio(mode, form=request.form, selected=request.form.get("model"), form_error=exc.message,
                              recent=[]), 400
    if uploaded:
        if mode == "video":
            frames = asset_ids(form.get("first_frame_id")) + uploaded
            form["first_frame_id"], form["last_frame_id"] = frames[0], (frames[1] if len(frames) > 1 else "")
        else:
            form["input_asset_ids"] = list(form["input_asset_ids"]) + uploaded
    try:
        body = generation_request(form)
    except FormError as exc:
        if as_json:
            return json_error("bad_request", exc.message, 400)
        return _render_studio(mode, form=request.form, selected=request.form.get("model"), form_error=exc.message,
                              recent=[]), 400
    remember_model(body["kind"], body["model"])
    try:
        record = backend().create_generation(body)
    except BackendError as exc:
        if as_json:
            if exc.generation:
                return _json_answer(exc.generation, 200)
            return backend_error_json(exc)
        if exc.generation and exc.generation.get("id"):
            return redirect(url_for("generations.detail", generation_id=exc.generation["id"]))
        flash_backend_error(exc)
        return redirect(url_for("studio.index", mode=body["kind"]))
    if as_json:
        return _json_answer(record)
    return redirect(url_for("generations.detail", generation_id=record["id"]))


@bp.post("/studio/references")
def upload_reference() -> tuple[Response, int]:
    """Store one reference image sent as the raw request body (``Content-Type: image/png`` …).

    Answers ``{"id", "thumb", "url", "width", "height"}`` for the composer's reference list.
    """
    request.max_content_length = MAX_REFERENCE_BYTES
    mime = (request.mimetype or "").lower()
    if mime not in REFERENCE_TYPES:
        return json_error("unsupported_type", "Reference images must be PNG, JPEG, WebP or GIF.", 415)
    if (request.content_length or 0) > MAX_REFERENCE_BYTES:
        return _reference_too_large()
    try:
        data = request.get_data(cache=False)
    except RequestEntityTooLarge:  # a chunked body without a declared length
        return _reference_too_large()
    if not data:
        return json_error("invalid_request", "The image is empty.", 422)
    record = backend().upload_asset(data, mime)
    return jsonify({
        "id": record["id"],
        "url": url_for("generations.asset", asset_id=record["id"]),
        "thumb": url_for("generations.asset", asset_id=record["id"], thumb=1) if record.get("thumb_url")
        else url_for("generations.asset", asset_id=record["id"]),
        "width": record.get("width"),
        "height": record.get("height"),
    }), 201


def _reference_too_large() -> tuple[Response, int]:
    message = f"The image is larger than the {format_size(MAX_REFERENCE_BYTES)} limit for reference images."
    return json_error("payload_too_large", message, 413)


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _sse_error(code: str, message: str, status: int) -> Response:
    """One ``error`` event as the whole answer: the page reads every outcome from the stream the same way."""
    return Response(_sse("error", {"error": {"code": code, "message": message}}), status=status,
                    mimetype="text/event-stream")


@bp.post("/studio/stream")
def stream() -> Response:
    """Start a streamed text generation and relay the backend's event stream to the page.

    Errors before the stream starts (no key, offline → queued) are sent as one ``error`` event so the
    page handles every outcome the same way.
    """
    try:
        payload = request.get_json(silent=True)
    except RecursionError:  # nested deeper than the parser can follow: malformed for our purposes
        payload = None
    if not isinstance(payload, dict):
        return _sse_error("bad_request", "Malformed request.", 400)
    payload["kind"] = "text"
    try:
        body = generation_request(payload)
    except FormError as exc:
        return _sse_error("bad_request", exc.message, 400)
    stack = ExitStack()
    try:
        upstream = stack.enter_context(backend().stream_generation(body))
    except BackendError as exc:
        stack.close()
        return Response(_sse("error", exc.payload), mimetype="text/event-stream")

    if "text/event-stream" not in upstream.headers.get("content-type", ""):
        # Not sent now (the turn waits for its parent, the outbox is paused, or the request was deferred): the
        # backend answered with the queued record. Hand it over as one event, so the page shows the card at
        # once and follows it.
        try:
            record = json.loads(upstream.read() or b"null")
        finally:
            stack.close()
        if not isinstance(record, dict):
            return _sse_error("bad_request", "The engine gave an answer Atelier did not understand.", 502)
        return Response(_sse("generation", record), mimetype="text/event-stream")

    def relay() -> Iterator[bytes]:
        try:
            yield from upstream.iter_raw()
        except Exception:  # noqa: BLE001 - the page learns of the break and reloads the saved record
            yield _sse("error", {"error": {"code": "stream_broken",
                                           "message": "The connection to the engine broke."}})
        finally:
            stack.close()
            # Remembered once the answer is complete: a settings round trip must not delay the first token.
            remember_model("text", body["model"])

    response = Response(stream_with_context(relay()), mimetype="text/event-stream")
    response.headers["X-Accel-Buffering"] = "no"
    return response
