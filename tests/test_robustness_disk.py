"""A full disk (docs/security.md): the data directory lives on a small tmpfs that the test fills up.

Every write the user asks for while the disk is full (a key, settings, a generation's image) answers with a
clear error instead of a crash, what was saved before is intact, and once space is freed the app goes on.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PYTHON, ROOT, RunningApi, start_api, subprocess_env
from tests.fakes.openrouter import FakeOpenRouter

FAST = {"retry_base_seconds": 0.05, "retry_max_seconds": 0.2, "probe_seconds": 0.1}
OTHER_KEY = "sk-or-v1-" + "b0b" * 21 + "f"


@contextlib.contextmanager
def mounted_tmpfs(mnt: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``mnt`` (needs root and mount rights; skips the test otherwise)."""
    mnt.mkdir(exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root (it simulates a full disk)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs mounted for this test (needs root and mount rights; skipped otherwise)."""
    with mounted_tmpfs(tmp_path / "disk", "24m") as mnt:
        yield mnt


@pytest.fixture
def roomier_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB tmpfs: room for DuckDB's journal to reach its automatic checkpoint threshold (16 MiB)."""
    with mounted_tmpfs(tmp_path / "disk", "64m") as mnt:
        yield mnt


def fill(path: Path) -> Path:
    """Write a filler file until the file system refuses; returns it (delete it to free the space)."""
    filler = path / "filler.bin"
    block = b"\0" * (1 << 20)
    with open(filler, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(block)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        with contextlib.suppress(OSError):  # the last few bytes too
            while True:
                fh.write(b"\0" * 512)
    return filler


@pytest.fixture
def full_disk_app(small_disk: Path, fake_openrouter: FakeOpenRouter) -> Iterator[tuple[RunningApi, Path]]:
    data_dir = small_disk / "atelier"
    running = start_api(data_dir, openrouter_base_url=fake_openrouter.base_url, **FAST)
    try:
        yield running, data_dir
    finally:
        running.stop()


def test_full_disk_gives_clear_errors_and_keeps_saved_data(full_disk_app, fake_openrouter: FakeOpenRouter,
                                                           small_disk: Path) -> None:
    running, data_dir = full_disk_app
    fake_openrouter.add_key(OTHER_KEY)
    with running.client() as api:
        assert api.put("/api/v1/credentials", json={"api_key": fake_openrouter.key}).status_code == 200
        assert api.put("/api/v1/settings", json={"theme": "dark"}).status_code == 200
        first = api.post("/api/v1/generations", json={"kind": "text", "model": "openai/gpt-4o-mini",
                                                      "prompt": "before the disk filled"})
        assert first.status_code == 201
        key_file = data_dir / "secrets" / "openrouter.key"
        key_before = key_file.read_bytes()

        filler = fill(small_disk)

        # A new key cannot be saved: 507, the old key file untouched, no temp file left behind.
        r = api.put("/api/v1/credentials", json={"api_key": OTHER_KEY})
        assert r.status_code == 507, r.text
        assert r.json()["error"]["code"] == "storage_error" and r.json()["error"]["message"]
        assert key_file.read_bytes() == key_before
        assert sorted(p.name for p in key_file.parent.iterdir()) == ["openrouter.key"]

        # Settings: either the small write still fits, or it is refused with 507; never a 500.
        r = api.put("/api/v1/settings", json={"theme": "light", "budget_monthly_usd": 12.5})
        assert r.status_code in (200, 507), r.text
        settings_written = r.status_code == 200

        filler.unlink()

        # Everything saved before is intact and the app works again.
        assert api.get("/api/v1/credentials").json()["hint"] == "…" + fake_openrouter.key[-4:]
        values = api.get("/api/v1/settings").json()["values"]
        assert values["theme"] == ("light" if settings_written else "dark")
        g = api.get(f"/api/v1/generations/{first.json()['id']}").json()
        assert g["status"] == "succeeded" and g["output_text"] == "Echo: before the disk filled"
        assert api.put("/api/v1/credentials", json={"api_key": OTHER_KEY}).status_code == 200
        assert api.put("/api/v1/settings", json={"theme": "system"}).status_code == 200
        again = api.post("/api/v1/generations", json={"kind": "image", "model": "google/gemini-2.5-flash-image",
                                                      "prompt": "a big picture"})
        assert again.status_code == 201, again.text
        assert api.get(again.json()["assets"][0]["url"].removeprefix(running.url)).status_code == 200


def test_full_disk_image_generation_is_reported_and_not_left_running(full_disk_app, small_disk: Path,
                                                                     fake_openrouter: FakeOpenRouter) -> None:
    running, data_dir = full_disk_app
    with running.client() as api:
        assert api.put("/api/v1/credentials", json={"api_key": fake_openrouter.key}).status_code == 200
        media_before = sorted(p.name for p in (data_dir / "media").rglob("*") if p.is_file())
        filler = fill(small_disk)
        r = api.post("/api/v1/generations", json={"kind": "image", "model": "google/gemini-2.5-flash-image",
                                                  "prompt": "a big picture"})
        filler.unlink()
        assert r.status_code == 507, r.text
        assert r.json()["error"]["code"] == "storage_error"
        assert sorted(p.name for p in (data_dir / "media").rglob("*") if p.is_file()) == media_before
        gen = r.json().get("generation")  # absent when not even the request could be written
        if gen is not None:
            # Once the disk has room again the failure is recorded: nothing stays "running" until the next start.
            deadline = time.monotonic() + 10
            while api.get(f"/api/v1/generations/{gen['id']}").json()["status"] == "running":
                assert time.monotonic() < deadline, "the generation stayed 'running'"
                time.sleep(0.05)
            assert api.get(f"/api/v1/generations/{gen['id']}").json()["error"]["code"] == "storage_error"


def test_full_disk_database_write_is_507_and_previous_rows_survive(full_disk_app, small_disk: Path) -> None:
    running, data_dir = full_disk_app
    with running.client() as api:
        ids = []
        for i in range(3):
            r = api.post("/api/v1/generations", json={"kind": "text", "model": "openai/gpt-4o-mini",
                                                      "prompt": f"kept {i}", "defer": True})
            assert r.status_code == 202
            ids.append(r.json()["id"])
        filler = fill(small_disk)
        big = "x" * 150_000  # far more than the few bytes left: the WAL cannot take it
        outcomes = []
        for i in range(5):
            r = api.post("/api/v1/generations", json={"kind": "text", "model": "openai/gpt-4o-mini",
                                                      "prompt": f"{i} {big}", "defer": True})
            outcomes.append(r.status_code)
            assert r.status_code in (202, 507), r.text
            if r.status_code == 507:
                assert r.json()["error"]["code"] == "storage_error"
        assert 507 in outcomes
        filler.unlink()
        for gen_id in ids:
            assert api.get(f"/api/v1/generations/{gen_id}").status_code == 200
        r = api.post("/api/v1/generations", json={"kind": "text", "model": "openai/gpt-4o-mini",
                                                  "prompt": "after", "defer": True})
        assert r.status_code == 202, r.text


@pytest.fixture
def immutable_media(data_dir: Path) -> Iterator[Path]:
    """The media folder made immutable with ``chattr +i`` (root ignores permission bits, not this flag)."""
    media = data_dir / "media"
    media.mkdir(parents=True, exist_ok=True)
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed (needed to make a folder unwritable for root)")
    done = subprocess.run(["chattr", "+i", str(media)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"this file system does not support the immutable flag: {done.stderr.strip()}")
    try:
        yield media
    finally:
        subprocess.run(["chattr", "-i", str(media)], capture_output=True)


def _image_into_unwritable_media(data_dir: Path, fake: FakeOpenRouter) -> tuple[dict, int]:
    running = start_api(data_dir, openrouter_base_url=fake.base_url, **FAST)
    try:
        with running.client() as api:
            assert api.put("/api/v1/credentials", json={"api_key": fake.key}).status_code == 200
            r = api.post("/api/v1/generations", json={"kind": "image", "model": "google/gemini-2.5-flash-image",
                                                      "prompt": "cannot be stored"})
            # A reference upload into the same folder is refused as a storage problem.
            up = api.post("/api/v1/assets", content=b"\x89PNG\r\n\x1a\n" + b"\0" * 64,
                          headers={"Content-Type": "image/png"})
            return r.json() | {"_status": r.status_code}, up.status_code
    finally:
        running.stop()


def test_unwritable_media_folder_fails_the_image_clearly(data_dir: Path, immutable_media: Path,
                                                         fake_openrouter: FakeOpenRouter) -> None:
    body, upload_status = _image_into_unwritable_media(data_dir, fake_openrouter)
    assert body["_status"] in (422, 507), body
    assert body["generation"]["status"] == "failed"
    assert "write" in body["error"]["message"] and "data folder" in body["error"]["message"]
    assert not any(immutable_media.iterdir())  # nothing half-written
    assert upload_status in (422, 507)


def test_unwritable_media_folder_is_a_storage_error(data_dir: Path, immutable_media: Path,
                                                     fake_openrouter: FakeOpenRouter) -> None:
    body, _ = _image_into_unwritable_media(data_dir, fake_openrouter)
    assert body["_status"] == 507 and body["error"]["code"] == "storage_error"


def _noise(n: int) -> str:
    """Text that compresses poorly, so the database file needs about as much room as the journal."""
    return os.urandom(n // 2).hex()


def test_failed_checkpoint_on_a_full_disk_recovers_once_space_is_freed(roomier_disk: Path,
                                                                       fake_openrouter: FakeOpenRouter) -> None:
    """DuckDB invalidates the database when its automatic checkpoint cannot write (every call on the connection
    fails after that, reads too); the store opens the file again in place: no restart, nothing acknowledged lost."""
    data_dir = roomier_disk / "atelier"
    running = start_api(data_dir, openrouter_base_url=fake_openrouter.base_url, **FAST)
    wal = data_dir / "atelier.duckdb.wal"
    try:
        with running.client() as api:
            assert api.put("/api/v1/credentials", json={"api_key": fake_openrouter.key}).status_code == 200
            first = api.post("/api/v1/generations", json={"kind": "text", "model": "openai/gpt-4o-mini",
                                                          "prompt": "saved before the disk filled"})
            assert first.status_code == 201, first.text
            # Grow the journal close to DuckDB's automatic checkpoint threshold (16 MiB).
            queued = []
            while not wal.exists() or wal.stat().st_size < 15 * 2**20 + 512 * 2**10:
                r = api.post("/api/v1/generations", json={"kind": "text", "model": "openai/gpt-4o-mini",
                                                          "prompt": _noise(100_000), "defer": True})
                assert r.status_code == 202, r.text
                queued.append(r.json()["id"])
            filler = fill(roomier_disk)
            # Leave room for the journal's next entries, not for the checkpoint they trigger.
            os.truncate(filler, filler.stat().st_size - 2 * 2**20)
            store = running.app.state.store
            statuses = []
            for _ in range(60):
                r = api.post("/api/v1/generations", json={"kind": "text", "model": "openai/gpt-4o-mini",
                                                          "prompt": _noise(100_000), "defer": True})
                statuses.append(r.status_code)
                if r.status_code == 202:
                    queued.append(r.json()["id"])
                else:
                    assert r.status_code == 507 and r.json()["error"]["code"] == "storage_error", r.text
                    break
            assert statuses[-1] == 507, statuses
            # Reads go on while the disk is still full.
            r = api.get(f"/api/v1/generations/{first.json()['id']}")
            assert r.status_code == 200, r.text
            # The commit that crossed the threshold was acknowledged, and its checkpoint failed: the database
            # was invalidated, and opened again on the next call.
            assert getattr(store, "reopened", 0) >= 1

            filler.unlink()

            again = api.post("/api/v1/generations", json={"kind": "text", "model": "openai/gpt-4o-mini",
                                                          "prompt": "after the disk was freed"})
            assert again.status_code == 201, again.text
            assert again.json()["output_text"] == "Echo: after the disk was freed"
            g = api.get(f"/api/v1/generations/{first.json()['id']}")
            assert g.status_code == 200 and g.json()["output_text"] == "Echo: saved before the disk filled"
            for gen_id in queued:  # every acknowledged row, the one whose commit triggered the checkpoint too
                assert api.get(f"/api/v1/generations/{gen_id}").status_code == 200
    finally:
        running.stop()
    assert not wal.exists()  # the journal was folded into the file at shutdown


def _start_process(data_dir: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """``python -m desktop --no-window`` on ``data_dir``; it must exit by itself (it cannot start)."""
    return subprocess.run([PYTHON, "-m", "desktop", "--no-window"], cwd=ROOT, env=subprocess_env(data_dir),
                          capture_output=True, text=True, timeout=timeout)


def test_restart_on_a_still_full_disk_says_so_and_exits(small_disk: Path, fake_openrouter: FakeOpenRouter) -> None:
    """The journal cannot be folded into the file on a full disk: the app says so (where, how much room it
    needs) and exits, instead of dying with DuckDB's FatalException; nothing is lost."""
    data_dir = small_disk / "atelier"
    running = start_api(data_dir, openrouter_base_url=fake_openrouter.base_url, **FAST)
    ids = []
    try:
        with running.client() as api:
            for _ in range(30):
                r = api.post("/api/v1/generations", json={"kind": "text", "model": "openai/gpt-4o-mini",
                                                          "prompt": _noise(100_000), "defer": True})
                assert r.status_code == 202, r.text
                ids.append(r.json()["id"])
        filler = fill(small_disk)
    finally:
        running.stop()  # its checkpoint fails on the full disk: the journal stays
    wal = data_dir / "atelier.duckdb.wal"
    assert wal.exists() and wal.stat().st_size > 2**20
    before = {p.name: p.stat().st_size for p in data_dir.glob("atelier.duckdb*")}

    done = _start_process(data_dir)
    assert done.returncode not in (0, None), done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "FatalException" not in done.stderr, done.stderr
    assert "full" in done.stderr and str(small_disk) in done.stderr, done.stderr
    assert "MB" in done.stderr, done.stderr  # how much room it needs
    assert {p.name: p.stat().st_size for p in data_dir.glob("atelier.duckdb*")} == before

    filler.unlink()
    with contextlib.closing(__import__("duckdb").connect(str(data_dir / "atelier.duckdb"))) as con:
        assert con.execute("SELECT count(*) FROM generations").fetchone()[0] == len(ids)


def test_start_on_a_full_disk_says_so_and_exits(small_disk: Path) -> None:
    """A cleanly closed library on a disk with no room left: the app cannot even write runtime.json; it says so
    and exits instead of a traceback."""
    data_dir = small_disk / "atelier"
    start_api(data_dir).stop()
    assert not (data_dir / "atelier.duckdb.wal").exists()
    fill(small_disk)
    before = (data_dir / "atelier.duckdb").read_bytes()

    done = _start_process(data_dir)
    assert done.returncode not in (0, None), done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "full" in done.stderr and str(data_dir) in done.stderr, done.stderr
    assert (data_dir / "atelier.duckdb").read_bytes() == before
    assert not (data_dir / "runtime.json").exists()


@pytest.fixture
def read_only_data_dir(data_dir: Path) -> Iterator[Path]:
    """The data directory of an earlier run, bind-mounted read-only onto itself (EROFS; root included)."""
    start_api(data_dir).stop()
    (data_dir / "logs").mkdir(exist_ok=True)
    (data_dir / "logs" / "atelier.log").write_text("an earlier run\n", encoding="utf-8")
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a read-only bind mount needs root")
    done = subprocess.run(["mount", "--bind", str(data_dir), str(data_dir)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot bind-mount here (needs CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        done = subprocess.run(["mount", "-o", "remount,bind,ro", str(data_dir)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot remount read-only here: {done.stderr.strip()}")
        yield data_dir
    finally:
        subprocess.run(["umount", "-l", str(data_dir)], capture_output=True)


@pytest.fixture
def immutable_logs(data_dir: Path) -> Iterator[Path]:
    """A fresh data directory whose ``logs`` folder is immutable (``chattr +i``: EPERM even for root)."""
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (data_dir / "media").mkdir(exist_ok=True)
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed (needed to make a folder unwritable for root)")
    done = subprocess.run(["chattr", "+i", str(logs)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"this file system does not support the immutable flag: {done.stderr.strip()}")
    try:
        yield logs
    finally:
        subprocess.run(["chattr", "-i", str(logs)], capture_output=True)


def _assert_one_clear_message(done: subprocess.CompletedProcess, where: Path) -> None:
    assert done.returncode in (1, 2), done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert str(where) in lines[0] and "cannot write" in lines[0], lines[0]
    assert "read-only or not writable" in lines[0], lines[0]


def test_read_only_data_dir_at_start_is_one_clear_message(read_only_data_dir: Path) -> None:
    before = sorted(p.name for p in read_only_data_dir.rglob("*"))
    done = _start_process(read_only_data_dir)
    _assert_one_clear_message(done, read_only_data_dir)
    assert "Read-only file system" in done.stderr
    assert sorted(p.name for p in read_only_data_dir.rglob("*")) == before


def test_unwritable_logs_folder_at_start_is_one_clear_message(data_dir: Path, immutable_logs: Path) -> None:
    done = _start_process(data_dir)
    _assert_one_clear_message(done, immutable_logs)
