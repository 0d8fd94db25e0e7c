"""The UI's image/video routes, Library grid and Settings over real HTTP: Flask UI → real backend (DuckDB in a
temp dir) → fake OpenRouter. No browser; see test_ui_browser_media.py for the same flows in Chromium."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from frontend import backend_of, create_app
from frontend.forms import FormError, generation_request
from frontend.views.studio import MAX_REFERENCE_BYTES
from tests.conftest import start_api
from tests.fakes.openrouter import FakeOpenRouter
from tests.ui_fixtures import FAST

IMAGE_MODEL = "google/gemini-2.5-flash-image"


def png(color: tuple[int, int, int] = (200, 40, 90), size: tuple[int, int] = (96, 64)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def start_ui(api) -> tuple[object, object]:
    from desktop.servers import UiServer

    server = UiServer(None)
    app = create_app(api_url=api.url, token=api.token, port_getter=lambda: server.port)
    server.server.app = app
    server.start()
    return server, app


@pytest.fixture
def stack(data_dir: Path) -> Iterator[tuple[httpx.Client, object, FakeOpenRouter]]:
    """A signed-in client of the UI, the backend, and the fake OpenRouter (key already stored)."""
    with FakeOpenRouter() as fake:
        api = start_api(data_dir, openrouter_base_url=fake.base_url, **FAST)
        with api.client() as backend:
            assert backend.put("/api/v1/credentials", json={"api_key": fake.key}).status_code == 200
        server, app = start_ui(api)
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert client.get("/login", params={"token": api.token}).status_code in (200, 302)
            yield client, api, fake
        server.stop()
        backend_of(app).close()
        api.stop()


def fetch_json(client: httpx.Client, path: str, **kwargs) -> httpx.Response:
    headers = {"X-Requested-With": "fetch", "Accept": "application/json", **kwargs.pop("headers", {})}
    return client.post(path, headers=headers, **kwargs)


# -- building the request -------------------------------------------------------------------------------


def test_video_form_becomes_params_and_frames_in_order() -> None:
    body = generation_request({
        "kind": "video", "model": "google/veo-3.1", "prompt": "a boat", "duration": "6", "resolution": "1080p",
        "aspect_ratio": "16:9", "seed": "42", "audio_offered": "1", "first_frame_id": "aaa111",
        "last_frame_id": "bbb222",
    })
    assert body["input_asset_ids"] == ["aaa111", "bbb222"]
    assert body["params"] == {"duration": 6, "resolution": "1080p", "aspect_ratio": "16:9", "seed": 42,
                              "generate_audio": False}


def test_a_last_frame_needs_a_first_frame() -> None:
    with pytest.raises(FormError, match="first frame"):
        generation_request({"kind": "video", "model": "google/veo-3.1", "prompt": "x", "last_frame_id": "b1"})


def test_image_form_keeps_known_choices_and_references_only() -> None:
    # References alone are a valid image edit.
    body = generation_request({"kind": "image", "model": IMAGE_MODEL, "prompt": "",
                               "aspect_ratio": "16:9", "image_size": "9K",
                               "input_asset_ids": ["abc123", "abc123", "../etc", "def456"]})
    assert body["params"] == {"aspect_ratio": "16:9"}
    assert body["input_asset_ids"] == ["abc123", "def456"]


# -- references and image results -------------------------------------------------------------------------


def test_reference_upload_forwards_raw_bytes_and_refuses_other_types(stack) -> None:
    client, api, _ = stack
    data = png()
    answer = fetch_json(client, "/studio/references", content=data, headers={"Content-Type": "image/png"})
    assert answer.status_code == 201, answer.text
    ref = answer.json()
    assert ref["thumb"] == f"/assets/{ref['id']}?thumb=1" and (ref["width"], ref["height"]) == (96, 64)
    assert client.get(ref["url"]).content == data
    refused = fetch_json(client, "/studio/references", content=b"<svg/>", headers={"Content-Type": "image/svg+xml"})
    assert refused.status_code == 415 and "PNG" in refused.json()["error"]["message"]
    broken = fetch_json(client, "/studio/references", content=b"not a png", headers={"Content-Type": "image/png"})
    assert broken.status_code in (415, 422) and broken.json()["error"]["message"]


def test_oversized_reference_is_refused_with_the_limit(stack) -> None:
    client, _, _ = stack
    big = bytes(MAX_REFERENCE_BYTES + 1)
    r = fetch_json(client, "/studio/references", content=big, headers={"Content-Type": "image/png"})
    assert r.status_code == 413
    assert r.json()["error"]["message"] == "The image is larger than the 25 MiB limit for reference images."


def test_image_generation_answers_the_result_panel_with_actions_and_cost(stack) -> None:
    client, api, fake = stack
    ref = fetch_json(client, "/studio/references", content=png(), headers={"Content-Type": "image/png"}).json()
    answer = fetch_json(client, "/studio/generate", data={
        "kind": "image", "model": IMAGE_MODEL, "prompt": "a fox", "aspect_ratio": "3:2",
        "input_asset_ids": ref["id"]})
    assert answer.status_code == 200, answer.text
    record, html = answer.json()["generation"], answer.json()["html"]
    assert record["status"] == "succeeded" and record["input_asset_ids"] == [ref["id"]]
    asset = record["assets"][0]
    assert f'href="/assets/{asset["id"]}?download=1"' in html
    assert f'href="/?mode=image&amp;ref={asset["id"]}"' in html
    assert 'data-copy="a fox"' in html
    assert "data-cost>$" in html
    assert "data-follow-events" not in html  # finished: nothing to follow
    sent = [q for q in fake.requests if q.path.endswith("/chat/completions")][-1].json
    assert sent["image_config"] == {"aspect_ratio": "3:2"}

    reuse = client.get("/", params={"mode": "image", "ref": asset["id"]}).text
    assert f'name="input_asset_ids" value="{asset["id"]}"' in reuse


def test_plain_form_post_with_a_file_works_without_javascript(stack) -> None:
    client, api, _ = stack
    response = client.post("/studio/generate", data={"kind": "image", "model": IMAGE_MODEL, "prompt": "cat"},
                           files={"reference_files": ("cat.png", png(), "image/png")}, follow_redirects=False)
    assert response.status_code == 302 and "/g/" in response.headers["location"]
    page = client.get(response.headers["location"]).text
    assert "asset-grid" in page


# -- the asset proxy ----------------------------------------------------------------------------------------


def test_asset_proxy_passes_range_etag_thumb_and_download_through(stack) -> None:
    client, api, _ = stack
    ref = fetch_json(client, "/studio/references", content=png(), headers={"Content-Type": "image/png"}).json()
    url = f"/assets/{ref['id']}"
    full = client.get(url)
    assert full.status_code == 200 and full.headers["content-disposition"] == "inline"
    assert full.headers["accept-ranges"] == "bytes"
    part = client.get(url, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == full.content[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(full.content)}"
    assert client.get(url, headers={"If-None-Match": full.headers["etag"]}).status_code == 304
    thumb = client.get(url, params={"thumb": "1"})
    assert thumb.status_code == 200 and thumb.headers["content-type"] in ("image/jpeg", "image/webp")
    assert len(thumb.content) < len(full.content) * 10
    download = client.get(url, params={"download": "1"})
    assert download.headers["content-disposition"].startswith("attachment; filename=\"atelier-")
    assert client.get(url, headers={"Range": "bytes=999999-"}).status_code == 416
    assert client.get("/assets/doesnotexist1").status_code == 404


# -- video: running result, follow URLs, then the player ---------------------------------------------------


def test_video_answers_a_running_panel_that_can_be_followed(stack) -> None:
    client, api, fake = stack
    from tests.fakes.behaviours import VideoJob

    fake.enqueue("/videos", VideoJob(seconds=2))
    answer = fetch_json(client, "/studio/generate", data={
        "kind": "video", "model": "google/veo-3.1", "prompt": "waves", "duration": "4", "resolution": "720p",
        "aspect_ratio": "16:9", "audio_offered": "1", "generate_audio": "1"})
    assert answer.status_code == 200, answer.text
    record, html = answer.json()["generation"], answer.json()["html"]
    assert record["status"] == "running"
    assert "Rendering…" in html and "data-elapsed-since=" in html
    assert f'data-follow-events="/g/{record["id"]}/events"' in html
    sent = next(r.json for r in fake.requests if r.method == "POST" and r.path.endswith("/videos"))
    assert sent["generate_audio"] is True and sent["duration"] == 4

    studio = client.get("/", params={"mode": "video"}).text  # a reload shows it still rendering
    assert f'data-generation-id="{record["id"]}"' in studio

    with client.stream("GET", f"/g/{record['id']}/events") as events:
        names = [line[7:] for line in events.iter_lines() if line.startswith("event: ")]
    assert names[0] == "generation" and names[-1] == "done"
    done = client.get(f"/g/{record['id']}/result").text
    assert "<video controls" in done and "$0.25" in done


def test_video_form_offers_the_models_own_choices(stack) -> None:
    client, _, _ = stack
    page = client.get("/", params={"mode": "video", "model": "openai/sora-2-pro"}).text
    durations = re.findall(r'<option value="(\d+)"[^>]*>\d+ s</option>', page)
    assert durations == ["4", "8", "12"]
    assert 'value="1792x1024"' in page
    assert re.search(r'data-video-field="last_frame"[^>]*>', page)
    assert re.search(r'class="field hidden" data-video-field="last_frame"', page)  # Sora: first frame only
    options = re.findall(r'data-video="([^"]+)"', page)
    decoded = [json.loads(o.replace("&#34;", '"').replace("&amp;", "&")) for o in options]
    assert {tuple(v["supported_durations"]) for v in decoded} == {(4, 6, 8), (4, 8, 12)}


# -- library grid -----------------------------------------------------------------------------------------


def test_library_grid_uses_lazy_thumbnails_and_cursor_paging(stack) -> None:
    client, api, _ = stack
    with api.client() as backend:
        for i in range(3):
            r = backend.post("/api/v1/generations", json={"kind": "image", "model": IMAGE_MODEL, "prompt": f"p{i}"})
            assert r.status_code == 201
        backend.post("/api/v1/generations", json={"kind": "text", "model": "openai/gpt-4o-mini", "prompt": "hi"})
    page = client.get("/library").text
    assert 'class="lib-grid"' in page
    images = re.findall(r"<img [^>]*>", page)
    assert len(images) == 3
    assert all('loading="lazy"' in tag and "?thumb=1" in tag for tag in images)
    assert "Echo: hi" in page  # the text item is a text tile

    first = client.get("/library", params={"view": "grid", "partial": "1"})
    assert first.status_code == 200 and "<html" not in first.text
    from frontend.views import library

    original = library.GRID_PAGE_SIZE
    library.GRID_PAGE_SIZE = 2
    try:
        paged = client.get("/library").text
        more = re.search(r'data-partial-url="([^"]+)"', paged).group(1).replace("&amp;", "&")
        assert "cursor=" in more and "view=grid" in more
        rest = client.get(more).text
        assert rest.count('class="lib-tile') == 2 and "data-load-more" not in rest
    finally:
        library.GRID_PAGE_SIZE = original
    listing = client.get("/library", params={"view": "list"}).text
    assert 'class="gen-list card"' in listing and all("?thumb=1" in t for t in re.findall(r"<img [^>]*>", listing))


# -- settings ---------------------------------------------------------------------------------------------


def test_budget_is_saved_and_cleared(stack) -> None:
    client, api, _ = stack
    assert client.post("/settings/preferences", data={"theme": "system", "budget_monthly_usd": "12.5",
                                                      "retry_unknown_text": "1"}).status_code == 302
    with api.client() as backend:
        assert backend.get("/api/v1/settings").json()["values"]["budget_monthly_usd"] == 12.5
    assert 'value="12.50"' in client.get("/settings").text
    client.post("/settings/preferences", data={"theme": "system", "budget_monthly_usd": "",
                                               "retry_unknown_text": "1"})
    with api.client() as backend:
        assert backend.get("/api/v1/settings").json()["values"]["budget_monthly_usd"] is None
    bad = client.post("/settings/preferences", data={"budget_monthly_usd": "lots"}, follow_redirects=True)
    assert "must be an amount in dollars" in bad.text


def test_locked_settings_show_as_locked_and_are_never_sent(data_dir: Path) -> None:
    from backend.core.policy import load_policy

    policy = data_dir / "policy.json"
    policy.write_text(json.dumps({"theme": {"value": "dark", "locked": True},
                                  "budget_monthly_usd": {"value": 50, "locked": True}}))
    api = start_api(data_dir, policy=load_policy(policy), policy_file=policy)
    server, app = start_ui(api)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            client.get("/login", params={"token": api.token})
            page = client.get("/settings").text
            assert "locked by IT policy" in page and str(policy) in page
            assert re.search(r'<select id="theme" name="theme" disabled>', page)
            assert re.search(r'id="budget_monthly_usd"[^>]*disabled', page.replace("\n", " "))
            assert page.count("Set by your organisation</span>") >= 2
            form = {"theme": "light", "budget_monthly_usd": "1", "retry_unknown_text": "1"}
            saved = client.post("/settings/preferences", data=form, follow_redirects=True)
            assert "Nothing to change." in saved.text  # locked values are skipped, so no 403
            assert 'data-theme="dark"' in saved.text
    finally:
        server.stop()
        backend_of(app).close()
        api.stop()


def test_diagnostics_report_is_rendered(stack) -> None:
    client, api, _ = stack
    with api.client() as backend:
        available = backend.get("/api/v1/diagnostics").status_code == 200
    if not available:
        pytest.skip("the engine has no /api/v1/diagnostics in this tree")
    partial = client.get("/settings/diagnostics", params={"partial": "1"})
    assert partial.status_code == 200 and "data-diagnostics-report" in partial.text
    rows = re.findall(r'class="diag-row diag-(ok|warn|fail)"', partial.text)
    assert rows
    assert api.token not in partial.text
    assert "Run checks" in client.get("/settings").text
    assert "<h1>Diagnostics</h1>" in client.get("/settings/diagnostics").text
