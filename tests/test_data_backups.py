"""Backups and restore through the real API: snapshot, more work, restore, media intact, damaged backups."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import start_api
from tests.test_data_exports import SENTINEL_KEY, _library, fake  # noqa: F401
from tests.test_generations import FAST
from tests.test_media_generations import IMAGE_MODEL
from tests.ui_fixtures import wait_for


def _text(client, prompt: str) -> dict:
    r = client.post("/api/v1/generations", json={"kind": "text", "model": "openai/gpt-4o-mini", "prompt": prompt})
    assert r.status_code == 201, r.text
    return r.json()


def test_backup_more_work_restore_gives_the_backup_state_with_media(tmp_path: Path, fake) -> None:  # noqa: F811
    running = _library(tmp_path, fake)
    try:
        with running.client() as client:
            kept = _text(client, "before the backup")
            image = client.post("/api/v1/generations", json={"kind": "image", "model": IMAGE_MODEL,
                                                             "prompt": "a lighthouse"}).json()
            client.put("/api/v1/settings", json={"theme": "dark"})
            made = client.post("/api/v1/backups")
            assert made.status_code == 201, made.text
            backup = made.json()
            assert backup["items"] == 2
            assert [b["id"] for b in client.get("/api/v1/backups").json()["items"]] == [backup["id"]]

            # More work after the backup: a new item, a deleted one (with its file), a changed setting.
            later = _text(client, "after the backup")
            asset = image["assets"][0]
            media_file = running.settings.media_dir / asset["sha256"][:2] / asset["sha256"]
            assert client.delete(f"/api/v1/generations/{image['id']}").status_code == 204
            assert media_file.exists(), "a file a backup refers to is kept"
            client.put("/api/v1/settings", json={"theme": "light"})

            restored = client.post(f"/api/v1/backups/{backup['id']}/restore")
            assert restored.status_code == 200, restored.text
            body = restored.json()
            assert body["items"] == 2 and body["outbox_paused"] is True
            assert (running.settings.data_dir / body["kept_aside"]).exists()

            ids = {item["id"] for item in client.get("/api/v1/generations").json()["items"]}
            assert ids == {kept["id"], image["id"]} and later["id"] not in ids
            # The search index is built again from the restored rows.
            found = client.get("/api/v1/generations", params={"q": "BEFORE the"}).json()["items"]
            assert [item["id"] for item in found] == [kept["id"]]
            back = client.get(f"/api/v1/generations/{image['id']}").json()
            assert client.get(back["assets"][0]["url"]).status_code == 200
            assert client.get("/api/v1/settings").json()["values"]["theme"] == "dark"
            assert client.get("/api/v1/queue").json()["paused"] is True
            # The restored library takes new work without a restart.
            client.post("/api/v1/queue/resume")
            assert _text(client, "after the restore")["status"] == "succeeded"
    finally:
        running.stop()
    # And it is the library the next start opens.
    again = start_api(tmp_path / "a", openrouter_base_url=fake.base_url, **FAST)
    try:
        with again.client() as client:
            assert len(client.get("/api/v1/generations").json()["items"]) == 3
    finally:
        again.stop()


def test_damaged_backups_are_refused_and_nothing_is_replaced(tmp_path: Path, fake) -> None:  # noqa: F811
    running = _library(tmp_path, fake)
    try:
        with running.client() as client:
            _text(client, "one")
            backup = client.post("/api/v1/backups").json()
            folder = running.settings.backups_dir / backup["id"]
            _text(client, "two")
            parquet = folder / "generations.parquet"
            original = parquet.read_bytes()
            parquet.write_bytes(original[:-10] + b"0123456789")
            r = client.post(f"/api/v1/backups/{backup['id']}/restore")
            assert r.status_code == 422 and "checksum" in r.json()["error"]["message"]
            parquet.write_bytes(original)

            manifest = json.loads((folder / "manifest.json").read_text())
            newer = {**manifest, "migrations": [*manifest["migrations"], "9999_from_the_future"]}
            (folder / "manifest.json").write_text(json.dumps(newer))
            r = client.post(f"/api/v1/backups/{backup['id']}/restore")
            assert r.status_code == 422 and "newer Atelier" in r.json()["error"]["message"]
            (folder / "manifest.json").write_text("{broken")
            assert client.post(f"/api/v1/backups/{backup['id']}/restore").status_code == 422

            assert client.post("/api/v1/backups/20990101-000000-000000/restore").status_code == 404
            assert client.post("/api/v1/backups/..%2F..%2Fetc/restore").status_code == 404
            assert len(client.get("/api/v1/generations").json()["items"]) == 2
            assert not list(running.settings.data_dir.glob("*.before-restore-*"))
    finally:
        running.stop()


def test_only_the_newest_backups_are_kept(tmp_path: Path, fake) -> None:  # noqa: F811
    running = start_api(tmp_path / "a", openrouter_base_url=fake.base_url, backup_keep=2, **FAST)
    try:
        with running.client() as client:
            made = [client.post("/api/v1/backups").json()["id"] for _ in range(3)]
            listed = [b["id"] for b in client.get("/api/v1/backups").json()["items"]]
            assert listed == [made[2], made[1]]
            assert not (running.settings.backups_dir / made[0]).exists()
    finally:
        running.stop()


def test_backups_hold_no_key(tmp_path: Path, fake) -> None:  # noqa: F811
    running = _library(tmp_path, fake)
    try:
        with running.client() as client:
            _text(client, "hello")
            backup = client.post("/api/v1/backups").json()
        for path in (running.settings.backups_dir / backup["id"]).iterdir():
            data = path.read_bytes()
            assert SENTINEL_KEY.encode() not in data and SENTINEL_KEY[-12:].encode() not in data, path.name
    finally:
        running.stop()


def test_a_backup_is_made_automatically(tmp_path: Path, fake) -> None:  # noqa: F811
    running = start_api(tmp_path / "a", openrouter_base_url=fake.base_url, backup_interval_hours=0.0005, **FAST)
    try:
        with running.client() as client:
            client.put("/api/v1/credentials", json={"api_key": fake.key})
            _text(client, "worth keeping")
            first = wait_for(lambda: client.get("/api/v1/backups").json()["items"], timeout=30)
            assert first[0]["items"] == 1
    finally:
        running.stop()
