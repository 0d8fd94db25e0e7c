"""The local API's reference: a page of the UI (session cookie), rendered from the OpenAPI document, with
nothing loaded from elsewhere."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from frontend import backend_of, create_app
from frontend.security import CONTENT_SECURITY_POLICY


@pytest.fixture
def ui(api) -> Iterator[tuple]:
    """The real Flask UI on its production server, in front of the real backend."""
    from desktop.servers import UiServer

    server = UiServer(None)
    app = create_app(api_url=api.url, token=api.token, port_getter=lambda: server.port)
    server.server.app = app
    server.start()
    yield server, api
    server.stop()
    backend_of(app).close()


def test_api_reference_is_served_by_the_ui_with_nothing_remote(ui) -> None:
    server, api = ui
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get("/api-docs").status_code == 401  # the session cookie is needed
        client.get("/login", params={"token": api.token})
        page = client.get("/api-docs")
        assert page.status_code == 200
        assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        html = page.text
        assert "/api/v1/settings" in html and "Schemas" in html
        # Every script, stylesheet, image and link is this app's own (a path or a fragment), never a CDN.
        for attribute, value in re.findall(r'\s(src|href|action)="([^"]*)"', html):
            assert value.startswith(("/", "#")) and not value.startswith("//"), (attribute, value)
        assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", html)  # no inline scripts
        assert api.token not in html
        document = client.get("/api-docs/openapi.json")
        assert document.status_code == 200
        assert "/api/v1/settings" in document.json()["paths"]
        settings = client.get("/settings").text
        assert 'href="/api-docs"' in settings


def test_backend_serves_no_cdn_docs_page(api) -> None:
    with api.client() as client:
        assert client.get("/docs").status_code == 404
        assert "/api/v1/settings" in client.get("/openapi.json").json()["paths"]


@pytest.mark.browser
def test_api_reference_in_a_browser_from_settings(ui) -> None:
    """Settings → Local API reference in Chromium: no request leaves 127.0.0.1, no CSP violation or error."""
    from pathlib import Path
    from urllib.parse import urlsplit

    chromium = "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    server, api = ui
    args = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=args)
        try:
            page = browser.new_page()
            problems: list[str] = []
            foreign: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("request", lambda r: foreign.append(r.url) if urlsplit(r.url).hostname != "127.0.0.1" else None)
            page.goto(f"{server.url}/login?token={api.token}")
            page.goto(f"{server.url}/settings")
            page.click("text=Local API reference")
            page.wait_for_url(f"{server.url}/api-docs")
            page.locator("h1").wait_for()
            assert "Atelier local API" in page.locator("h1").inner_text()
            assert page.locator("section.api-op").count() >= 10
            assert problems == [] and foreign == []
        finally:
            browser.close()
