"""Images and video through the real backend and the fake OpenRouter: stored byte-exact, served by id with
Range/ETag, reference images sent as data URLs, video jobs followed across a restart."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.conftest import PYTHON, ROOT, start_api, subprocess_env
from tests.fakes.behaviours import Reply, VideoJob
from tests.fakes.media import fake_mp4, solid_png
from tests.fakes.openrouter import FakeOpenRouter
from tests.test_generations import FAST, get, wait_for

IMAGE_MODEL = "google/gemini-2.5-flash-image"
VIDEO_MODEL = "google/veo-3.1"


@pytest.fixture
def fake() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter() as fake:
        yield fake


@pytest.fixture
def studio(data_dir: Path, fake: FakeOpenRouter):
    running = start_api(data_dir, openrouter_base_url=fake.base_url, **FAST)
    client = running.client()
    assert client.put("/api/v1/credentials", json={"api_key": fake.key}).status_code == 200
    yield running, client
    client.close()
    running.stop()


def png_bytes(color=(200, 40, 90), size=(64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def test_image_generation_is_stored_and_served_byte_exact(studio, fake: FakeOpenRouter) -> None:
    running, client = studio
    r = client.post("/api/v1/generations", json={"kind": "image", "model": IMAGE_MODEL, "prompt": "a red fox",
                                                 "params": {"aspect_ratio": "16:9"}})
    assert r.status_code == 201, r.text
    record = r.json()
    assert record["status"] == "succeeded" and record["assets"]
    sent = [q for q in fake.requests if q.path.endswith("/chat/completions")][-1].json
    assert sent["modalities"] == ["image", "text"] and sent["image_config"] == {"aspect_ratio": "16:9"}
    asset = record["assets"][0]
    served = client.get(asset["url"])
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    assert hashlib.sha256(served.content).hexdigest() == asset["sha256"]
    assert served.headers["x-content-type-options"] == "nosniff"
    assert (asset["width"], asset["height"]) == Image.open(io.BytesIO(served.content)).size
    thumb = client.get(asset["thumb_url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] in ("image/jpeg", "image/webp")
    etag = served.headers["etag"]
    assert client.get(asset["url"], headers={"If-None-Match": etag}).status_code == 304
    assert (running.settings.media_dir / asset["sha256"][:2] / asset["sha256"]).read_bytes() == served.content


def test_image_only_model_asks_for_image_modality(studio, fake: FakeOpenRouter) -> None:
    _, client = studio
    client.get("/api/v1/models", params={"output": "image"})
    r = client.post("/api/v1/generations", json={"kind": "image", "model": "black-forest-labs/flux.2-pro",
                                                 "prompt": "mountains"})
    assert r.status_code == 201, r.text
    assert [q for q in fake.requests if q.path.endswith("/chat/completions")][-1].json["modalities"] == ["image"]


def test_text_only_model_asked_for_an_image_explains(studio) -> None:
    _, client = studio
    r = client.post("/api/v1/generations", json={"kind": "image", "model": "openai/gpt-4o-mini", "prompt": "cat"})
    assert r.status_code == 422
    body = r.json()
    assert body["error"]["code"] == "no_image_output" and "images" in body["error"]["message"]
    assert body["generation"]["status"] == "failed" and body["generation"]["output_text"]


def test_reference_image_is_sent_as_a_data_url(studio, fake: FakeOpenRouter) -> None:
    _, client = studio
    data = png_bytes()
    up = client.post("/api/v1/assets", content=data, headers={"Content-Type": "image/png"})
    assert up.status_code == 201, up.text
    ref = up.json()
    r = client.post("/api/v1/generations", json={"kind": "image", "model": IMAGE_MODEL, "prompt": "make it blue",
                                                 "input_asset_ids": [ref["id"]]})
    assert r.status_code == 201, r.text
    parts = [q for q in fake.requests if q.path.endswith("/chat/completions")][-1].json["messages"][-1]["content"]
    assert parts[0] == {"type": "text", "text": "make it blue"}
    url = parts[1]["image_url"]["url"]
    assert url == "data:image/png;base64," + base64.b64encode(data).decode()
    assert any(m.url == url for m in fake.received_media)


def test_upload_refuses_non_images(studio) -> None:
    _, client = studio
    assert client.post("/api/v1/assets", content=b"<html>", headers={"Content-Type": "text/html"}).status_code == 415
    r = client.post("/api/v1/assets", content=b"not a png", headers={"Content-Type": "image/png"})
    assert r.status_code in (415, 422)
    unknown = client.post("/api/v1/generations", json={"kind": "image", "model": IMAGE_MODEL, "prompt": "x",
                                                       "input_asset_ids": ["deadbeef"]})
    assert unknown.status_code == 404


def test_oversize_image_data_url_is_rejected_without_crashing(data_dir: Path, fake: FakeOpenRouter) -> None:
    running = start_api(data_dir, openrouter_base_url=fake.base_url, max_media_bytes=64, **FAST)
    try:
        with running.client() as client:
            client.put("/api/v1/credentials", json={"api_key": fake.key})
            r = client.post("/api/v1/generations", json={"kind": "image", "model": IMAGE_MODEL, "prompt": "big"})
            assert r.status_code == 422
            assert r.json()["error"]["code"] == "media_too_large"
            assert client.get("/api/v1/health").status_code == 200
            assert list(running.settings.media_dir.rglob("*.tmp")) == []
    finally:
        running.stop()


def stored_media(media_dir: Path) -> list[Path]:
    return [p for p in media_dir.rglob("*") if p.is_file() and p.parent.name != ".tmp"]


def test_decompression_bomb_upload_is_refused(studio) -> None:
    running, client = studio
    bomb = solid_png(10_000, 9_999)  # 291 KB that would decode to 400 MB
    before = stored_media(running.settings.media_dir)
    r = client.post("/api/v1/assets", content=bomb, headers={"Content-Type": "image/png"})
    assert r.status_code == 413, r.text
    error = r.json()["error"]
    assert error["code"] == "too_large"
    assert "too large to process" in error["message"] and "40 megapixels" in error["message"]
    assert stored_media(running.settings.media_dir) == before
    assert client.get("/api/v1/health").status_code == 200


def test_decompression_bomb_from_openrouter_is_refused(studio, fake: FakeOpenRouter) -> None:
    running, client = studio
    fake.enqueue("/chat/completions", Reply(image_pixels=[10_000, 9_999]))
    r = client.post("/api/v1/generations", json={"kind": "image", "model": IMAGE_MODEL, "prompt": "huge"})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "media_too_large" and "40 megapixels" in error["message"]
    assert r.json()["generation"]["status"] == "failed"
    assert stored_media(running.settings.media_dir) == []


def test_range_requests_and_traversal(studio) -> None:
    running, client = studio
    data = png_bytes(size=(300, 200))
    asset = client.post("/api/v1/assets", content=data, headers={"Content-Type": "image/png"}).json()
    r = client.get(asset["url"], headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == data[10:20]
    assert r.headers["content-range"] == f"bytes 10-19/{len(data)}"
    r = client.get(asset["url"], headers={"Range": "bytes=-5"})
    assert r.status_code == 206 and r.content == data[-5:]
    r = client.get(asset["url"], headers={"Range": f"bytes={len(data) + 10}-"})
    assert r.status_code == 416
    for bad in ("../../etc/passwd", "..%2F..%2Fatelier.duckdb", asset["sha256"], "%2e%2e", "a" * 65):
        resp = client.get(f"/api/v1/assets/{bad}")
        assert resp.status_code == 404, bad
    assert client.get(asset["url"], params={"download": 1}).headers["content-disposition"].startswith("attachment")


def test_video_job_completes_and_downloads_once(studio, fake: FakeOpenRouter) -> None:
    _, client = studio
    fake.enqueue("/videos", VideoJob(polls_per_stage=2, cost=0.5))
    r = client.post("/api/v1/generations", json={"kind": "video", "model": VIDEO_MODEL, "prompt": "waves",
                                                 "params": {"duration": 4, "resolution": "720p",
                                                            "aspect_ratio": "16:9", "generate_audio": False}})
    assert r.status_code == 202, r.text
    gen = r.json()
    assert gen["status"] == "running" and gen["job_id"]
    submitted = [q for q in fake.requests if q.path.endswith("/videos") and q.method == "POST"][0].json
    assert submitted["duration"] == 4 and submitted["resolution"] == "720p" and submitted["generate_audio"] is False
    done = wait_for(lambda: (g := get(client, gen["id"]))["status"] == "succeeded" and g)
    assert done["usage"]["cost_usd"] == 0.5
    asset = done["assets"][0]
    assert asset["mime"] == "video/mp4"
    content = client.get(asset["url"]).content
    assert content == fake_mp4(gen["job_id"])
    assert fake.count(f"/videos/{gen['job_id']}/content") == 1
    assert fake.count("/videos", status=202) == 1


def test_video_first_frame_from_a_reference(studio, fake: FakeOpenRouter) -> None:
    _, client = studio
    ref = client.post("/api/v1/assets", content=png_bytes(), headers={"Content-Type": "image/png"}).json()
    r = client.post("/api/v1/generations", json={"kind": "video", "model": VIDEO_MODEL, "prompt": "animate",
                                                 "input_asset_ids": [ref["id"]]})
    assert r.status_code == 202
    body = [q for q in fake.requests if q.method == "POST" and q.path.endswith("/videos")][0].json
    assert body["frame_images"][0]["frame_type"] == "first_frame"
    assert body["frame_images"][0]["image_url"]["url"].startswith("data:image/png;base64,")


@pytest.mark.parametrize("outcome", ["failed", "expired", "cancelled"])
def test_video_job_failures(studio, fake: FakeOpenRouter, outcome: str) -> None:
    _, client = studio
    fake.enqueue("/videos", VideoJob(outcome=outcome, polls_per_stage=1, error="The provider rejected the prompt."))
    gen = client.post("/api/v1/generations", json={"kind": "video", "model": VIDEO_MODEL, "prompt": "x"}).json()
    done = wait_for(lambda: (g := get(client, gen["id"]))["status"] == "failed" and g)
    assert done["error"]["code"] == f"video_{outcome}"
    if outcome == "failed":
        assert done["error"]["message"] == "The provider rejected the prompt."


def test_relative_polling_url(studio, fake: FakeOpenRouter) -> None:
    _, client = studio
    fake.enqueue("/videos", VideoJob(relative_polling_url=True))
    gen = client.post("/api/v1/generations", json={"kind": "video", "model": VIDEO_MODEL, "prompt": "x"}).json()
    wait_for(lambda: get(client, gen["id"])["status"] == "succeeded")


def test_offline_video_submission_waits_in_the_outbox(studio, fake: FakeOpenRouter) -> None:
    _, client = studio
    fake.go_offline()
    r = client.post("/api/v1/generations", json={"kind": "video", "model": VIDEO_MODEL, "prompt": "later"})
    assert r.status_code == 502 and r.json()["generation"]["status"] == "queued"
    fake.go_online()
    wait_for(lambda: get(client, r.json()["generation"]["id"])["status"] == "succeeded")
    assert fake.count("/videos", status=202) == 1


def _runtime(data_dir: Path, proc: subprocess.Popen) -> dict:
    def ready():
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read())
        path = data_dir / "runtime.json"
        if not path.exists():
            return None
        info = json.loads(path.read_text())
        return info if info.get("pid") == proc.pid else None

    return wait_for(ready, timeout=30)


def test_video_job_survives_kill_9(data_dir: Path) -> None:
    with FakeOpenRouter() as fake:
        fake.enqueue("/videos", VideoJob(seconds=2.0))
        env = subprocess_env(data_dir, ATELIER_OPENROUTER_BASE_URL=fake.base_url, ATELIER_VIDEO_POLL_SECONDS="0.1",
                             ATELIER_PROBE_SECONDS="0.1", ATELIER_RETRY_BASE_SECONDS="0.05")
        args = [PYTHON, "-m", "desktop", "--no-window"]
        first = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        info = _runtime(data_dir, first)
        headers = {"Authorization": f"Bearer {info['token']}"}
        with httpx.Client(base_url=info["api_url"], headers=headers, timeout=30) as c:
            c.put("/api/v1/credentials", json={"api_key": fake.key})
            gen = c.post("/api/v1/generations", json={"kind": "video", "model": VIDEO_MODEL, "prompt": "crash"}).json()
            assert gen["status"] == "running"
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        first.stderr.close()
        second = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True)
        try:
            info = _runtime(data_dir, second)
            headers = {"Authorization": f"Bearer {info['token']}"}
            with httpx.Client(base_url=info["api_url"], headers=headers, timeout=30) as c:
                done = wait_for(lambda: (g := c.get(f"/api/v1/generations/{gen['id']}").json())["status"]
                                == "succeeded" and g, timeout=30)
                assert c.get(done["assets"][0]["url"]).content == fake_mp4(gen["job_id"])
            assert fake.count("/videos", status=202) == 1  # never resubmitted
            assert fake.count(f"/videos/{gen['job_id']}/content") == 1
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(15) == 0
            second.stderr.close()


def test_video_submission_with_unknown_outcome_is_not_resubmitted(studio, fake: FakeOpenRouter) -> None:
    from tests.fakes.behaviours import Truncate

    running, client = studio
    fake.enqueue("/videos", Truncate())  # the connection drops after the request was sent
    r = client.post("/api/v1/generations", json={"kind": "video", "model": VIDEO_MODEL, "prompt": "maybe"})
    assert r.status_code == 502, r.text
    gen_id = r.json()["generation"]["id"]
    running.outbox_settled()
    gen = get(client, gen_id)
    assert gen["status"] == "interrupted"
    assert fake.count("/videos") == 1
