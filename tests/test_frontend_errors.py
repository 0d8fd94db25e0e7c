"""Errors reach the user as the engine words them: the backend's error object says when the fix is on the
Settings screen (``"action": "settings"``), and the pages and scripts link there on that alone — the UI adds no
sentence of its own and keeps no list of error codes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from backend.core.errors import AtelierError, LockedByPolicy, action_for, error_dict
from frontend import backend_of, create_app
from frontend.backend_client import BackendError

STATIC = Path(__file__).resolve().parent.parent / "frontend" / "static"
SETTINGS_LINK = 'data-error-action="settings"'


@pytest.fixture
def ui(api) -> Iterator[httpx.Client]:
    """A signed-in client of a UI wired to the real backend, with no key stored."""
    from desktop.servers import UiServer

    server = UiServer(None)
    app = create_app(api_url=api.url, token=api.token, port_getter=lambda: server.port)
    server.server.app = app
    server.start()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get("/login", params={"token": api.token}, follow_redirects=False).status_code == 302
        yield client
    server.stop()
    backend_of(app).close()


# -- the backend says where the fix is ------------------------------------------------------------------


@pytest.mark.parametrize("code", ["no_api_key", "invalid_key", "insufficient_credits", "budget_exceeded"])
def test_errors_fixed_in_settings_say_so(code: str) -> None:
    assert AtelierError("Fix it in Settings.", code=code).body()["error"] == {
        "code": code, "message": "Fix it in Settings.", "action": "settings"}
    assert error_dict(code, "m", upstream_status=None)["action"] == "settings"


def test_other_errors_carry_no_action_unless_given_one() -> None:
    assert "action" not in AtelierError("Write a prompt first.", code="invalid_request").body()["error"]
    assert "action" not in LockedByPolicy("Locked.").body()["error"]
    assert action_for("model_not_found") is None and action_for(None) is None
    assert AtelierError("Raise it.", code="custom", action="settings").body()["error"]["action"] == "settings"
    assert error_dict("content_blocked", "Rephrase.", upstream_status=403) == {
        "code": "content_blocked", "message": "Rephrase.", "upstream_status": 403}


def test_the_studio_passes_the_backends_error_and_action_to_its_script(ui: httpx.Client) -> None:
    response = ui.post("/studio/generate", data={"kind": "image", "model": "google/gemini-2.5-flash-image",
                                                 "prompt": "a red square"},
                       headers={"X-Requested-With": "fetch", "Accept": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "no_api_key" and error["action"] == "settings"
    stream = ui.post("/studio/stream", json={"model": "openai/gpt-4o-mini", "prompt": "Hi"},
                     headers={"X-Requested-With": "fetch", "Accept": "text/event-stream"})
    assert stream.text.startswith("event: error\n") and '"action":"settings"' in stream.text


def test_without_javascript_the_flashed_error_carries_its_link(ui: httpx.Client) -> None:
    response = ui.post("/studio/generate", data={"kind": "text", "model": "openai/gpt-4o-mini", "prompt": "Hi"},
                       follow_redirects=True)
    flashed = re.search(r'<div class="flash flash-error">(.*?)</div>', response.text, re.S).group(1)
    assert flashed.startswith("No OpenRouter key is set.") and SETTINGS_LINK in flashed
    saved = ui.post("/settings/preferences", data={"theme": "light", "budget_monthly_usd": "5"},
                      follow_redirects=True)
    assert "Preferences saved." in saved.text and SETTINGS_LINK not in saved.text


# -- pages render the link from the action alone --------------------------------------------------------


def _render(app, template: str, **context) -> str:
    from flask import render_template

    with app.test_request_context("/"):
        return render_template(template, **context)


def _record(error: dict, status: str = "failed") -> dict:
    return {"id": "g1", "kind": "text", "model": "openai/gpt-4o-mini", "prompt": "Hi", "status": status,
            "error": error, "usage": {}, "assets": []}


@pytest.fixture
def app():
    flask_app = create_app(api_url="http://127.0.0.1:9", token="t" * 32)
    yield flask_app
    backend_of(flask_app).close()


def test_a_failed_generation_shows_the_engines_message_and_no_second_line(app) -> None:
    html = _render(app, "generations/_result.html", gen=_record(
        {"code": "insufficient_credits", "message": "Not enough OpenRouter credits.", "upstream_status": 402}))
    callout = re.search(r'<div class="callout callout-error".*?</div>', html, re.S).group(0)
    assert "Not enough OpenRouter credits." in callout
    assert SETTINGS_LINK not in callout  # no action in this error: no link, and no fix invented by the UI
    assert re.findall(r"<p[ >]", callout) == ['<p ']  # only the "OpenRouter answered HTTP 402" line


def test_a_failed_generation_links_to_settings_when_its_error_says_so(app) -> None:
    html = _render(app, "generations/_result.html", gen=_record(
        {"code": "whatever", "message": "Paste a new key in Settings.", "action": "settings"}))
    assert SETTINGS_LINK in html and 'href="/settings"' in html
    queued = _render(app, "generations/_result.html", gen=_record(
        {"code": "no_api_key", "message": "No OpenRouter key is set.", "action": "settings"}, status="queued"))
    assert "Last attempt: No OpenRouter key is set." in queued and SETTINGS_LINK in queued


def test_the_error_page_shows_the_message_and_the_action_only(app) -> None:
    plain = BackendError(409, "conflict", "It changed meanwhile.")
    html = _render(app, "errors/backend.html", error=plain)
    assert "It changed meanwhile." in html and SETTINGS_LINK not in html
    keyed = BackendError(402, "budget_exceeded", "The budget is reached.", {
        "error": {"code": "budget_exceeded", "message": "The budget is reached.", "action": "settings"}})
    assert SETTINGS_LINK in _render(app, "errors/backend.html", error=keyed)


def test_scripts_keep_no_list_of_error_codes_and_one_list_of_end_statuses() -> None:
    scripts = {path.name: path.read_text() for path in STATIC.glob("*.js")}
    for name, text in scripts.items():
        for code in ("no_api_key", "invalid_key", "insufficient_credits", "budget_exceeded"):
            assert code not in text, f"{name} decides by error code"
        assert "/settings#key" not in text, f"{name} builds its own Settings link"
    assert sum(text.count('["succeeded", "failed", "interrupted", "cancelled"]') for text in scripts.values()) == 1
    assert sum(text.count("new EventSource(") for text in scripts.values()) == 1
    assert sum(text.count('"callout callout-error"') for text in scripts.values()) == 1


def test_a_generation_refused_for_its_credits_says_the_fix_is_in_settings(data_dir: Path) -> None:
    from tests.conftest import start_api
    from tests.fakes.behaviours import insufficient_credits
    from tests.fakes.openrouter import FakeOpenRouter

    with FakeOpenRouter() as fake:
        api = start_api(data_dir, openrouter_base_url=fake.base_url)
        try:
            with api.client() as c:
                assert c.put("/api/v1/credentials", json={"api_key": fake.key}).status_code == 200
                fake.enqueue("/chat/completions", insufficient_credits())
                refused = c.post("/api/v1/generations", json={"kind": "text", "model": "openai/gpt-4o-mini",
                                                              "prompt": "Hi"}).json()
            assert refused["error"]["code"] == "insufficient_credits"
            assert refused["generation"]["error"].get("action") == "settings"
        finally:
            api.stop()
