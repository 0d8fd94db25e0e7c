"""Settings: the OpenRouter key, preferences (theme, default models), and what generations cost."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from frontend import forms, spending
from frontend.backend_client import BackendError
from frontend.views.studio import load_models
from frontend.web import backend, current_credentials, current_settings, flash_backend_error

bp = Blueprint("settings", __name__)

THEMES = ("system", "light", "dark")
#: The preferences this page edits, with their kind; other settings are listed read-only.
EDITABLE: dict[str, str] = {
    "theme": "choice",
    "default_model_text": "model",
    "default_model_image": "model",
    "default_model_video": "model",
    "retry_unknown_text": "bool",
    "budget_monthly_usd": "money",
}

#: Words for the read-only settings ("Other settings"): a label and what the value does. A setting missing here
#: is shown by its name, made readable.
OTHER_SETTINGS: dict[str, tuple[str, str]] = {
    "default_temperature": ("Default temperature",
                            "Preselected in the Studio for text: lower is more focused, higher more varied (0–2)."),
    "default_max_tokens": ("Default max tokens",
                           "The longest answer the Studio asks for unless you set another; a cap keeps OpenRouter "
                           "from refusing a request for lack of credits."),
}


def other_settings(values: dict[str, Any]) -> list[dict[str, Any]]:
    """The settings this page does not edit, each with a label, help text and its value in words."""
    rows = []
    for name, value in sorted(values.items()):
        if name in EDITABLE:
            continue
        label, help_text = OTHER_SETTINGS.get(name, (name.replace("_", " ").capitalize(), ""))
        if value is None:
            shown = "Not set"
        elif isinstance(value, bool):
            shown = "On" if value else "Off"
        elif isinstance(value, int) and not isinstance(value, bool):
            shown = f"{value:,}"
        else:
            shown = str(value)
        rows.append({"name": name, "label": label, "help": help_text, "value": shown})
    return rows


def _usage(group_by: str) -> dict[str, Any] | None:
    try:
        return backend().usage(group_by)
    except BackendError:
        return None


@bp.get("/settings")
def index() -> str:
    """The settings page."""
    settings = current_settings() or {"values": {}, "locked": [], "policy_file": None}
    credentials = current_credentials()
    if credentials is None:
        credentials = backend().credentials()  # unreachable: let the error page say so
    models = {kind: load_models(kind)[0] for kind in ("text", "image", "video")}
    by_model = _usage("model")
    period = request.args.get("period", "30d")
    if period not in spending.PERIODS:
        period = "30d"
    group_by, count, _ = spending.PERIODS[period]
    by_period = _usage(group_by)
    by_month = by_period if group_by == "month" else _usage("month")
    today = date.today()
    others = other_settings(settings.get("values", {}))
    return render_template(
        "settings/index.html",
        values=settings.get("values", {}),
        locked=set(settings.get("locked", [])),
        policy_file=settings.get("policy_file"),
        others=others,
        credentials=credentials,
        models=models,
        themes=THEMES,
        by_model=by_model,
        period=period,
        periods=spending.PERIODS,
        period_bars=spending.bars(by_period["rows"], group_by, count, today) if by_period else None,
        model_bars=spending.model_bars(by_model["rows"]) if by_model else None,
        budget=spending.budget(by_month["rows"] if by_month else [], settings.get("values", {}).get(
            "budget_monthly_usd"), today),
        backups=_listing(backend().backups),
        exports=_listing(backend().exports)[:5],
    )


def _listing(call: Any) -> list[dict[str, Any]] | None:
    try:
        return call().get("items", [])
    except BackendError:
        return None


@bp.post("/settings/key")
def save_key():
    """Store a pasted OpenRouter key (validated by the backend when online)."""
    api_key = request.form.get("api_key", "").strip()
    if not api_key:
        flash("Paste your OpenRouter API key first.", "error")
        return redirect(url_for("settings.index"))
    try:
        answer = backend().set_api_key(api_key)
    except BackendError as exc:
        flash_backend_error(exc)
        return redirect(url_for("settings.index"))
    if answer.get("verified"):
        flash("Key saved and verified with OpenRouter.", "success")
    else:
        flash("Key saved. It will be checked with OpenRouter once you are online.", "success")
    return redirect(url_for("settings.index"))


@bp.post("/settings/key/delete")
def delete_key():
    """Forget the stored key."""
    backend().delete_api_key()
    flash("Key removed from this computer.", "success")
    return redirect(url_for("settings.index"))


@bp.post("/settings/preferences")
def save_preferences():
    """Save the preferences that changed; locked ones are never sent."""
    settings = current_settings() or {"values": {}, "locked": []}
    values, locked = settings.get("values", {}), set(settings.get("locked", []))
    changes: dict[str, Any] = {}
    for name, kind in EDITABLE.items():
        if name in locked or name not in values:
            continue
        if kind != "bool" and name not in request.form:
            continue  # not on the submitted form: leave it as it is (an unticked checkbox is absent too)
        if kind == "bool":
            new: Any = forms.is_on(request.form.get(name))
        elif kind == "money":
            try:
                new = forms.budget(request.form.get(name, ""))
            except forms.FormError as exc:
                flash(exc.message, "error")
                return redirect(url_for("settings.index"))
        else:
            new = request.form.get(name, "").strip()
            if kind == "choice" and new not in THEMES:
                continue
            if kind == "model" and not new:
                new = None
        if new != values.get(name):
            changes[name] = new
    if changes:
        try:
            backend().update_settings(changes)
        except BackendError as exc:
            flash_backend_error(exc)
            return redirect(url_for("settings.index"))
        flash("Preferences saved.", "success")
    else:
        flash("Nothing to change.", "info")
    return redirect(url_for("settings.index"))


@bp.get("/settings/diagnostics")
def diagnostics() -> str | tuple[str, int]:
    """Run the engine's diagnostics (the ``atelier doctor`` checks) and show the report.

    The Settings page loads this into its Diagnostics card on request (it probes the network, so it is
    not run on every visit); without JavaScript it is a page of its own.
    """
    try:
        report = backend().diagnostics()
    except BackendError as exc:
        if exc.status == 404:
            report, problem = None, "This version of the Atelier engine has no diagnostics."
        else:
            report, problem = None, exc.message
    else:
        problem = None
    template = "settings/_diagnostics.html" if request.args.get("partial") == "1" else "settings/diagnostics.html"
    return render_template(template, report=report, problem=problem)
