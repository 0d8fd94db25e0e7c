"""Exports and imports through the real API: round trips into a fresh library, open formats, refusals."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import pytest

from tests.conftest import RunningApi, start_api
from tests.fakes.openrouter import FakeOpenRouter
from tests.test_generations import FAST
from tests.test_media_generations import IMAGE_MODEL
from tests.test_robustness_disk import fill, small_disk  # noqa: F401

SENTINEL_KEY = "sk-or-v1-" + "5e" * 32


@pytest.fixture
def fake() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter(keys={SENTINEL_KEY: {}}) as fake:
        yield fake


def _library(tmp_path: Path, fake: FakeOpenRouter, name: str = "a") -> RunningApi:
    running = start_api(tmp_path / name, openrouter_base_url=fake.base_url, **FAST)
    with running.client() as client:
        assert client.put("/api/v1/credentials", json={"api_key": fake.key}).status_code == 200
    return running


@pytest.fixture
def source(tmp_path: Path, fake: FakeOpenRouter) -> Iterator[tuple[RunningApi, list[str]]]:
    """A library with text (tagged, favourite), an image, a failed and a queued generation."""
    running = _library(tmp_path, fake)
    with running.client() as client:
        text = client.post("/api/v1/generations", json={"kind": "text", "model": "openai/gpt-4o-mini",
                                                        "prompt": "Name three rivers", "tags": ["geo"]}).json()
        client.patch(f"/api/v1/generations/{text['id']}", json={"favorite": True, "title": "Rivers"})
        image = client.post("/api/v1/generations", json={"kind": "image", "model": IMAGE_MODEL,
                                                         "prompt": "a heron at dawn"}).json()
        assert image["status"] == "succeeded" and image["assets"]
        client.post("/api/v1/queue/pause")  # keeps the deferred one queued
        queued = client.post("/api/v1/generations", json={"kind": "text", "model": "openai/gpt-4o-mini",
                                                          "prompt": "later", "defer": True}).json()
    yield running, [text["id"], image["id"], queued["id"]]
    running.stop()


def _export(client: httpx.Client, fmt: str, **selection) -> bytes:
    r = client.post("/api/v1/exports", json={"format": fmt, "filter": selection})
    assert r.status_code == 201, r.text
    info = r.json()
    listed = client.get("/api/v1/exports").json()["items"]
    assert info["id"] in [item["id"] for item in listed]
    download = client.get(f"/api/v1/exports/{info['id']}")
    assert download.status_code == 200 and download.headers["content-type"] == "application/zip"
    assert len(download.content) == info["bytes"]
    return download.content


def _comparable(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("attempt_log",)}


def _add_linked(client: httpx.Client) -> dict:
    """A titled two-turn conversation whose first turn was rendered from a template, and a batch of that
    template (the queue is paused: they stay queued). Returns what a round trip must keep."""
    template = client.post("/api/v1/templates", json={"name": "Rivers of", "prompt": "Rivers of {{ place }}",
                                                      "tags": ["geo"]}).json()
    first = client.post("/api/v1/generations", json={"kind": "text", "model": "openai/gpt-4o-mini",
                                                     "template_id": template["id"],
                                                     "variables": {"place": "Peru"}}).json()
    reply = client.post("/api/v1/generations", json={"kind": "text", "model": "openai/gpt-4o-mini",
                                                     "prompt": "And lakes?", "parent_id": first["id"]}).json()
    conversation_id = first["conversation_id"]
    assert client.patch(f"/api/v1/conversations/{conversation_id}", json={"title": "South America"}).is_success
    batch = client.post("/api/v1/batches", json={"kind": "text", "models": ["openai/gpt-4o-mini"], "name": "Lakes",
                                                 "template_id": template["id"],
                                                 "rows": [{"place": "Chile"}, {"place": "Peru"}]}).json()
    items = client.get("/api/v1/generations", params={"batch_id": batch["id"]}).json()["items"]
    assert first["template_id"] == template["id"] and first["variables"] == {"place": "Peru"}
    assert len(items) == 2 and reply["conversation_id"] == conversation_id
    return {"ids": [first["id"], reply["id"], *(i["id"] for i in items)], "template": template,
            "conversation": client.get(f"/api/v1/conversations/{conversation_id}").json(),
            "batch": client.get(f"/api/v1/batches/{batch['id']}").json()}


_UNSENT = ("status", "error", "next_attempt_at", "waiting_for", "attempt_log")


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_export_then_import_into_a_fresh_library_is_identical(source, tmp_path: Path, fake, fmt: str) -> None:
    running, ids = source
    with running.client() as client:
        linked = _add_linked(client)
        ids = [*ids, *linked["ids"]]
        zipped = _export(client, fmt)
        before = {i: client.get(f"/api/v1/generations/{i}").json() for i in ids}
        media = {a["sha256"]: client.get(a["url"]).content for r in before.values() for a in r["assets"]}
    target = start_api(tmp_path / "b", openrouter_base_url=fake.base_url, **FAST)
    try:
        with target.client() as client:
            r = client.post("/api/v1/imports", content=zipped, headers={"content-type": "application/zip"})
            assert r.status_code == 200, r.text
            assert r.json() == {"added": len(ids), "skipped": 0}
            for gen_id, old in before.items():
                new = client.get(f"/api/v1/generations/{gen_id}").json()
                if old["status"] == "queued":  # never sent twice from two machines; everything else is kept
                    assert new["status"] == "cancelled" and new["error"]["code"] == "imported_unsent"
                    assert {k: v for k, v in new.items() if k not in _UNSENT} == \
                        {k: v for k, v in old.items() if k not in _UNSENT}
                    continue
                assert _comparable(new) == _comparable(old)
                for asset in new["assets"]:
                    served = client.get(asset["url"]).content
                    assert served == media[asset["sha256"]]
                    assert hashlib.sha256(served).hexdigest() == asset["sha256"]
            # The rows the generations refer to came along: the title, the batch grouping, the template.
            conversation = client.get(f"/api/v1/conversations/{linked['conversation']['id']}").json()
            assert conversation["title"] == "South America"
            assert [t["id"] for t in conversation["turns"]] == [t["id"] for t in linked["conversation"]["turns"]]
            batch = client.get(f"/api/v1/batches/{linked['batch']['id']}")
            assert batch.status_code == 200, batch.text
            kept = ("name", "kind", "models", "template_id", "prompt", "params", "tags", "rows", "repeat", "total",
                    "created_at")
            assert {k: batch.json()[k] for k in kept} == {k: linked["batch"][k] for k in kept}
            assert batch.json()["counts"]["cancelled"] == 2
            template = client.get(f"/api/v1/templates/{linked['template']['id']}")
            assert template.status_code == 200 and template.json() == linked["template"]
            again = client.post("/api/v1/imports", content=zipped)
            assert again.json() == {"added": 0, "skipped": len(ids)}
            assert len(client.get("/api/v1/generations").json()["items"]) == len(ids)
            assert not any(target.settings.data_dir.joinpath("imports").iterdir())
    finally:
        target.stop()


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_an_export_without_the_related_rows_keeps_the_links_and_makes_untitled_conversations(
        source, tmp_path: Path, fake, fmt: str) -> None:
    """An export from before conversations, batches and templates were exported (docs/data.md, "Imports")."""
    running, ids = source
    with running.client() as client:
        linked = _add_linked(client)
        zipped = _export(client, fmt)
    related = {f"{t}.{fmt}" for t in ("conversations", "batches", "templates")}
    assert related <= set(zipfile.ZipFile(io.BytesIO(zipped)).namelist())
    older = _rezip(zipped, lambda n, d: None if n in related else d)
    target = start_api(tmp_path / "b", openrouter_base_url=fake.base_url, **FAST)
    try:
        with target.client() as client:
            r = client.post("/api/v1/imports", content=older)
            assert r.status_code == 200 and r.json()["added"] == len(ids) + len(linked["ids"]), r.text
            conversation = client.get(f"/api/v1/conversations/{linked['conversation']['id']}").json()
            assert conversation["title"] == "Rivers of Peru"  # untitled: its first prompt
            first = client.get(f"/api/v1/generations/{linked['ids'][0]}").json()
            assert first["template_id"] == linked["template"]["id"] and first["variables"] == {"place": "Peru"}
            items = client.get("/api/v1/generations", params={"batch_id": linked["batch"]["id"]}).json()["items"]
            assert len(items) == 2  # the grouping is kept on the items
            assert client.get(f"/api/v1/batches/{linked['batch']['id']}").status_code == 404  # none made up
            assert client.get(f"/api/v1/templates/{linked['template']['id']}").status_code == 404
    finally:
        target.stop()


def test_parquet_export_is_readable_by_plain_duckdb(source, tmp_path: Path) -> None:
    running, ids = source
    with running.client() as client:
        zipped = _export(client, "parquet")
    folder = tmp_path / "unzipped"
    zipfile.ZipFile(io.BytesIO(zipped)).extractall(folder)
    con = duckdb.connect()
    assert con.execute("SELECT count(*) FROM read_parquet(?)", [str(folder / "generations.parquet")]).fetchone() \
        == (3,)
    assert con.execute("SELECT count(*) FROM read_parquet(?)", [str(folder / "assets.parquet")]).fetchone()[0] >= 1
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["items"] == 3 and manifest["format"] == "parquet"
    for name, sha in manifest["media"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == sha


def test_markdown_export_has_an_index_a_file_per_item_and_media(source) -> None:
    running, ids = source
    with running.client() as client:
        zf = zipfile.ZipFile(io.BytesIO(_export(client, "markdown")))
    names = zf.namelist()
    documents = [n for n in names if n.endswith(".md") and n != "index.md"]
    assert "index.md" in names and len(documents) == 3
    index = zf.read("index.md").decode()
    for document in documents:
        assert f"]({document})" in index
    heron = zf.read(next(d for d in documents if "heron" in d)).decode()
    assert "## Prompt" in heron and "a heron at dawn" in heron
    image_link = heron.split("![image](")[1].split(")")[0]
    assert image_link in names
    rivers = zf.read(next(d for d in documents if "rivers" in d)).decode()
    assert "## Answer" in rivers and "**Tags:** geo" in rivers


def test_filters_choose_what_is_exported(source) -> None:
    running, ids = source
    with running.client() as client:
        coll = client.post("/api/v1/collections", json={"name": "Pick"}).json()
        client.post(f"/api/v1/collections/{coll['id']}/items", json={"generation_ids": [ids[1]]})

        def exported(**selection) -> list[str]:
            zf = zipfile.ZipFile(io.BytesIO(_export(client, "jsonl", **selection)))
            return [json.loads(line)["id"] for line in zf.read("generations.jsonl").splitlines()]

        assert exported(collection_id=coll["id"]) == [ids[1]]
        assert exported(tag="geo") == [ids[0]]
        assert exported(kind="image") == [ids[1]]
        assert sorted(exported(ids=[ids[0], ids[2]])) == sorted([ids[0], ids[2]])
        assert exported(q="heron") == [ids[1]]
        assert exported(batch_id="nobatch") == []


def test_no_export_contains_the_key(source, fake) -> None:
    running, _ = source
    with running.client() as client:
        for fmt in ("jsonl", "parquet", "markdown"):
            zipped = _export(client, fmt)
            assert SENTINEL_KEY.encode() not in zipped
            zf = zipfile.ZipFile(io.BytesIO(zipped))
            for name in zf.namelist():
                data = zf.read(name)
                assert SENTINEL_KEY.encode() not in data, name
                assert SENTINEL_KEY[-12:].encode() not in data, name


def _rezip(zipped: bytes, change) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(zipped))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            data = change(name, src.read(name))
            if data is not None:
                dst.writestr(name, data)
    return out.getvalue()


def test_damaged_imports_are_refused_and_change_nothing(source, tmp_path: Path, fake) -> None:
    running, ids = source
    with running.client() as client:
        good = _export(client, "jsonl")
        markdown = _export(client, "markdown")
    tampered_media = _rezip(good, lambda n, d: (d[:-1] + bytes([d[-1] ^ 1])) if n.startswith("media/") else d)
    bad_status = _rezip(good, lambda n, d: d.replace(b'"status": "succeeded"', b'"status": "sparkling"', 1)
                        if n == "generations.jsonl" else d)
    no_manifest = _rezip(good, lambda n, d: None if n == "manifest.json" else d)
    no_media = _rezip(good, lambda n, d: None if n.startswith("media/") else d)
    limit = max(map(len, (good, markdown, tampered_media, bad_status, no_manifest, no_media))) + 10
    target = start_api(tmp_path / "b", openrouter_base_url=fake.base_url, import_max_bytes=limit, **FAST)
    cases = [
        (b"not a zip at all", 422, "not a zip"),
        (markdown, 422, "Markdown"),
        (tampered_media, 422, "checksum"),
        (bad_status, 422, "status in line"),
        (no_manifest, 422, "manifest"),
        (no_media, 422, "missing the media file"),
        (good + b"\0" * limit, 413, "import limit"),
    ]
    try:
        with target.client() as client:
            media_dir = target.settings.media_dir
            for body, status, words in cases:
                r = client.post("/api/v1/imports", content=body)
                assert r.status_code == status, (words, r.text)
                assert words in r.json()["error"]["message"], r.text
                assert client.get("/api/v1/generations").json()["items"] == []
                assert [p for p in media_dir.rglob("*") if p.is_file() and ".tmp" not in p.parts] == []
            assert client.post("/api/v1/imports", content=good).json()["added"] == 3
    finally:
        target.stop()


def test_an_export_on_a_full_disk_is_507_and_leaves_nothing(small_disk: Path, fake) -> None:  # noqa: F811
    running = start_api(small_disk / "atelier", openrouter_base_url=fake.base_url, **FAST)
    try:
        with running.client() as client:
            for n in range(5):
                client.post("/api/v1/generations", json={"kind": "text", "model": "openai/gpt-4o-mini",
                                                          "prompt": f"queued {n} " + "x" * 2000, "defer": True})
            filler = fill(small_disk)
            r = client.post("/api/v1/exports", json={"format": "jsonl"})
            assert r.status_code == 507, r.text
            assert r.json()["error"]["code"] == "storage_error"
            exports_dir = running.settings.exports_dir
            assert not exports_dir.exists() or list(exports_dir.iterdir()) == []
            filler.unlink()
            assert client.post("/api/v1/exports", json={"format": "jsonl"}).status_code == 201
    finally:
        running.stop()
        shutil.rmtree(small_disk / "atelier", ignore_errors=True)
