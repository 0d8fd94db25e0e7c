"""Every page state a person meets, for the accessibility tests and ``scripts/screenshots.py``.

:func:`walk` seeds a running Atelier (fake OpenRouter + backend + UI) step by step — first run without a key,
then a library with text, image, video and failed generations, then offline, then a paused outbox — and
calls ``visit(page, name)`` on every state for each variant (colour scheme and window size) it is given.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.ui_fixtures import CHROMIUM, CHROMIUM_ARGS, FAST, UiStack, wait_for

TEXT_MODEL = "openai/gpt-4o-mini"
IMAGE_MODEL = "google/gemini-2.5-flash-image"


@dataclass(frozen=True)
class Variant:
    scheme: str = "light"
    width: int = 1280
    height: int = 800

    @property
    def label(self) -> str:
        return f"{self.width}x{self.height}-{self.scheme}"


Visit = Callable[[Any, str, Variant], None]


@contextlib.contextmanager
def ui_stack(data_dir: Path) -> Iterator[UiStack]:
    """The ``ui`` fixture's stack outside pytest (for scripts): fake OpenRouter + backend + UI on loopback."""
    from desktop.servers import UiServer
    from frontend import backend_of, create_app
    from tests.conftest import start_api
    from tests.fakes.openrouter import FakeOpenRouter

    with FakeOpenRouter(token_delay=0.005) as fake:
        api = start_api(data_dir, openrouter_base_url=fake.base_url, **FAST)
        server = UiServer(None)
        app = create_app(api_url=api.url, token=api.token, port_getter=lambda: server.port)
        server.server.app = app
        server.start()
        try:
            yield UiStack(fake=fake, api=api, url=server.url)
        finally:
            server.stop()
            backend_of(app).close()
            api.stop()


def hermetic_env(data_dir: Path) -> None:
    """What the tests' autouse fixture does, for a script: own data dir, file keyring, no machine policy."""
    os.environ.update({"ATELIER_DATA_DIR": str(data_dir), "ATELIER_KEYRING_BACKEND": "file",
                       "ATELIER_POLICY_FILE": str(data_dir / "no-policy.json"), "ATELIER_NO_BROWSER": "1"})
    for var in ("OPENROUTER_API_KEY", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        os.environ.pop(var, None)
    import backend.core.policy as policy

    policy.system_policy_path = lambda: data_dir / "no-machine-policy" / "Atelier" / "policy.json"


def launch_browser(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


# ---- actions that bring a page into a state (after it is loaded) ------------------------------------------

def _generate_text(page: Any) -> None:
    page.fill("#prompt", "Write **two** short lines about tea")
    page.click("[data-generate]")
    page.locator("[data-thread] [data-turn][data-status=succeeded] [data-answer] .turn-tools").wait_for(timeout=20_000)


def _generate_error(ui: UiStack) -> Callable[[Any], None]:
    def act(page: Any) -> None:
        from tests.fakes.behaviours import model_not_found

        ui.fake.enqueue("/chat/completions", model_not_found("acme/nope"))
        page.fill("#prompt", "Ask a model that does not exist")
        page.click("[data-generate]")
        page.locator("[data-thread] [data-turn]:last-child .callout-error").wait_for(timeout=20_000)
    return act


def _generate_image(page: Any) -> None:
    page.fill("#prompt", "A lighthouse at dusk")
    page.click("[data-generate]")
    page.locator("[data-results] .output img").first.wait_for(timeout=20_000)


def _open_picker(page: Any) -> None:
    page.click(".picker-button")
    page.locator(".picker-panel:not(.hidden)").wait_for()


def _open_other_settings(page: Any) -> None:
    page.click("text=Other settings")


def _paused_request(page: Any) -> None:
    page.fill("#prompt", "Send this after the pause")
    page.click("[data-generate]")
    page.locator("[data-thread] [data-turn]:last-child [data-paused]").wait_for(timeout=20_000)


def _review_video_batch(page: Any) -> None:
    page.fill("#batch-prompt", "A slow pan over {{ place }}")
    page.fill("#batch-rows", "place\na harbour at dawn\na pine forest")
    page.select_option("#batch-models", ["google/veo-3.1", "openai/sora-2-pro"])
    page.click("[data-batch-review]")
    page.locator("[data-batch-estimate]").wait_for()


def _review_rows_with_a_header(page: Any) -> None:
    page.fill("#batch-prompt", "Describe {{ thing }} in one line")
    page.fill("#batch-rows", "topic\na carved wooden kettle\na blue glass cup\nan old brass key")
    page.select_option("#batch-header", "yes")
    page.click("[data-batch-review]")
    page.locator("[data-batch-preview]").wait_for()


def _rename_in_place(page: Any) -> None:
    """A tile's title being renamed in place (F2), with the next tile's Rename shown by the pointer."""
    tiles = page.locator(".lib-tile")
    tiles.nth(1).hover()
    tiles.nth(0).locator(".lib-link").focus()
    page.keyboard.press("F2")
    page.locator("[data-rename-form] input[name=title]").fill("Why the sky is blue")


def _settle(ui: UiStack) -> None:
    with contextlib.suppress(AssertionError):
        wait_for(lambda: ui.backend("GET", "/status")["queue"]["running"] == 0, timeout=10)


def walk(ui: UiStack, browser: Any, variants: list[Variant], visit: Visit) -> list[str]:
    """Bring Atelier through every state; ``visit(page, name, variant)`` each. Returns the state names."""
    names: list[str] = []

    def show(name: str, path: str, action: Callable[[Any], None] | None = None) -> None:
        names.append(name)
        for variant in variants:
            context = browser.new_context(viewport={"width": variant.width, "height": variant.height},
                                          color_scheme=variant.scheme, bypass_csp=True)
            page = context.new_page()
            try:
                page.goto(ui.login_url)
                if path != "/":
                    page.goto(ui.url + path)
                if action:
                    action(page)
                visit(page, name, variant)
            finally:
                context.close()
        _settle(ui)

    # First run: no key yet.
    show("studio-first-run", "/")
    show("settings-first-run", "/settings")

    ui.set_key()
    text = ui.backend("POST", "/generations", json={"kind": "text", "model": TEXT_MODEL,
                                                    "prompt": "Explain *why* the sky is blue, briefly"})
    image = ui.backend("POST", "/generations", json={"kind": "image", "model": IMAGE_MODEL,
                                                     "prompt": "A red bicycle leaning on a wall"})
    from tests.fakes.behaviours import VideoJob, model_not_found

    ui.fake.enqueue("/videos", VideoJob(seconds=0))
    video = ui.backend("POST", "/generations", json={"kind": "video", "model": "google/veo-3.1",
                                                     "prompt": "Waves rolling onto a beach"})
    wait_for(lambda: ui.backend("GET", f"/generations/{video['id']}")["status"] == "succeeded", timeout=30)
    ui.fake.enqueue("/chat/completions", model_not_found("acme/nope"))
    with contextlib.suppress(Exception):
        ui.backend("POST", "/generations", json={"kind": "text", "model": "acme/nope", "prompt": "Unknown model"})
    failed = ui.backend("GET", "/generations", params={"status": "failed", "limit": 1})["items"][0]
    with ui.api.client() as client:
        client.post("/api/v1/templates", json={"name": "Product blurb", "kind": "text",
                                               "prompt": "Write a blurb for {{product}} in a {{tone}} tone"})

    show("studio-text", "/")
    show("studio-text-answer", "/", _generate_text)
    show("studio-text-error", "/", _generate_error(ui))
    show("studio-model-picker", "/", _open_picker)
    show("studio-image", "/?mode=image")
    show("studio-image-result", "/?mode=image", _generate_image)
    show("studio-video", "/?mode=video")
    show("library", "/library")
    show("library-rename", "/library", _rename_in_place)
    show("library-no-match", "/library?q=nothing-matches-this")
    show("detail-text", f"/g/{text['id']}")
    show("detail-image", f"/g/{image['id']}")
    show("detail-video", f"/g/{video['id']}")
    show("detail-failed", f"/g/{failed['id']}")
    show("batch-video", "/batches/new?kind=video", _review_video_batch)
    for _ in range(2):
        ui.fake.enqueue("/videos", VideoJob(seconds=0))
    videos = ui.backend("POST", "/batches", json={"kind": "video", "models": ["google/veo-3.1"],
                                                  "prompt": "Waves at {{ t }}", "rows": [{"t": "dawn"}, {"t": "dusk"}]})
    wait_for(lambda: ui.backend("GET", f"/batches/{videos['id']}")["status"] == "finished", timeout=30)
    show("batch-video-detail", f"/batches/{videos['id']}")
    show("batch-rows-header", "/batches/new", _review_rows_with_a_header)
    show("templates", "/templates")
    show("template-new", "/templates/new")
    show("queue-empty", "/queue")
    show("settings", "/settings")
    show("settings-other", "/settings", _open_other_settings)
    show("settings-diagnostics", "/settings/diagnostics")
    show("not-found", "/g/0123456789abcdef0123456789abcdef")

    # Offline: a request waits in the outbox.
    ui.fake.go_offline()
    with contextlib.suppress(Exception):
        ui.backend("POST", "/generations", json={"kind": "text", "model": TEXT_MODEL, "prompt": "Sent later"})
    wait_for(lambda: not ui.backend("GET", "/status")["online"], timeout=30)
    show("studio-offline", "/")
    show("queue-offline", "/queue")

    # Paused outbox.
    ui.backend("POST", "/queue/pause")
    show("queue-paused", "/queue")
    ui.fake.go_online()
    show("studio-paused", "/", _paused_request)
    ui.backend("POST", "/queue/resume")
    return names
