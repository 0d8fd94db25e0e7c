"""Screens rendered by the UI against a real backend (uvicorn + DuckDB in a temp dir) over real HTTP."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from frontend import backend_of, create_app


@pytest.fixture
def ui(api) -> Iterator[httpx.Client]:
    """A signed-in HTTP client for a Flask UI server wired to the real backend."""
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


def test_studio_welcomes_a_first_run_without_a_key(ui: httpx.Client) -> None:
    page = ui.get("/")
    assert page.status_code == 200
    assert "Connect your OpenRouter key" in page.text
    assert 'href="/settings#key"' in page.text


def test_layout_shows_navigation_and_the_backend_state(ui: httpx.Client) -> None:
    page = ui.get("/")
    for label in ("Studio", "Library", "Queue", "Settings"):
        assert f"<span>{label}</span>" in page.text
    assert "data-status-pill" in page.text
    assert "Engine stopped" not in page.text  # the backend answered /status


def test_status_endpoint_reports_the_backend(ui: httpx.Client, api) -> None:
    state = ui.get("/ui/status", headers={"Accept": "application/json"}).json()
    assert state["engine"] is True
    assert state["key_configured"] is False
    assert {"queued", "running"} <= set(state["queue"])


def test_theme_setting_reaches_every_page(ui: httpx.Client, api) -> None:
    assert 'data-theme="system"' in ui.get("/").text
    with api.client() as backend:
        assert backend.put("/api/v1/settings", json={"theme": "dark"}).status_code == 200
    assert 'data-theme="dark"' in ui.get("/").text
    assert 'data-theme="dark"' in ui.get("/queue").text


def test_preferences_form_saves_through_the_backend(ui: httpx.Client, api) -> None:
    response = ui.post("/settings/preferences", data={"theme": "light"}, follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"].endswith("/settings")  # no fragment: the message stays in view
    with api.client() as backend:
        assert backend.get("/api/v1/settings").json()["values"]["theme"] == "light"


def test_studio_accepts_a_prompt_before_any_model_list(ui: httpx.Client) -> None:
    """First run offline: no model list yet, but every mode still takes a prompt for the default model (it waits
    in the outbox) and says why the list is missing, instead of showing a dead end."""
    for mode in ("text", "image", "video"):
        page = ui.get("/", params={"mode": mode})
        assert page.status_code == 200
        assert "data-composer" in page.text, mode
        assert "data-no-model-list" in page.text and "waits in the outbox" in page.text


def test_settings_page_shows_key_onboarding(ui: httpx.Client) -> None:
    page = ui.get("/settings")
    assert page.status_code == 200
    assert 'name="api_key"' in page.text
    assert 'type="password"' in page.text


def test_saving_a_key_never_shows_it_back(ui: httpx.Client, api) -> None:
    key = "sk-or-v1-" + "0123456789abcdef" * 4 + "WXYZ"
    response = ui.post("/settings/key", data={"api_key": key}, follow_redirects=True)
    assert response.status_code == 200
    assert key not in response.text
    assert key[:-4] not in response.text
    page = ui.get("/settings").text
    assert key not in page
    assert re.search(r"WXYZ", page)  # only the last four characters are shown
    for path in ("/", "/library", "/queue"):
        assert key not in ui.get(path).text


def test_library_and_queue_render_empty_states(ui: httpx.Client) -> None:
    library = ui.get("/library")
    assert library.status_code == 200
    assert "Your library is empty" in library.text
    queue = ui.get("/queue")
    assert queue.status_code == 200
    assert "The outbox is empty" in queue.text


def test_unknown_generation_is_a_friendly_404(ui: httpx.Client) -> None:
    page = ui.get("/g/doesnotexist")
    assert page.status_code == 404
    assert "Not found" in page.text


def test_ids_that_are_not_ids_never_reach_the_backend(ui: httpx.Client) -> None:
    for path in ("/g/..%2F..%2Fqueue", "/assets/..%2Fsettings", "/assets/a.b"):
        assert ui.get(path).status_code == 404
