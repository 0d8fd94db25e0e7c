"""The UI in a real browser (Debian's Chromium through Playwright) against the real backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from frontend import backend_of, create_app

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless=new", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture
def ui_url(api) -> Iterator[str]:
    from desktop.servers import UiServer

    server = UiServer(None)
    app = create_app(api_url=api.url, token=api.token, port_getter=lambda: server.port)
    server.server.app = app
    server.start()
    yield server.url
    server.stop()
    backend_of(app).close()


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_log_in_navigate_and_screenshot(browser, ui_url: str, api, scheme: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 820}, color_scheme=scheme)
    page = context.new_page()
    problems: list[str] = []
    foreign: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: foreign.append(r.url) if urlsplit(r.url).hostname != "127.0.0.1" else None)

    page.goto(f"{ui_url}/login?token={api.token}")
    assert page.url == f"{ui_url}/"
    assert page.locator("h1").inner_text() == "Studio"
    # The session cookie is invisible to scripts (HttpOnly).
    assert "atelier_session" not in page.evaluate("document.cookie")
    page.screenshot(path=str(ARTIFACTS / f"studio-{scheme}.png"))

    for label, heading in [("Library", "Library"), ("Queue", "Queue"), ("Settings", "Settings")]:
        page.click(f"nav.sidebar >> text={label}")
        page.wait_for_load_state("load")
        assert page.locator("h1").first.inner_text() == heading
        assert page.locator("nav.sidebar a.active").inner_text().startswith(label)
        page.screenshot(path=str(ARTIFACTS / f"{label.lower()}-{scheme}.png"), full_page=True)

    page.click("nav.sidebar >> text=Studio")
    assert page.locator("h1").inner_text() == "Studio"
    assert problems == []  # no CSP violations, no script errors
    assert foreign == []  # nothing leaves the machine: no CDN, no web fonts
    context.close()


def test_without_the_login_link_the_browser_sees_only_the_explanation(browser, ui_url: str) -> None:
    page = browser.new_page()
    response = page.goto(f"{ui_url}/library")
    assert response is not None and response.status == 401
    assert "Open Atelier from the app" in page.content()
    page.close()


def test_status_pill_and_theme_follow_settings(browser, ui_url: str, api) -> None:
    page = browser.new_page(color_scheme="light")
    page.goto(f"{ui_url}/login?token={api.token}")
    pill = page.locator("[data-status-pill]")
    assert pill.inner_text() in {"Online", "Offline"}
    page.goto(f"{ui_url}/settings")
    page.select_option("#theme", "dark")
    page.click("text=Save preferences")
    page.wait_for_load_state("load")
    assert page.locator("html").get_attribute("data-theme") == "dark"
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(17, 18, 24)"
    page.close()
