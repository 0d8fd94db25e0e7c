"""Forms → backend bodies (frontend/forms.py), and what the Studio answers when a posted value cannot be used:
a 400 that says which field and what to enter, never a 500, and nothing sent to the backend."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from frontend import backend_of, create_app
from frontend.forms import FormError, budget, generation_request, tags

TEXT = {"kind": "text", "model": "openai/gpt-4o-mini", "prompt": "Hello"}
BAD_NUMBERS = ["nan", "NaN", "inf", "-inf", "1e400", "warm", "0x1", "3"]


@pytest.fixture
def ui(api) -> Iterator[httpx.Client]:
    """A signed-in client of a UI wired to the real backend (no key, no OpenRouter)."""
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


# -- the module ------------------------------------------------------------------------------------------


def test_text_form_becomes_a_generation_body() -> None:
    body = generation_request({**TEXT, "system": " Be brief ", "temperature": "0.7", "max_tokens": "256"})
    assert body == {"kind": "text", "model": "openai/gpt-4o-mini", "prompt": "Hello", "system": "Be brief",
                    "params": {"temperature": 0.7, "max_tokens": 256}}
    assert "params" not in generation_request({**TEXT, "temperature": "", "max_tokens": " "})


@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_a_temperature_that_is_not_a_number_in_range_is_refused(value: str) -> None:
    with pytest.raises(FormError, match="Temperature must be a number from 0 to 2"):
        generation_request({**TEXT, "temperature": value})


@pytest.mark.parametrize(("field", "value", "label"), [
    ("max_tokens", "many", "Max tokens"), ("max_tokens", "0", "Max tokens"), ("max_tokens", "1.5", "Max tokens"),
])
def test_whole_numbers_are_checked_too(field: str, value: str, label: str) -> None:
    with pytest.raises(FormError, match=f"{label} must be a whole number"):
        generation_request({**TEXT, field: value})


@pytest.mark.parametrize(("field", "value"), [("duration", "nan"), ("duration", "9999"), ("seed", "-1")])
def test_video_numbers_are_checked(field: str, value: str) -> None:
    with pytest.raises(FormError, match="must be a whole number"):
        generation_request({"kind": "video", "model": "google/veo-3.1", "prompt": "a boat", field: value})


def test_tags_and_budget_are_read_here_too() -> None:
    assert tags("cats, Sketches , cats\nCATS") == ["cats", "Sketches"]
    assert budget(" $1,250.456 ") == 1250.46
    assert budget("") is None
    for text in ("nan", "inf", "-3", "lots"):
        with pytest.raises(FormError, match="monthly budget"):
            budget(text)


# -- over HTTP: a clear 400, for every way the Studio posts -------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "inf", "garbage"])
def test_studio_form_post_with_a_bad_temperature_is_a_400_page(ui: httpx.Client, api, value: str) -> None:
    response = ui.post("/studio/generate", data={**TEXT, "temperature": value})
    assert response.status_code == 400
    assert "Temperature must be a number from 0 to 2." in response.text
    assert "data-composer" in response.text  # the form is shown again to correct it
    with api.client() as backend:
        assert backend.get("/api/v1/generations").json()["items"] == []


def test_studio_script_post_with_a_bad_temperature_is_a_400_json(ui: httpx.Client) -> None:
    response = ui.post("/studio/generate", data={**TEXT, "temperature": "nan"},
                       headers={"X-Requested-With": "fetch", "Accept": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"] == {"code": "bad_request", "message": "Temperature must be a number from 0 to 2."}


def test_studio_stream_with_a_bad_temperature_is_a_400_error_event(ui: httpx.Client) -> None:
    response = ui.post("/studio/stream", json={**TEXT, "temperature": "NaN"},
                       headers={"X-Requested-With": "fetch", "Accept": "text/event-stream"})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text.startswith("event: error\n")
    assert "Temperature must be a number from 0 to 2." in response.text


def test_a_bad_budget_is_refused_with_the_reason(ui: httpx.Client, api) -> None:
    response = ui.post("/settings/preferences", data={"budget_monthly_usd": "nan"}, follow_redirects=True)
    assert response.status_code == 200
    assert "The monthly budget must be zero or more." in response.text
    with api.client() as backend:
        assert backend.get("/api/v1/settings").json()["values"]["budget_monthly_usd"] is None
