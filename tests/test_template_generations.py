"""POST /generations with ``template_id`` + ``variables``: rendered before it is written, the record keeps the
template and the values, a missing value is a 422 that names it (nothing stored, nothing sent)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningApi, start_api
from tests.fakes.openrouter import FakeOpenRouter

FAST = {"retry_base_seconds": 0.05, "retry_max_seconds": 0.2, "probe_seconds": 0.1}
TEMPLATE = {"name": "Blurb", "kind": "text", "prompt": "Describe {{ product }} in a {{ tone | default('warm') }} tone.",
            "system": "You write for {{ brand }}.", "params": {"temperature": 0.3}, "tags": ["shop"]}


@pytest.fixture
def studio(data_dir: Path) -> Iterator[tuple[RunningApi, httpx.Client, FakeOpenRouter]]:
    with FakeOpenRouter() as fake:
        running = start_api(data_dir, openrouter_base_url=fake.base_url, **FAST)
        client = running.client()
        assert client.put("/api/v1/credentials", json={"api_key": fake.key}).status_code == 200
        yield running, client, fake
        client.close()
        running.stop()


def test_template_is_rendered_and_the_record_keeps_it(studio) -> None:
    _, client, fake = studio
    tid = client.post("/api/v1/templates", json=TEMPLATE).json()["id"]
    r = client.post("/api/v1/generations", json={"kind": "text", "model": "openai/gpt-4o-mini", "template_id": tid,
                                                  "variables": {"product": "a teapot", "brand": "Kettle & Co"},
                                                  "tags": ["mine"]})
    assert r.status_code == 201, r.text
    record = r.json()
    assert record["prompt"] == "Describe a teapot in a warm tone."
    assert record["system"] == "You write for Kettle & Co."
    assert record["template_id"] == tid
    assert record["variables"] == {"product": "a teapot", "brand": "Kettle & Co"}
    assert record["params"] == {"temperature": 0.3} and record["tags"] == ["shop", "mine"]
    assert record["output_text"] == "Echo: Describe a teapot in a warm tone."
    sent = [q for q in fake.requests if q.path == "/chat/completions"][-1].json
    assert sent["messages"][0] == {"role": "system", "content": "You write for Kettle & Co."}
    again = client.get(f"/api/v1/generations/{record['id']}").json()
    assert again["template_id"] == tid and again["variables"] == record["variables"]
    # Deleting the template keeps what was made from it.
    assert client.delete(f"/api/v1/templates/{tid}").status_code == 204
    assert client.get(f"/api/v1/generations/{record['id']}").json()["template_id"] == tid


def test_missing_variable_is_named_and_nothing_is_stored_or_sent(studio) -> None:
    _, client, fake = studio
    tid = client.post("/api/v1/templates", json=TEMPLATE).json()["id"]
    r = client.post("/api/v1/generations", json={"kind": "text", "model": "openai/gpt-4o-mini", "template_id": tid,
                                                  "variables": {"product": "a teapot"}})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "missing_variable" and r.json()["error"]["variable"] == "brand"
    bad = client.post("/api/v1/templates", json={**TEMPLATE, "prompt": "{{ x.__class__.__mro__ }}", "system": None})
    r = client.post("/api/v1/generations", json={"kind": "text", "model": "openai/gpt-4o-mini",
                                                  "template_id": bad.json()["id"], "variables": {"x": "y"}})
    assert r.status_code == 422 and r.json()["error"]["code"] == "template_error"
    assert client.get("/api/v1/generations").json()["items"] == []
    assert fake.count("/chat/completions") == 0


@pytest.mark.parametrize("body", [
    {"prompt": "Hi", "template_id": "abc"},        # both
    {},                                            # neither
    {"prompt": "Hi", "variables": {"a": 1}},       # variables without a template
])
def test_prompt_or_template_exactly(studio, body: dict) -> None:
    _, client, _ = studio
    r = client.post("/api/v1/generations", json={"kind": "text", "model": "openai/gpt-4o-mini", **body})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"


def test_unknown_template_is_404(studio) -> None:
    _, client, _ = studio
    r = client.post("/api/v1/generations", json={"kind": "text", "model": "openai/gpt-4o-mini",
                                                  "template_id": "0" * 32, "variables": {}})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
