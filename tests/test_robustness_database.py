"""Damaged and too-new database files at start-up (docs/security.md, "Files and the database").

A damaged library must never crash-loop the app or be silently replaced: the bad file is kept aside, the user is
told through ``/api/v1/status`` ``notices``, and the next start is a normal one. A file written by a newer
DuckDB is refused with a message and left byte-for-byte as it was.
"""

from __future__ import annotations

import hashlib
import os
import random
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import PYTHON, ROOT, start_api, subprocess_env
from tests.test_robustness_crash import AppProcess

BIG_PROMPT = "lorem ipsum dolor sit amet " * 4000  # ~100 KB per row, so the file spans many blocks


def _fill_library(data_dir: Path, rows: int = 12) -> list[str]:
    """Create a library with real rows (deferred generations need no key) and shut down cleanly."""
    running = start_api(data_dir)
    try:
        with running.client() as api:
            ids = []
            for i in range(rows):
                r = api.post("/api/v1/generations", json={"kind": "text", "model": "openai/gpt-4o-mini",
                                                          "prompt": f"{i} {BIG_PROMPT}", "defer": True})
                assert r.status_code == 202, r.text
                ids.append(r.json()["id"])
            assert api.put("/api/v1/settings", json={"theme": "dark"}).status_code == 200
    finally:
        running.stop()
    assert not (data_dir / "atelier.duckdb.wal").exists()
    return ids


def _kept_aside(data_dir: Path) -> list[Path]:
    return sorted(p for p in data_dir.iterdir() if p.name.startswith("atelier.duckdb.corrupt-")
                  and not p.name.endswith(".wal"))


def _garble(data: bytes, start: int, seed: int = 7) -> bytes:
    rng = random.Random(seed)
    out = bytearray(data)
    for i in range(start, len(out)):
        out[i] = rng.randrange(256)
    return bytes(out)


def _assert_recovered_start(data_dir: Path, damaged: bytes, original: list[str] | None = None) -> None:
    """The app starts on a fresh library, says so, and keeps the damaged bytes aside unchanged. With
    ``original``, the rows still readable in the damaged file were saved into the new one (only those)."""
    running = start_api(data_dir)
    try:
        with running.client() as api:
            status = api.get("/api/v1/status")
            assert status.status_code == 200
            notices = status.json()["notices"]
            assert len(notices) == 1 and "kept aside" in notices[0] and "backups" in notices[0]
            kept = _kept_aside(data_dir)
            assert len(kept) == 1 and kept[0].name in notices[0]
            assert kept[0].read_bytes() == damaged
            # The new library works.
            assert api.put("/api/v1/settings", json={"theme": "light"}).status_code == 200
            items = api.get("/api/v1/generations", params={"limit": 100}).json()["items"]
            if original is None:
                assert items == [] and "no row of it could be read back" in notices[0]
            else:
                assert items and {i["id"] for i in items} <= set(original)
                assert f"({len(items)} generations) were saved" in notices[0]
    finally:
        running.stop()
    # The next start is an ordinary one: no new notice, nothing else moved aside, the new data is there.
    running = start_api(data_dir)
    try:
        with running.client() as api:
            assert api.get("/api/v1/status").json()["notices"] == []
            assert api.get("/api/v1/settings").json()["values"]["theme"] == "light"
        assert len(_kept_aside(data_dir)) == 1
    finally:
        running.stop()


def test_garbled_database_real_process_starts_with_notice(data_dir: Path) -> None:
    _fill_library(data_dir)
    db = data_dir / "atelier.duckdb"
    damaged = _garble(db.read_bytes(), 0)
    db.write_bytes(damaged)

    app = AppProcess(data_dir).start()
    try:
        notices = app.api.get("/api/v1/status").json()["notices"]
        assert notices and "could not be read" in notices[0]
        kept = _kept_aside(data_dir)
        assert len(kept) == 1 and kept[0].read_bytes() == damaged
        assert app.api.put("/api/v1/settings", json={"theme": "light"}).status_code == 200
        # The UI shows the notice too (it reads /status).
        import httpx

        with httpx.Client(base_url=app.info["ui_url"]) as ui:
            ui.get("/login", params={"token": app.info["token"]})
            page = ui.get("/")
            assert page.status_code == 200 and kept[0].name in page.text
    finally:
        assert app.stop() == 0
    app = AppProcess(data_dir).start()  # no crash loop: the second start is a normal one
    try:
        assert app.api.get("/api/v1/status").json()["notices"] == []
        assert app.api.get("/api/v1/settings").json()["values"]["theme"] == "light"
        assert len(_kept_aside(data_dir)) == 1
    finally:
        assert app.stop() == 0


@pytest.mark.parametrize("cut", ["empty-header", "first-block"])
def test_truncated_database_is_kept_aside(data_dir: Path, cut: str) -> None:
    _fill_library(data_dir)
    db = data_dir / "atelier.duckdb"
    data = db.read_bytes()
    damaged = data[:100] if cut == "empty-header" else data[:5000]
    db.write_bytes(damaged)
    _assert_recovered_start(data_dir, damaged)


def test_database_truncated_midway_is_kept_aside_and_its_readable_rows_saved(data_dir: Path) -> None:
    ids = _fill_library(data_dir)
    db = data_dir / "atelier.duckdb"
    data = db.read_bytes()
    damaged = data[: len(data) // 2]
    db.write_bytes(damaged)
    _assert_recovered_start(data_dir, damaged, ids)


def _leave_wal(data_dir: Path) -> bytes:
    """Commit writes and die without a checkpoint, like a kill -9, so a real WAL is left behind."""
    db = data_dir / "atelier.duckdb"
    script = textwrap.dedent(f"""
        import os, duckdb
        con = duckdb.connect({str(db)!r})
        con.execute("SET wal_autocheckpoint = '1GB'")
        for i in range(200):
            con.execute("INSERT OR REPLACE INTO preferences VALUES (?, '1', now())", [f"wal_{{i}}"])
        os._exit(0)
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    wal = data_dir / "atelier.duckdb.wal"
    assert wal.exists() and wal.stat().st_size > 1000
    return wal.read_bytes()


def test_wal_with_flipped_bytes_is_kept_aside(data_dir: Path) -> None:
    """A damaged journal costs at most the changes in it: the database itself stays in place."""
    _fill_library(data_dir, rows=2)
    wal_bytes = _leave_wal(data_dir)
    middle = len(wal_bytes) // 2
    damaged_wal = wal_bytes[:middle] + bytes(b ^ 0xFF for b in wal_bytes[middle:middle + 64]) + \
        wal_bytes[middle + 64:]
    (data_dir / "atelier.duckdb.wal").write_bytes(damaged_wal)
    running = start_api(data_dir)
    try:
        with running.client() as api:
            notices = api.get("/api/v1/status").json()["notices"]
            # Either DuckDB replays the whole transactions before the damage (no notice needed) or the journal
            # is kept aside with a notice; the library itself is never thrown away.
            kept_journals = list(data_dir.glob("atelier.duckdb.journal-*.wal"))
            if kept_journals:
                assert notices and "journal" in notices[0]
                assert kept_journals[0].read_bytes() == damaged_wal
            assert api.get("/api/v1/settings").json()["values"]["theme"] == "dark"
            assert len(api.get("/api/v1/generations").json()["items"]) == 2
    finally:
        running.stop()
    assert _kept_aside(data_dir) == []


def test_wal_torn_at_the_tail_replays_what_is_whole(data_dir: Path) -> None:
    """A WAL cut short (the crash itself) is normal: whole transactions replay, no notice, nothing moved."""
    _fill_library(data_dir, rows=2)
    wal_bytes = _leave_wal(data_dir)
    (data_dir / "atelier.duckdb.wal").write_bytes(wal_bytes[: len(wal_bytes) // 2])
    running = start_api(data_dir)
    try:
        with running.client() as api:
            assert api.get("/api/v1/status").json()["notices"] == []
            assert api.get("/api/v1/settings").json()["values"]["theme"] == "dark"
            assert len(api.get("/api/v1/generations").json()["items"]) == 2
    finally:
        running.stop()
    assert _kept_aside(data_dir) == []


def test_wal_of_random_bytes_is_reported(data_dir: Path) -> None:
    _fill_library(data_dir, rows=2)
    wal_bytes = _leave_wal(data_dir)
    garbage = random.Random(3).randbytes(len(wal_bytes))
    (data_dir / "atelier.duckdb.wal").write_bytes(garbage)
    running = start_api(data_dir)
    try:
        with running.client() as api:
            notices = api.get("/api/v1/status").json()["notices"]
            assert notices and "journal" in notices[0]
            assert len(api.get("/api/v1/generations").json()["items"]) == 2
    finally:
        running.stop()
    kept = list(data_dir.glob("atelier.duckdb.journal-*.wal"))
    assert len(kept) == 1 and kept[0].read_bytes() == garbage
    assert not (data_dir / "atelier.duckdb.wal").exists()


def test_newer_database_is_refused_and_untouched(data_dir: Path) -> None:
    _fill_library(data_dir, rows=1)
    db = data_dir / "atelier.duckdb"
    data = bytearray(db.read_bytes())
    assert data[8:12] == b"DUCK"
    data[12:20] = struct.pack("<Q", 2**40)
    data[52:84] = b"v99.0.0".ljust(32, b"\0")
    db.write_bytes(bytes(data))
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    mtime = os.stat(db).st_mtime_ns

    result = subprocess.run([PYTHON, "-m", "desktop", "--no-window"], cwd=ROOT, env=subprocess_env(data_dir),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "newer version" in result.stderr and "v99.0.0" in result.stderr
    assert "Traceback" not in result.stderr
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before and os.stat(db).st_mtime_ns == mtime
    assert sorted(p.name for p in data_dir.iterdir() if p.name.startswith("atelier.duckdb")) == ["atelier.duckdb"]
    assert not (data_dir / "runtime.json").exists()
    assert not (data_dir / "backups").exists() or not any((data_dir / "backups").iterdir())
