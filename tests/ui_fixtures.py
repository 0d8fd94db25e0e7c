"""Shared fixtures for the UI tests: the real backend + the fake OpenRouter + the Flask UI, and Chromium.

Import the fixtures into a test module (``from tests.ui_fixtures import browser, ui  # noqa: F401``).

- ``ui``: a :class:`UiStack` — an in-process :class:`FakeOpenRouter` (``token_delay=0.02`` so streaming is
  visible), a real backend on loopback pointed at it with fast retries, and the Flask UI server.
  No key is stored: first-run tests paste one in Settings; others call :meth:`UiStack.set_key`.
- ``browser``: Debian's Chromium through Playwright (skipped when it is not installed).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from frontend import backend_of, create_app
from tests.conftest import RunningApi, start_api
from tests.fakes.openrouter import FakeOpenRouter

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless=new", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
#: Retry and poll timings that keep the outbox quick in tests (seconds).
FAST = {"retry_base_seconds": 0.05, "retry_max_seconds": 0.2, "probe_seconds": 0.1, "video_poll_seconds": 0.05}


def wait_for(condition: Callable[[], Any], timeout: float = 20, interval: float = 0.05) -> Any:
    """Poll ``condition`` until it returns something truthy (a bounded wait, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


@dataclass
class UiStack:
    """One running Atelier (backend + UI) wired to a fake OpenRouter."""

    fake: FakeOpenRouter
    api: RunningApi
    url: str
    asset_requests: list[tuple[str, int, str | None]] = field(default_factory=list)

    @property
    def login_url(self) -> str:
        """The link the desktop shell opens: signs the browser in and lands on the Studio."""
        return f"{self.url}/login?token={self.api.token}"

    def set_key(self) -> None:
        """Store the fake's valid key through the backend (as if pasted earlier)."""
        with self.api.client() as client:
            assert client.put("/api/v1/credentials", json={"api_key": self.fake.key}).status_code == 200

    def backend(self, method: str, path: str, **kwargs: Any) -> Any:
        """One call to the backend's ``/api/v1`` (JSON answer)."""
        with self.api.client() as client:
            response = client.request(method, f"/api/v1{path}", **kwargs)
            response.raise_for_status()
            return response.json() if response.content else None


@pytest.fixture
def ui(data_dir: Path) -> Iterator[UiStack]:
    """Fake OpenRouter + real backend + Flask UI on loopback; asset responses through Flask are recorded."""
    from flask import request

    from desktop.servers import UiServer

    with FakeOpenRouter(token_delay=0.02) as fake:
        api = start_api(data_dir, openrouter_base_url=fake.base_url, **FAST)
        server = UiServer(None)
        app = create_app(api_url=api.url, token=api.token, port_getter=lambda: server.port)
        stack = UiStack(fake=fake, api=api, url="")

        @app.after_request
        def _record_assets(response):  # type: ignore[no-untyped-def]
            if request.path.startswith("/assets/"):
                stack.asset_requests.append((request.full_path, response.status_code, request.headers.get("Range")))
            return response

        server.server.app = app
        server.start()
        stack.url = server.url
        try:
            yield stack
        finally:
            server.stop()
            backend_of(app).close()
            api.stop()


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Chromium (Debian's build), closed after the test."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


def new_page(browser: Any, *, scheme: str = "light", problems: list[str] | None = None) -> Any:
    """A page in a fresh context (1280×860); console errors and page errors go to ``problems``."""
    context = browser.new_context(viewport={"width": 1280, "height": 860}, color_scheme=scheme)
    page = context.new_page()
    if problems is not None:
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
    return page


def screenshot(page: Any, name: str, *, full_page: bool = False) -> None:
    """Save a screenshot into ``test-artifacts/`` for a human to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)
