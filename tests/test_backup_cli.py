"""``atelier backup`` and ``atelier restore`` as real processes: on the file when nothing runs, through the API of a
running Atelier otherwise."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import httpx

from backend.db import generations as gens
from backend.db import meta
from backend.db.store import Store
from tests.conftest import PYTHON, ROOT, subprocess_env
from tests.test_desktop_process import launch, stop, wait_runtime


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "desktop", *args], cwd=ROOT, env=subprocess_env(data_dir),
                          capture_output=True, text=True, timeout=180)


def add(data_dir: Path, prompt: str) -> str:
    async def go() -> str:
        store = Store.open(data_dir / "atelier.duckdb", backups_dir=data_dir / "backups")
        try:
            row = await gens.insert(store, kind="text", model="openai/gpt-4o-mini", prompt=prompt, system=None,
                                    params={}, input_asset_ids=[], stream=False, tags=[])
            return row["id"]
        finally:
            store.close()

    return asyncio.run(go())


def library(data_dir: Path) -> tuple[set[str], str | None]:
    async def go() -> tuple[set[str], str | None]:
        store = Store.open(data_dir / "atelier.duckdb", backups_dir=data_dir / "backups")
        try:
            rows = await store.fetchall("SELECT id FROM generations")
            return {r["id"] for r in rows}, await meta.get(store, key="outbox_paused")
        finally:
            store.close()

    return asyncio.run(go())


def test_backup_and_restore_on_the_file(data_dir: Path, tmp_path: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    first = add(data_dir, "kept in the backup")
    made = cli(data_dir, "backup", "--json")
    assert made.returncode == 0, made.stderr
    backup = json.loads(made.stdout)
    assert backup["via"] == "file" and backup["items"] == 1 and Path(backup["path"]).is_dir()

    later = add(data_dir, "made after the backup")
    restored = cli(data_dir, "restore", backup["id"])
    assert restored.returncode == 0, restored.stderr
    assert "1 items" in restored.stdout and "paused" in restored.stdout
    ids, paused = library(data_dir)
    assert ids == {first} and later not in ids and paused == "true"
    assert list(data_dir.glob("atelier.duckdb.before-restore-*")), "the previous file is kept aside"

    # A backup folder from elsewhere (another machine, a share): verified, copied into backups/, restored.
    elsewhere = tmp_path / "carried" / backup["id"]
    shutil.copytree(Path(backup["path"]), elsewhere)
    shutil.rmtree(Path(backup["path"]))
    add(data_dir, "another one")
    again = cli(data_dir, "restore", str(elsewhere), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["items"] == 1 and (data_dir / "backups" / backup["id"]).is_dir()
    assert library(data_dir)[0] == {first}

    # Nonsense is refused with a message, and nothing is replaced.
    bad = cli(data_dir, "restore", "no-such-backup")
    assert bad.returncode == 1 and "no-such-backup" in bad.stderr
    damaged = tmp_path / "damaged"
    shutil.copytree(elsewhere, damaged)
    (damaged / "generations.parquet").write_bytes(b"not parquet")
    refused = cli(data_dir, "restore", str(damaged))
    assert refused.returncode == 1 and "checksum" in refused.stderr
    assert library(data_dir)[0] == {first}


def test_backup_and_restore_through_a_running_atelier(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    first = add(data_dir, "kept in the backup")
    proc = launch(data_dir)
    try:
        info = wait_runtime(data_dir, proc)
        api = httpx.Client(base_url=info["api_url"] + "/api/v1", trust_env=False, timeout=60,
                           headers={"Authorization": f"Bearer {info['token']}"})
        with api:
            made = cli(data_dir, "backup", "--json")
            assert made.returncode == 0, made.stderr
            backup = json.loads(made.stdout)
            assert backup["via"] == "api" and backup["items"] == 1
            assert [b["id"] for b in api.get("/backups").json()["items"]] == [backup["id"]]

            assert api.delete(f"/generations/{first}").status_code == 204
            assert api.get("/generations").json()["items"] == []
            restored = cli(data_dir, "restore", backup["id"], "--json")
            assert restored.returncode == 0, restored.stderr
            assert json.loads(restored.stdout)["via"] == "api"
            # The running app carries on with the restored library, paused.
            assert [g["id"] for g in api.get("/generations").json()["items"]] == [first]
            assert api.get("/queue").json()["paused"] is True
    finally:
        assert stop(proc) == 0
        proc.stdout.close()
        proc.stderr.close()
