"""A damaged library is salvaged into the new file before it is set aside: every row that can be read is kept.

Real DuckDB files, cut or garbled at several points; the file kept aside is never changed. What DuckDB 2.0 can
read of a damaged file: nothing when its catalog is gone (a cut in the first blocks, a garbled header); otherwise
every column segment that is whole, so rows are lost a segment at a time. A journal (``.wal``) garbled in the middle
is replayed up to the bad entry: the changes before it are kept, those after it are lost (as with a torn tail).
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from backend.db import generations as gens
from backend.db import listing
from backend.db.store import Store
from tests.conftest import start_api

ROWS = 120


def _library(path: Path) -> dict[str, str]:
    """A library whose rows span many blocks (incompressible prompts), closed cleanly; returns id → prompt."""
    rnd = random.Random(5)

    async def go() -> dict[str, str]:
        store = Store.open(path)
        try:
            out = {}
            for i in range(ROWS):
                prompt = f"row {i} " + "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(12_000))
                row = await gens.insert(store, kind="text", model="openai/gpt-4o-mini", prompt=prompt, system=None,
                                        params={}, input_asset_ids=[], stream=False, tags=["t"])
                out[row["id"]] = prompt
            await store.execute("INSERT INTO preferences VALUES ('theme', '\"dark\"', now())")
            return out
        finally:
            store.close()

    return asyncio.run(go())


def _readable_rows(path: Path) -> int:
    """Rows of ``generations`` DuckDB can read from ``path`` one by one (an independent count)."""
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:
        return 0
    try:
        total = con.execute("SELECT count(*) FROM generations").fetchone()[0]
    except duckdb.Error:
        con.close()
        return 0
    n = 0
    for i in range(total):
        try:
            con.execute("SELECT * FROM generations WHERE rowid = ?", [i]).fetchall()
            n += 1
        except duckdb.Error:
            pass
    con.close()
    return n


@pytest.mark.parametrize("fraction", [0.02, 0.3, 0.5, 0.8, 0.97])
def test_a_truncated_file_keeps_its_readable_rows(tmp_path: Path, fraction: float) -> None:
    db = tmp_path / "atelier.duckdb"
    original = _library(db)
    data = db.read_bytes()
    damaged = data[: int(len(data) * fraction)]
    db.write_bytes(damaged)
    probe = tmp_path / "probe.duckdb"
    probe.write_bytes(damaged)
    readable = _readable_rows(probe)

    async def go() -> tuple[dict[str, str], list[str]]:
        store = Store.open(db)
        try:
            if store.recovered_from is None:
                # The cut took only blocks nothing used any more: the file opens as it is, whole.
                assert readable == ROWS
            else:
                assert store.recovered_from.read_bytes() == damaged
            rows = await store.fetchall("SELECT id, prompt FROM generations")
            found = await listing.search(store, q="row 1", limit=500)
            return {r["id"]: r["prompt"] for r in rows}, [i["id"] for i in found[0]]
        finally:
            store.close()

    kept, searched = asyncio.run(go())
    assert len(kept) == readable
    assert all(original[gen_id] == prompt for gen_id, prompt in kept.items()), "only whole, unchanged rows"
    assert set(searched) == {g for g, p in kept.items() if p.startswith("row 1")}, "the index covers them"
    if fraction >= 0.8:
        assert readable == ROWS, "a cut near the end loses nothing DuckDB had written before it"


def test_the_notice_counts_the_saved_rows_and_offers_the_newest_backup(data_dir: Path) -> None:
    running = start_api(data_dir)
    try:
        with running.client() as api:
            for i in range(3):
                assert api.post("/api/v1/generations", json={"kind": "text", "model": "openai/gpt-4o-mini",
                                                             "prompt": f"p{i}", "defer": True}).status_code == 202
            backup = api.post("/api/v1/backups").json()
    finally:
        running.stop()
    db = data_dir / "atelier.duckdb"
    data = bytearray(db.read_bytes())
    data[4096 * 3:4096 * 3 + 16] = bytes(16)  # a garbled block after the header
    for offset in range(0, 4096 * 3):
        data[offset] ^= 0x5A  # and the header itself, so the file no longer opens
    db.write_bytes(bytes(data))
    running = start_api(data_dir)
    try:
        with running.client() as api:
            notices = api.get("/api/v1/status").json()["notices"]
            assert len(notices) == 1
            assert "kept aside" in notices[0] and backup["id"] in notices[0] and "atelier restore" in notices[0]
            assert "no row of it could be read back" in notices[0]
    finally:
        running.stop()


def test_a_journal_garbled_in_the_middle_keeps_the_changes_before_it(data_dir: Path) -> None:
    db = data_dir / "atelier.duckdb"
    data_dir.mkdir(parents=True, exist_ok=True)
    Store.open(db).close()
    script = textwrap.dedent(f"""
        import os, duckdb
        con = duckdb.connect({str(db)!r})
        con.execute("SET wal_autocheckpoint = '1GB'")
        for i in range(100):
            con.execute("INSERT INTO meta VALUES (?, '1')", [f"k{{i:03d}}"])
        os._exit(0)
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    wal = data_dir / "atelier.duckdb.wal"
    raw = wal.read_bytes()
    middle = len(raw) // 2
    wal.write_bytes(raw[:middle] + bytes(b ^ 0xFF for b in raw[middle:middle + 64]) + raw[middle + 64:])

    async def go() -> list[str]:
        store = Store.open(db)
        try:
            assert store.recovered_from is None
            return [r["key"] for r in await store.fetchall("SELECT key FROM meta WHERE key LIKE 'k%' ORDER BY key")]
        finally:
            store.close()

    keys = asyncio.run(go())
    # Every transaction before the bad entry, in order, and none after it.
    assert 30 < len(keys) < 100 and keys == [f"k{i:03d}" for i in range(len(keys))]
    assert not os.path.exists(wal) or wal.stat().st_size == 0
