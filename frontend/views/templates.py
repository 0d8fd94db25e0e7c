"""Templates: prompts with ``{{ variables }}`` to reuse — list, create, edit, duplicate, delete, live preview."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from backend.core.vocabulary import Kind
from frontend.backend_client import BackendError
from frontend.web import backend

bp = Blueprint("templates", __name__)

KINDS = tuple(Kind)
SAMPLE_PREFIX = "sample__"


def _form_body() -> dict[str, Any]:
    """The template the form describes, as the API takes it."""
    form = request.form
    kind = form.get("kind", "text")
    tags = [tag.strip() for tag in form.get("tags", "").split(",") if tag.strip()]
    return {
        "name": form.get("name", "").strip(),
        "kind": kind if kind in KINDS else "text",
        "prompt": form.get("prompt", ""),
        "system": form.get("system", "").strip() or None,
        "model": form.get("model", "").strip() or None,
        "tags": tags,
    }


def _samples() -> dict[str, str]:
    return {key[len(SAMPLE_PREFIX):]: value for key, value in request.form.items() if key.startswith(SAMPLE_PREFIX)}


def _editor(template: dict[str, Any], *, error: dict[str, Any] | None = None, status: int = 200):
    return render_template("templates/edit.html", template=template, kinds=KINDS, error=error), status


@bp.get("/templates")
def index() -> str:
    """Every template, newest first; ``?q=`` searches names, prompts and tags."""
    q = request.args.get("q", "").strip()
    cursor = request.args.get("cursor") or None
    page = backend().templates(q=q or None, cursor=cursor, limit=60)
    return render_template("templates/index.html", items=page.get("items", []),
                           next_cursor=page.get("next_cursor"), q=q)


@bp.get("/templates/new")
def new():
    return _editor({"name": "", "kind": request.args.get("kind", "text"), "prompt": "", "system": "",
                    "model": "", "tags": [], "variables": []})


@bp.post("/templates/new")
def create():
    body = _form_body()
    try:
        created = backend().create_template(body)
    except BackendError as exc:
        if exc.status in (400, 422):
            return _editor(body, error=exc.error, status=422)
        raise
    flash(f"Template “{created['name']}” saved.", "success")
    return redirect(url_for("templates.edit", template_id=created["id"]))


@bp.get("/templates/<rid:template_id>")
def edit(template_id: str):
    return _editor(backend().template(template_id))


@bp.post("/templates/<rid:template_id>")
def update(template_id: str):
    body = _form_body()
    try:
        saved = backend().replace_template(template_id, body)
    except BackendError as exc:
        if exc.status in (400, 422):
            return _editor({**body, "id": template_id}, error=exc.error, status=422)
        raise
    flash(f"Template “{saved['name']}” saved.", "success")
    return redirect(url_for("templates.edit", template_id=template_id))


@bp.post("/templates/<rid:template_id>/duplicate")
def duplicate(template_id: str) -> Response:
    original = backend().template(template_id)
    fields = ("kind", "prompt", "system", "model", "params", "tags")
    copy = backend().create_template({"name": f"{original['name']} (copy)"[:200],
                                      **{name: original[name] for name in fields}})
    flash(f"Made a copy of “{original['name']}”.", "success")
    return redirect(url_for("templates.edit", template_id=copy["id"]))


@bp.post("/templates/<rid:template_id>/delete")
def delete(template_id: str) -> Response:
    backend().delete_template(template_id)
    flash("Template deleted. What you made with it stays in the Library.", "success")
    return redirect(url_for("templates.index"))


@bp.post("/templates/preview")
def preview():
    """The editor's live preview: the variables found and the rendered text, or the error (with its line)."""
    body = _form_body()
    if not body["prompt"].strip():
        return jsonify({"variables": [], "prompt": "", "system": None})
    try:
        answer = backend().preview_template(body["prompt"], body["system"], _samples())
    except BackendError as exc:
        if exc.status not in (400, 422):
            raise
        # A template with a mistake in it is an ordinary state of the editor, not a failed request.
        return jsonify({"error": exc.error})
    return jsonify(answer)
