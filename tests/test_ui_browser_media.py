"""Images and video in a real browser (Chromium) against the real backend and the fake OpenRouter:
reference uploads, results with full-size view, the Library grid of thumbnails, a video that plays and
seeks through the UI's Range passthrough, and a render that survives a page reload."""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest
from PIL import Image

from tests import ui_fixtures
from tests.fakes.behaviours import VideoJob
from tests.ui_fixtures import UiStack, new_page, screenshot, wait_for

# The shared fixtures: Chromium, and the fake OpenRouter + backend + UI stack.
browser = ui_fixtures.browser
ui = ui_fixtures.ui

pytestmark = pytest.mark.browser

# Chromium records a short, real H.264 MP4 of an animated canvas: the fake's placeholder MP4 bytes are
# not decodable, and a playback test needs a video the browser can actually play.
RECORD_MP4 = """async () => {
  const canvas = document.createElement('canvas');
  canvas.width = 160; canvas.height = 90;
  const ctx = canvas.getContext('2d');
  let frame = 0;
  const timer = setInterval(() => {
    ctx.fillStyle = `hsl(${(frame * 12) % 360} 70% 50%)`; ctx.fillRect(0, 0, 160, 90);
    ctx.fillStyle = '#fff'; ctx.fillRect((frame * 4) % 160, 30, 30, 30); frame++;
  }, 40);
  const recorder = new MediaRecorder(canvas.captureStream(25), {mimeType: 'video/mp4;codecs=avc1'});
  const chunks = [];
  recorder.ondataavailable = (e) => chunks.push(e.data);
  const stopped = new Promise((resolve) => { recorder.onstop = resolve; });
  recorder.start();
  await new Promise((r) => setTimeout(r, 1500));
  recorder.stop();
  await stopped;
  clearInterval(timer);
  const bytes = new Uint8Array(await new Blob(chunks).arrayBuffer());
  let text = '';
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text);
}"""


def png(color: tuple[int, int, int], size: tuple[int, int] = (96, 64)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def playable_mp4(browser: Any, ui: UiStack) -> bytes:
    """A real MP4 that the fake OpenRouter serves as every finished video job's content."""
    page = browser.new_page()
    data = base64.b64decode(page.evaluate(RECORD_MP4))
    page.close()
    assert data[4:8] == b"ftyp"
    ui.fake.video_content = data
    return data


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_image_with_a_reference_then_full_view_reuse_and_library_grid(browser, ui: UiStack, scheme: str) -> None:
    ui.set_key()
    problems: list[str] = []
    page = new_page(browser, scheme=scheme, problems=problems)
    page.goto(ui.login_url)
    page.click(".tabs >> text=Image")
    assert page.locator("text=not available").count() == 0

    page.select_option("#aspect_ratio", "16:9")
    page.set_input_files("[data-ref-input]", files=[
        {"name": "ref.png", "mimeType": "image/png", "buffer": png((30, 120, 200))}])
    chip = page.locator("[data-ref] img")
    chip.wait_for()
    wait_for(lambda: page.evaluate("document.querySelector('[data-ref] img').naturalWidth") > 0)
    page.fill("#prompt", "A lighthouse at dusk, in the style of the reference")
    page.click("[data-generate]")

    image = page.locator("[data-results] .asset-grid img").first
    image.wait_for(timeout=30_000)
    wait_for(lambda: page.evaluate("document.querySelector('[data-results] .asset-grid img').naturalWidth") > 0)
    sent = [r for r in ui.fake.requests if r.path.endswith("/chat/completions")][-1].json
    assert sent["image_config"] == {"aspect_ratio": "16:9"}
    assert sent["messages"][-1]["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")
    result = page.locator("[data-results] .result").first
    assert result.get_attribute("data-result-status") == "succeeded"
    assert result.locator("[data-cost]").inner_text().startswith("$")
    assert result.locator("text=Download").count() == 1
    assert result.locator("text=Copy prompt").count() == 1
    screenshot(page, f"studio-image-{scheme}", full_page=True)

    image.click()  # full-size view
    dialog = page.locator("dialog.lightbox[open] img")
    dialog.wait_for()
    record = ui.backend("GET", "/generations", params={"limit": 1, "kind": "image"})["items"][0]
    asset = record["assets"][0]
    assert dialog.get_attribute("src") == f"/assets/{asset['id']}"
    wait_for(lambda: page.evaluate("document.querySelector('dialog.lightbox img').naturalWidth") == asset["width"])
    page.keyboard.press("Escape")

    download = page.locator("[data-results] a:has-text('Download')").first
    assert download.get_attribute("href") == f"/assets/{asset['id']}?download=1"
    with page.expect_download() as info:
        download.click()
    assert info.value.suggested_filename.startswith("atelier-")

    page.click("[data-results] >> text=Use as reference")
    page.wait_for_load_state("load")
    assert page.locator("[data-ref] input[name=input_asset_ids]").get_attribute("value") == asset["id"]

    page.click("nav.sidebar >> text=Library")
    tile = page.locator(f".lib-grid [data-generation-id='{record['id']}'] img")
    tile.wait_for()
    assert tile.get_attribute("src") == f"/assets/{asset['id']}?thumb=1"
    assert tile.get_attribute("loading") == "lazy"
    sources = page.eval_on_selector_all(".lib-grid img", "images => images.map(i => i.getAttribute('src'))")
    assert sources and all(src.endswith("?thumb=1") for src in sources)  # never a full-size image
    screenshot(page, f"library-grid-{scheme}", full_page=True)
    assert problems == []
    page.context.close()


def test_video_options_follow_the_model(browser, ui: UiStack) -> None:
    ui.set_key()
    page = new_page(browser)
    page.goto(f"{ui.url}/login?token={ui.api.token}")
    page.goto(f"{ui.url}/?mode=video&model=google/veo-3.1")
    options = lambda sel: page.eval_on_selector_all(f"{sel} option", "os => os.map(o => o.value)")  # noqa: E731
    assert options("#duration") == ["4", "6", "8"]
    assert page.locator("[data-video-field=last_frame]").is_visible()
    assert page.locator("#seed").is_visible()

    page.click(".picker-button")
    page.fill(".picker-panel input[type=search]", "sora")
    page.keyboard.press("Enter")
    assert options("#duration") == ["4", "8", "12"]
    assert options("#size") == ["", "1280x720", "720x1280", "1792x1024", "1024x1792"]
    assert page.locator("[data-video-field=last_frame]").is_hidden()  # Sora takes a first frame only
    assert page.locator("#seed").is_hidden() and page.locator("#seed").is_disabled()
    page.context.close()


def test_video_renders_survives_a_reload_and_plays_with_range_requests(
        browser, ui: UiStack, playable_mp4: bytes) -> None:
    ui.set_key()
    ui.fake.enqueue("/videos", VideoJob(seconds=4))
    problems: list[str] = []
    page = new_page(browser, scheme="dark", problems=problems)
    page.goto(ui.login_url)
    page.goto(f"{ui.url}/?mode=video")
    page.select_option("#duration", "6")
    page.select_option("#resolution", "1080p")
    page.fill("#prompt", "A paper boat drifting down a rainy street")
    page.click("[data-generate]")

    rendering = page.locator("[data-results] [data-running]")
    rendering.wait_for(timeout=30_000)
    assert "Rendering" in rendering.inner_text() or "Waiting" in rendering.inner_text()
    wait_for(lambda: page.locator("[data-elapsed-since]").inner_text() not in {"", "00:00"})
    screenshot(page, "studio-video-rendering-dark")
    sent = next(r.json for r in ui.fake.requests if r.method == "POST" and r.path.endswith("/videos"))
    assert (sent["duration"], sent["resolution"]) == (6, "1080p")

    page.reload()  # the render is still shown, still counting, and still followed
    page.locator("[data-results] [data-running]").wait_for()
    video = page.locator("[data-results] video")
    video.wait_for(timeout=30_000)
    record = ui.backend("GET", "/generations", params={"limit": 1, "kind": "video"})["items"][0]
    assert record["status"] == "succeeded" and record["usage"]["cost_usd"] == 0.25
    assert page.locator("[data-results] [data-cost]").inner_text() == "$0.25"

    page.evaluate("document.querySelector('[data-results] video').muted = true")
    page.evaluate("document.querySelector('[data-results] video').play()")
    wait_for(lambda: page.evaluate("document.querySelector('[data-results] video').readyState") >= 2)
    wait_for(lambda: page.evaluate("document.querySelector('[data-results] video').currentTime") > 0.2)
    asset_id = record["assets"][0]["id"]
    ranged = [(path, status) for path, status, rng in ui.asset_requests if rng and asset_id in path]
    assert ranged and all(status in (200, 206) for _, status in ranged)
    assert any(status == 206 for _, status in ranged)
    screenshot(page, "studio-video-done-dark")
    assert problems == []
    page.context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_settings_diagnostics_run_in_place(browser, ui: UiStack, scheme: str) -> None:
    ui.set_key()
    with ui.api.client() as client:
        if client.get("/api/v1/diagnostics").status_code == 404:
            pytest.skip("the engine has no /api/v1/diagnostics in this tree")
    problems: list[str] = []
    page = new_page(browser, scheme=scheme, problems=problems)
    page.goto(ui.login_url)
    page.goto(f"{ui.url}/settings")
    page.click("[data-run-diagnostics]")
    report = page.locator("[data-diagnostics-slot] [data-diagnostics-report]")
    report.wait_for(timeout=60_000)
    assert page.url.endswith("/settings")  # in place, not a navigation
    assert page.locator("[data-diagnostics-slot] .diag-row").count() > 0
    assert page.locator("[data-run-diagnostics]").inner_text() == "Run again"
    screenshot(page, f"settings-diagnostics-{scheme}", full_page=True)
    assert problems == []
    page.context.close()
