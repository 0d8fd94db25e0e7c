"""The Studio: write a prompt, pick a model, watch the answer stream in."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from typing import Any

from flask import Blueprint, Response, flash, redirect, render_template, request, stream_with_context, url_for

from frontend.backend_client import BackendError
from frontend.templating import backend, current_settings, current_status

bp = Blueprint("studio", __name__)

MODES = ("text", "image", "video")
MAX_PROMPT_CHARS = 200_000


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


def _float(value: Any, low: float, high: float) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return min(max(number, low), high)


def _int(value: Any, low: int, high: int) -> int | None:
    if value is None or str(value).strip() == "":
        return None
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return min(max(number, low), high)


def build_request(form: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """Turn the Studio form (or its JSON twin) into a ``POST /generations`` body, or an error message."""
    kind = str(form.get("kind") or "text")
    if kind not in MODES:
        return None, "Unknown generation kind."
    prompt = str(form.get("prompt") or "").strip()
    model = str(form.get("model") or "").strip()
    if not prompt:
        return None, "Write a prompt first."
    if len(prompt) > MAX_PROMPT_CHARS:
        return None, f"The prompt is too long (over {MAX_PROMPT_CHARS:,} characters)."
    if not model:
        return None, "Pick a model first."
    body: dict[str, Any] = {"kind": kind, "model": model, "prompt": prompt}
    if kind == "text":
        system = str(form.get("system") or "").strip()
        if system:
            body["system"] = system
        params: dict[str, Any] = {}
        temperature = _float(form.get("temperature"), 0.0, 2.0)
        if temperature is not None:
            params["temperature"] = temperature
        max_tokens = _int(form.get("max_tokens"), 1, 1_000_000)
        if max_tokens is not None:
            params["max_tokens"] = max_tokens
        if params:
            body["params"] = params
    return body, None


@bp.get("/")
def index() -> str:
    """The Studio page for one mode (text, image, video), with the recent history."""
    mode = request.args.get("mode", "text")
    if mode not in MODES:
        mode = "text"
    models, models_answer, models_error = load_models(mode)
    try:
        recent = backend().generations(limit=20).get("items", [])
    except BackendError:
        recent = []
    selected = request.args.get("model") or default_model(mode)
    if models and selected not in {m["id"] for m in models}:
        selected = selected if mode == "text" and selected else None
    return render_template(
        "studio/index.html",
        mode=mode,
        models=models,
        models_answer=models_answer,
        models_error=models_error,
        selected_model=selected,
        recent=recent,
        status=current_status(),
        form=request.args,
        form_error=None,
    )


@bp.post("/studio/generate")
def generate() -> Response | tuple[str, int]:
    """Plain-form generation (works without JavaScript): run it, then show its page."""
    body, problem = build_request(request.form.to_dict())
    mode = request.form.get("kind", "text") if request.form.get("kind") in MODES else "text"
    if body is None:
        models, models_answer, models_error = load_models(mode)
        return render_template(
            "studio/index.html",
            mode=mode,
            models=models,
            models_answer=models_answer,
            models_error=models_error,
            selected_model=request.form.get("model"),
            recent=[],
            status=current_status(),
            form=request.form,
            form_error=problem,
        ), 400
    remember_model(body["kind"], body["model"])
    try:
        record = backend().create_generation(body)
    except BackendError as exc:
        if exc.generation and exc.generation.get("id"):
            return redirect(url_for("generations.detail", generation_id=exc.generation["id"]))
        flash(exc.message, "error")
        return redirect(url_for("studio.index", mode=body["kind"]))
    return redirect(url_for("generations.detail", generation_id=record["id"]))


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


@bp.post("/studio/stream")
def stream() -> Response:
    """Start a streamed text generation and relay the backend's event stream to the page.

    Errors before the stream starts (no key, offline → queued) are sent as one ``error`` event so the
    page handles every outcome the same way.
    """
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        return Response(_sse("error", {"error": {"code": "bad_request", "message": "Malformed request."}}),
                        mimetype="text/event-stream")
    payload["kind"] = "text"
    body, problem = build_request(payload)
    if body is None:
        return Response(_sse("error", {"error": {"code": "bad_request", "message": problem}}),
                        mimetype="text/event-stream")
    remember_model("text", body["model"])
    stack = ExitStack()
    try:
        upstream = stack.enter_context(backend().stream_generation(body))
    except BackendError as exc:
        stack.close()
        return Response(_sse("error", exc.payload), mimetype="text/event-stream")

    def relay() -> Iterator[bytes]:
        try:
            yield from upstream.iter_raw()
        except Exception:  # noqa: BLE001 - the page learns of the break and reloads the saved record
            yield _sse("error", {"error": {"code": "stream_broken",
                                           "message": "The connection to the engine broke."}})
        finally:
            stack.close()

    response = Response(stream_with_context(relay()), mimetype="text/event-stream")
    response.headers["X-Accel-Buffering"] = "no"
    return response
