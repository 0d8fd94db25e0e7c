"""The Batch page over real HTTP (no browser): a locked budget that the batch would certainly exceed is refused
before anything starts; an unlocked one only warns; a bad header is named; the CSV upload is read."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.fakes.openrouter import FakeOpenRouter
from tests.test_policy_enforcement import backend_with_policy, ui_for, write_policy

MODEL = "anthropic/claude-sonnet-4.5"


@pytest.fixture
def fake() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter() as fake:
        yield fake


def form(rows: str, **extra: str) -> dict[str, str]:
    return {"kind": "text", "prompt": "Describe {{ thing }} at length.", "rows": rows, "models": MODEL,
            "repeat": "1", **extra}


def test_a_locked_budget_that_would_certainly_be_exceeded_is_refused_up_front(data_dir, fake, tmp_path) -> None:
    policy = write_policy(tmp_path, {"budget_monthly_usd": {"value": 0.01, "locked": True}})
    with backend_with_policy(data_dir, policy, openrouter_base_url=fake.base_url) as api, ui_for(api) as ui, \
            api.client() as c:
        assert c.put("/api/v1/credentials", json={"api_key": fake.key}).status_code == 200
        assert c.get("/api/v1/models", params={"output": "text"}).status_code == 200
        rows = "thing\n" + "\n".join(f"a carved wooden object number {i}" for i in range(400))
        page = ui.post("/batches/new", data=form(rows, action="start"))
        assert page.status_code == 422
        assert "set by your organisation" in page.text and "at least $" in page.text
        assert c.get("/api/v1/batches").json()["items"] == []
        # A small batch fits: it is shown with its size and cost range, then starts.
        review = ui.post("/batches/new", data=form("thing\nteapot", action="review"))
        assert review.status_code == 200 and "1 generation — 1 row × 1 model" in review.text
        started = ui.post("/batches/new", data=form("thing\nteapot", action="start"), follow_redirects=False)
        assert started.status_code == 302 and started.headers["location"].startswith("/batches/")
        assert len(c.get("/api/v1/batches").json()["items"]) == 1


def test_an_unlocked_budget_warns_and_a_csv_file_is_read(data_dir, fake, tmp_path) -> None:
    policy = write_policy(tmp_path, {})
    with backend_with_policy(data_dir, policy, openrouter_base_url=fake.base_url) as api, ui_for(api) as ui, \
            api.client() as c:
        assert c.put("/api/v1/credentials", json={"api_key": fake.key}).status_code == 200
        assert c.put("/api/v1/settings", json={"budget_monthly_usd": 0.01}).status_code == 200
        c.get("/api/v1/models", params={"output": "text"})
        rows = "thing\n" + "\n".join(f"a carved wooden object number {i}" for i in range(400))
        review = ui.post("/batches/new", data=form(rows, action="review"))
        assert review.status_code == 200 and "Items stop being sent once the budget is spent" in review.text
        upload = ui.post("/batches/new", data=form("", action="review"),
                         files={"rows_file": ("rows.csv", b"\xef\xbb\xbfthing\r\nkettle\r\ncup\r\n", "text/csv")})
        assert "2 generations — 2 rows × 1 model" in upload.text
        bad = ui.post("/batches/new", data=form("thing,colour\nkettle,red", action="start",
                                                prompt="Describe {{ thing }} in {{ tone }}."))
        error = bad.text.split("data-batch-error>")[1].split("<")[0]
        assert bad.status_code == 422 and "&#39;colour&#39;" in error and "thing, tone" in error, error
        assert c.get("/api/v1/batches").json()["items"] == []


def test_a_wrong_header_is_asked_about_then_skipped_and_the_preview_shows_the_rows(data_dir, fake, tmp_path) -> None:
    policy = write_policy(tmp_path, {})
    with backend_with_policy(data_dir, policy, openrouter_base_url=fake.base_url) as api, ui_for(api) as ui, \
            api.client() as c:
        assert c.put("/api/v1/credentials", json={"api_key": fake.key}).status_code == 200
        rows = "topic\na carved wooden kettle\na blue glass cup"
        asked = ui.post("/batches/new", data=form(rows, action="start"))
        assert asked.status_code == 422 and "&#39;topic&#39;" in asked.text and "First line is a header" in asked.text
        assert c.get("/api/v1/batches").json()["items"] == []
        review = ui.post("/batches/new", data=form(rows, action="review", header="yes"))
        assert review.status_code == 200 and "2 generations — 2 rows × 1 model" in review.text
        preview = review.text.split("data-batch-preview>")[1].split("</div>")[0]
        assert "<code data-batch-header-line>topic</code>" in preview and "a carved wooden kettle" in preview
        assert '<option value="yes" selected>' in review.text  # the choice is kept for the next step
        started = ui.post("/batches/new", data=form(rows, action="start", header="yes"), follow_redirects=False)
        assert started.status_code == 302
        batch_id = started.headers["location"].rsplit("/", 1)[1]
        items = c.get("/api/v1/generations", params={"batch_id": batch_id}).json()["items"]
        assert sorted(i["variables"]["thing"] for i in items) == ["a blue glass cup", "a carved wooden kettle"]


def test_a_video_batch_offers_the_models_shared_choices_estimates_and_sends_the_parameters(
        data_dir, fake, tmp_path) -> None:
    policy = write_policy(tmp_path, {})
    with backend_with_policy(data_dir, policy, openrouter_base_url=fake.base_url, video_poll_seconds=0.05) as api, \
            ui_for(api) as ui, api.client() as c:
        assert c.put("/api/v1/credentials", json={"api_key": fake.key}).status_code == 200
        assert c.get("/api/v1/models", params={"output": "video", "refresh": True}).status_code == 200
        page = ui.get("/batches/new", params={"kind": "video"}).text
        assert 'href="/batches/new?kind=video"' in page and "data-batch-video" in page
        video = {"kind": "video", "prompt": "A slow pan over {{ place }}.", "rows": "place\na harbour\na forest",
                 "models": ["google/veo-3.1", "openai/sora-2-pro"], "repeat": "1"}
        review = ui.post("/batches/new", data={**video, "action": "review"})
        assert review.status_code == 200, review.text
        box = review.text.split("data-batch-video>")[1].split("</fieldset>")[0]
        # Durations both offer (veo 4/6/8, sora 4/8/12); sizes only sora has; seed only veo has.
        assert '<option value="4"' in box and '<option value="8"' in box and '<option value="6"' not in box
        assert 'name="size"' not in box and 'name="seed"' not in box and 'name="generate_audio"' in box
        assert "4 generations — 2 rows × 2 models" in review.text
        est = review.text.split("data-batch-estimate>")[1].split("</div>")[0]
        assert "$" in est and "No price is known" not in est
        started = ui.post("/batches/new", data={**video, "action": "start", "duration": "8", "resolution": "1080p",
                                                "aspect_ratio": "9:16", "audio_offered": "1"},
                          follow_redirects=False)
        assert started.status_code == 302, started.text
        batch = c.get("/api/v1/batches").json()["items"][0]
        assert batch["kind"] == "video" and batch["total"] == 4
        assert batch["params"] == {"duration": 8, "resolution": "1080p", "aspect_ratio": "9:16",
                                   "generate_audio": False}
        deadline = time.monotonic() + 60
        while c.get(f"/api/v1/batches/{batch['id']}").json()["status"] != "finished":
            assert time.monotonic() < deadline, "the video batch did not finish"
            time.sleep(0.05)
        page = ui.get(started.headers["location"]).text
        assert page.count("data-batch-video-item") == 4  # each finished video opens from its tile
