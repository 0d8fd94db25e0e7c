"""Sign in with OpenRouter through the UI: Settings → consent page (the fake's) → loopback callback → key stored."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import httpx

from frontend import backend_of, create_app
from tests.conftest import start_api
from tests.fakes.openrouter import FakeOpenRouter


def test_sign_in_through_the_ui(data_dir: Path) -> None:
    from desktop.servers import UiServer

    with FakeOpenRouter() as fake:
        api = start_api(data_dir, openrouter_base_url=fake.base_url)
        ui = UiServer(None)
        app = create_app(api_url=api.url, token=api.token, port_getter=lambda: ui.port)
        ui.server.app = app
        ui.start()
        try:
            with httpx.Client(base_url=ui.url) as page:
                page.get("/login", params={"token": api.token})
                assert "Sign in with OpenRouter" in page.get("/settings").text
                started = page.post("/settings/oauth/start", headers={"X-Requested-With": "fetch",
                                                                      "Accept": "application/json"})
                assert started.status_code == 200, started.text
                auth_url = started.json()["auth_url"]
                assert auth_url.startswith(fake.site_url + "/auth?")
                waiting = page.post("/settings/oauth/start")
                assert waiting.status_code == 200 and "Sign in with OpenRouter" in waiting.text
            consent = httpx.get(auth_url)  # the user approves in the system browser
            callback = consent.headers["location"]
            assert callback.startswith(f"http://localhost:{ui.port}/oauth/callback/")
            # The system browser has no session cookie: the callback is public, guarded by its state.
            done = httpx.get(callback)
            assert done.status_code == 200 and "connected" in done.text
            assert "Content-Security-Policy" in done.headers
            again = httpx.get(callback)
            assert again.status_code == 400 and "Start again" in again.text
            forged = httpx.get(f"http://localhost:{ui.port}/oauth/callback/forged?code=abc")
            assert forged.status_code == 400
            with api.client() as c:
                creds = c.get("/api/v1/credentials").json()
            assert creds["configured"] and creds["verified"]
            query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(callback).query))
            assert query["code"] not in done.text
        finally:
            ui.stop()
            backend_of(app).close()
            api.stop()
