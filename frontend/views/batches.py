"""Batches and Compare: one template (or prompt) over many rows and models, followed to the end; one prompt
to 2–4 models side by side."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

from flask import Blueprint, Response, flash, jsonify, redirect, render_template, request, url_for

from frontend import spending
from frontend.backend_client import BackendError
from frontend.batch_rows import HEADER_CHOICES, MAX_ITEMS, Estimate, Rows, estimate, read_rows
from frontend.forms import FormError, video_params
from frontend.rendering import format_cost
from frontend.views.studio import common_video_options, default_model, load_models
from frontend.web import backend, backend_error_json, current_settings, flash_backend_error, json_error, wants_json

bp = Blueprint("batches", __name__)

KINDS = ("text", "image", "video")
#: The video fields, named as in the Studio (``forms.video_params`` reads them).
VIDEO_FIELDS = ("duration", "resolution", "aspect_ratio", "size", "seed", "generate_audio", "audio_offered")
MAX_MODELS = 8
MAX_CSV_BYTES = 5 * 1024 * 1024
ITEMS_PER_PAGE = 200
ACTIONS = {"pause": "Batch paused: items already out finish, nothing new is sent.",
           "resume": "Batch resumed.",
           "cancel": "Batch cancelled. What finished is kept."}


@bp.get("/batches")
def index() -> str:
    page = backend().batches(limit=50, cursor=request.args.get("cursor") or None)
    return render_template("batches/index.html", items=page.get("items", []), next_cursor=page.get("next_cursor"))


def _templates() -> list[dict[str, Any]]:
    try:
        return backend().templates(limit=200).get("items", [])
    except BackendError:
        return []


def _form_state() -> dict[str, Any]:
    form = request.form if request.method == "POST" else request.args
    kind = form.get("kind") if form.get("kind") in KINDS else "text"
    rows_text = form.get("rows", "")
    upload = request.files.get("rows_file") if request.method == "POST" else None
    if upload is not None and upload.filename:
        data = upload.read(MAX_CSV_BYTES + 1)
        if len(data) > MAX_CSV_BYTES:
            raise FormError("The CSV file is larger than 5 MB; split it.")
        rows_text = data.decode("utf-8-sig", errors="replace")
    try:
        repeat = int(form.get("repeat") or 1)
    except ValueError:
        repeat = 0
    return {
        "name": form.get("name", "").strip(),
        "kind": kind,
        "template_id": form.get("template_id", "").strip(),
        "prompt": form.get("prompt", ""),
        "system": form.get("system", "").strip(),
        "models": [m for m in (form.getlist("models") if hasattr(form, "getlist") else []) if m.strip()],
        "rows": rows_text,
        "header": form.get("header") if form.get("header") in HEADER_CHOICES else "auto",
        "repeat": repeat,
        "video": {name: form.get(name) for name in VIDEO_FIELDS if form.get(name) is not None}
        if kind == "video" else {},
    }


def _variables(state: dict[str, Any], templates: list[dict[str, Any]]) -> tuple[list[str], dict[str, Any] | None]:
    """The variables the rows must give: the template's, or those of a prompt written here."""
    if state["template_id"]:
        template = next((t for t in templates if t["id"] == state["template_id"]), None)
        if template is None:
            raise FormError("That template no longer exists; pick another one.")
        return list(template.get("variables") or []), template
    if not state["prompt"].strip():
        raise FormError("Choose a template or write a prompt.")
    try:
        preview = backend().preview_template(state["prompt"], state["system"] or None, {})
    except BackendError as exc:
        raise FormError(exc.message) from None
    return list(preview.get("variables") or []), None


def _prompts(state: dict[str, Any], template: dict[str, Any] | None, rows: list[dict[str, str]]) -> list[str]:
    """Each row's prompt rendered with placeholders (only the length matters for the estimate)."""
    source = template["prompt"] if template else state["prompt"]
    if rows == [{}]:
        return [source]
    average = sum(len(" ".join(row.values())) for row in rows) // max(1, len(rows))
    return [source + "x" * average] * len(rows)


def _budget_left() -> tuple[float | None, bool]:
    """What is left of this month's budget (None: no budget) and whether the policy locks it."""
    settings = current_settings() or {}
    limit = (settings.get("values") or {}).get("budget_monthly_usd")
    if not limit:
        return None, False
    try:
        rows = backend().usage("month", **{"from": date.today().replace(day=1).isoformat()}).get("rows", [])
    except BackendError:
        return None, False
    spent = spending.budget(rows, limit, date.today()).spent
    return max(0.0, float(limit) - spent), "budget_monthly_usd" in settings.get("locked", [])


def _check(state: dict[str, Any], templates: list[dict[str, Any]],
           models: list[dict[str, Any]]) -> tuple[Rows, Estimate, str | None]:
    """Rows, the estimate, and a warning; :class:`FormError` when the batch cannot start as it is."""
    if not state["models"]:
        raise FormError("Pick at least one model.")
    if len(state["models"]) > MAX_MODELS:
        raise FormError(f"Pick at most {MAX_MODELS} models ({len(state['models'])} are picked).")
    if not 1 <= state["repeat"] <= 10:
        raise FormError("Repeat each row 1 to 10 times.")
    variables, template = _variables(state, templates)
    parsed = read_rows(state["rows"], variables, header=state["header"])
    rows = parsed.rows
    known = {m["id"]: m for m in models}
    chosen = [known.get(m, {"id": m}) for m in state["models"]]
    state["params"] = video_params(state["video"]) if state["kind"] == "video" else {}
    est = estimate(kind=state["kind"], models=chosen, prompts=_prompts(state, template, rows), repeat=state["repeat"],
                   params=state["params"])
    if est.items > MAX_ITEMS:
        raise FormError(f"This batch would make {est.items:,} generations; at most {MAX_ITEMS:,} fit in one batch.")
    warning = None
    left, locked = _budget_left()
    if left is not None and est.low is not None and est.low > left:
        message = (f"This batch would cost at least {format_cost(est.low)}, more than the {format_cost(left)} left "
                   "of this month's budget.")
        if locked:
            raise FormError(message + " The budget is set by your organisation; make the batch smaller.")
        warning = message + " Items stop being sent once the budget is spent; raise it in Settings if you need to."
    return parsed, est, warning


def _render_new(state: dict[str, Any], *, error: str | None = None, est: Estimate | None = None,
                warning: str | None = None, rows: Rows | None = None, status: int = 200):
    templates = _templates()
    models, _, models_error = load_models(state["kind"])
    # A batch sends the same parameters to every model: offer what the chosen video models share.
    video = common_video_options([m for m in models if m["id"] in state["models"]])
    return render_template("batches/new.html", state=state, templates=templates, models=models, video=video,
                           models_error=models_error, kinds=KINDS, error=error, estimate=est, warning=warning,
                           row_count=len(rows.rows) if rows is not None else None, parsed=rows,
                           max_models=MAX_MODELS), status


@bp.get("/batches/new")
def new():
    state = _form_state()
    if not state["models"]:
        default = default_model(state["kind"])
        state["models"] = [default] if default else []
    return _render_new(state)


@bp.post("/batches/new")
def create():
    """``action=review`` shows the size and cost range; ``action=start`` checks again and starts the batch."""
    try:
        state = _form_state()
        models, _, _ = load_models(state["kind"])
        rows, est, warning = _check(state, _templates(), models)
    except FormError as exc:
        state = locals().get("state") or {"name": "", "kind": "text", "template_id": "", "prompt": "",
                                          "system": "", "models": [], "rows": "", "header": "auto", "repeat": 1,
                                          "video": {}}
        return _render_new(state, error=exc.message, status=422)
    if request.form.get("action") != "start":
        return _render_new(state, est=est, warning=warning, rows=rows)
    body: dict[str, Any] = {"kind": state["kind"], "models": state["models"], "rows": rows.rows,
                            "repeat": state["repeat"]}
    if state["name"]:
        body["name"] = state["name"][:200]
    if state["template_id"]:
        body["template_id"] = state["template_id"]
    else:
        body["prompt"] = state["prompt"]
    if state["system"]:
        body["system"] = state["system"]
    if state["params"]:
        body["params"] = state["params"]
    try:
        created = backend().create_batch(body)
    except BackendError as exc:
        if exc.status in (400, 402, 403, 404, 422, 429):
            return _render_new(state, error=exc.message, est=est, rows=rows, status=422)
        raise
    return redirect(url_for("batches.detail", batch_id=created["id"]))


def _page(batch_id: str) -> dict[str, Any]:
    return backend().batch(batch_id, limit=ITEMS_PER_PAGE, cursor=request.args.get("cursor") or None)


def _columns(items: list[dict[str, Any]]) -> list[str]:
    names: dict[str, None] = {}
    for item in items:
        for name in item.get("variables") or {}:
            names[name] = None
    return list(names)


@bp.get("/batches/<rid:batch_id>")
def detail(batch_id: str) -> str:
    """Progress, counts, cost so far and the items; ``?partial=1`` answers only the live part."""
    batch = _page(batch_id)
    template = "batches/_live.html" if request.args.get("partial") == "1" else "batches/detail.html"
    return render_template(template, batch=batch, items=batch.get("items", []), columns=_columns(batch["items"]),
                           next_cursor=batch.get("next_cursor"))


@bp.post("/batches/<rid:batch_id>/<any(pause, resume, cancel):action>")
def act(batch_id: str, action: str):
    try:
        record = backend().batch_action(batch_id, action)
    except BackendError as exc:
        if wants_json():
            return backend_error_json(exc)
        flash_backend_error(exc)
        return redirect(url_for("batches.detail", batch_id=batch_id))
    if wants_json():
        return jsonify(record)
    flash(ACTIONS[action], "success")
    return redirect(url_for("batches.detail", batch_id=batch_id))


@bp.get("/batches/<rid:batch_id>/export.csv")
def export_csv(batch_id: str) -> Response:
    """Every item: its variables, model, status, output (text, or the files' addresses) and cost."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = backend().batch(batch_id, limit=200, cursor=cursor)
        items += page.get("items", [])
        cursor = page.get("next_cursor")
        if not cursor:
            break
    columns = _columns(items)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*columns, "model", "status", "output", "cost_usd", "prompt_tokens", "completion_tokens", "id"])
    for item in items:
        variables = item.get("variables") or {}
        output = item.get("output_text") or " ".join(
            url_for("generations.asset", asset_id=a["id"], _external=True) for a in item.get("assets") or [])
        usage = item.get("usage") or {}
        writer.writerow([*(_cell(variables.get(c, "")) for c in columns), item["model"], item["status"],
                         _cell(output), usage.get("cost_usd") or "", usage.get("prompt_tokens") or "",
                         usage.get("completion_tokens") or "", item["id"]])
    name = (page.get("name") or "batch").replace('"', "")[:60]
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}-{batch_id[:8]}.csv"'})


@bp.post("/batches/<rid:batch_id>/export")
def export_zip(batch_id: str) -> Response:
    """The batch as a library export (``POST /exports`` with ``filter.batch_id``), downloaded at once."""
    fmt = request.form.get("format", "jsonl")
    fmt = fmt if fmt in ("markdown", "jsonl", "parquet") else "jsonl"
    try:
        made = backend().create_export(fmt, {"batch_id": batch_id})
    except BackendError as exc:
        flash_backend_error(exc)
        return redirect(url_for("batches.detail", batch_id=batch_id))
    return redirect(url_for("data.download", export_id=made["id"]))


def _cell(value: Any) -> str:
    """A CSV cell a spreadsheet will not run as a formula."""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


# -- Compare: one prompt, 2–4 models, side by side -------------------------------------------------------------

@bp.get("/compare")
def compare() -> str:
    models, _, models_error = load_models("text")
    chosen = [m for m in request.args.getlist("models") if m] or [m for m in [default_model("text")] if m]
    return render_template("batches/compare.html", models=models, models_error=models_error, chosen=chosen,
                           prompt=request.args.get("prompt", ""))


@bp.post("/compare")
def start_compare():
    """Start a compare (a batch of one prompt × 2–4 models). Our script gets ``{"batch", "items"}`` and follows
    each answer; a plain form post goes to the batch's page."""
    payload = request.get_json(silent=True) if request.is_json else request.form
    payload = payload or {}
    models = payload.getlist("models") if hasattr(payload, "getlist") else list(payload.get("models") or [])
    models = list(dict.fromkeys(str(m).strip() for m in models if str(m).strip()))
    prompt = str(payload.get("prompt") or "").strip()
    system = str(payload.get("system") or "").strip()
    if not prompt:
        return json_error("bad_request", "Write a prompt first.", 400)
    if not 2 <= len(models) <= 4:
        return json_error("bad_request", "Pick 2 to 4 different models to compare.", 400)
    body: dict[str, Any] = {"kind": "text", "models": models, "prompt": prompt, "rows": [{}],
                            "name": "Compare: " + prompt[:80]}
    if system:
        body["system"] = system
    try:
        batch = backend().create_batch(body)
        items = backend().batch(batch["id"], limit=10).get("items", [])
    except BackendError as exc:
        if wants_json():
            return backend_error_json(exc)
        flash_backend_error(exc)
        return redirect(url_for("batches.compare"))
    if not wants_json():
        return redirect(url_for("batches.detail", batch_id=batch["id"]))
    return jsonify({"batch": batch, "items": [
        {"id": item["id"], "model": item["model"],
         "events": url_for("generations.events", generation_id=item["id"]),
         "result": url_for("generations.result", generation_id=item["id"]),
         "favorite": url_for("generations.favorite", generation_id=item["id"]),
         "detail": url_for("generations.detail", generation_id=item["id"])} for item in items]})
