"""The DuckDB store: serialized writes, transactions, version checks, recovery, clean close."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from backend.db.store import Store, StoreOpenError, read_header


def run(coro):
    return asyncio.run(coro)


def test_concurrent_writes_all_succeed(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "a.duckdb")

    async def main() -> int:
        await store.execute("INSERT INTO meta VALUES ('counter', '0')")

        async def bump(i: int) -> None:
            await store.execute(
                "UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS VARCHAR) WHERE key = 'counter'"
            )
            await store.execute("INSERT INTO meta VALUES (?, ?)", [f"k{i}", str(i)])

        await asyncio.gather(*(bump(i) for i in range(200)))
        row = await store.fetchone("SELECT value FROM meta WHERE key = 'counter'")
        count = await store.fetchone("SELECT count(*) AS n FROM meta")
        assert count["n"] == 201
        return int(row["value"])

    assert run(main()) == 200
    store.close()


def test_transaction_rolls_back_on_failure(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "a.duckdb")

    def two_writes(cur) -> None:
        cur.execute("INSERT INTO meta VALUES ('a', '1')")
        cur.execute("INSERT INTO meta VALUES ('a', '2')")  # primary key violation midway

    async def main() -> None:
        with pytest.raises(duckdb.ConstraintException):
            await store.transaction(two_writes)
        assert await store.fetchall("SELECT * FROM meta") == []

    run(main())
    store.close()


def test_close_checkpoints_and_leaves_no_wal(tmp_path: Path) -> None:
    path = tmp_path / "a.duckdb"
    store = Store.open(path)
    run(store.execute("INSERT INTO meta VALUES ('x', 'y')"))
    store.close()
    store.close()  # idempotent
    assert not path.with_name(path.name + ".wal").exists()
    reopened = Store.open(path)
    assert run(reopened.fetchone("SELECT value FROM meta WHERE key = 'x'")) == {"value": "y"}
    reopened.close()


def test_file_from_a_newer_duckdb_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "a.duckdb"
    Store.open(path).close()
    data = bytearray(path.read_bytes())
    data[12:20] = (10_000).to_bytes(8, "little")
    data[52:84] = b"v99.0.0".ljust(32, b"\0")
    path.write_bytes(bytes(data))
    with pytest.raises(StoreOpenError) as info:
        Store.open(path)
    assert info.value.reason == "newer_version"
    assert "newer version of Atelier" in str(info.value)
    assert path.read_bytes() == bytes(data)


def test_garbled_file_is_kept_aside_and_a_fresh_library_started(tmp_path: Path) -> None:
    path = tmp_path / "a.duckdb"
    path.write_bytes(b"this is not a database" * 100)
    store = Store.open(path)
    assert store.recovered_from is not None and store.recovered_from.exists()
    assert store.recovered_from.read_bytes() == b"this is not a database" * 100
    assert run(store.fetchall("SELECT * FROM generations")) == []
    store.close()


def test_truncated_file_is_kept_aside_not_migrated_over(tmp_path: Path) -> None:
    path = tmp_path / "a.duckdb"
    store = Store.open(path)
    run(store.execute("INSERT INTO meta VALUES ('x', 'y')"))
    store.close()
    original = path.read_bytes()
    path.write_bytes(original[:3000])
    store = Store.open(path)
    assert store.recovered_from is not None
    assert store.recovered_from.read_bytes() == original[:3000]
    store.close()


def test_corrupted_block_is_kept_aside(tmp_path: Path) -> None:
    path = tmp_path / "a.duckdb"
    Store.open(path).close()
    data = bytearray(path.read_bytes())
    data[100:200] = b"\xff" * 100  # inside the checksummed main header
    path.write_bytes(bytes(data))
    store = Store.open(path)
    assert store.recovered_from is not None
    store.close()


@pytest.fixture(scope="session")
def old_duckdb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DuckDB 1.4 installed into a private folder, to write a file the way an older Atelier did."""
    target = tmp_path_factory.mktemp("duckdb14")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), "duckdb==1.4.1"],
        capture_output=True, text=True, timeout=300,
    )
    if result.returncode != 0:
        pytest.skip(f"duckdb 1.4.1 could not be installed: {result.stderr[-300:]}")
    return target


def test_older_file_is_backed_up_before_a_newer_duckdb_opens_it(tmp_path: Path, old_duckdb: Path) -> None:
    path = tmp_path / "a.duckdb"
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import duckdb; "
        "con = duckdb.connect(sys.argv[2]); con.execute(\"CREATE TABLE keepme (v VARCHAR)\"); "
        "con.execute(\"CREATE TABLE schema_migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)\"); "
        "con.execute(\"INSERT INTO keepme VALUES ('from 1.4')\"); con.close()"
    )
    subprocess.run([sys.executable, "-c", script, str(old_duckdb), str(path)], check=True, timeout=60,
                   env={"PATH": "/usr/bin:/bin"})
    header = read_header(path)
    assert header is not None and header.library_version.startswith("v1.4")
    before = path.read_bytes()
    backups = tmp_path / "backups"
    store = Store.open(path, backups_dir=backups)
    copies = list(backups.glob("a-*-duckdb-v1.4.1.duckdb"))
    assert len(copies) == 1 and copies[0].read_bytes() == before
    assert run(store.fetchall("SELECT v FROM keepme")) == [{"v": "from 1.4"}]
    store.close()
    shutil.rmtree(backups)


def test_second_process_cannot_open_while_first_holds_it(tmp_path: Path) -> None:
    path = tmp_path / "a.duckdb"
    store = Store.open(path)
    script = (
        "import sys; from pathlib import Path; from backend.db.store import Store, StoreOpenError\n"
        "try:\n    Store.open(Path(sys.argv[1]))\nexcept StoreOpenError as e:\n    print(e.reason)\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.strip() == "locked"
    store.close()


def test_a_backup_the_disk_refuses_stops_the_open_clearly_and_leaves_no_half_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before a newer DuckDB opens an older file it is copied; a full disk refuses the copy: a clear
    ``disk_full`` error (how much room), the file untouched, no partial copy posing as a backup."""
    import errno

    from backend.db import library_file as store_module

    path = tmp_path / "a.duckdb"
    Store.open(path).close()
    real_header = store_module.read_header

    def older(p: Path):
        header = real_header(p)
        return header and store_module.FileHeader(header.storage_version, "v1.4.1")

    def copy_until_full(src, dst, **_):
        Path(dst).write_bytes(b"half a copy")
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(store_module, "read_header", older)
    monkeypatch.setattr(store_module.shutil, "copy2", copy_until_full)
    before = path.read_bytes()
    backups = tmp_path / "backups"
    with pytest.raises(StoreOpenError) as info:
        Store.open(path, backups_dir=backups)
    assert info.value.reason == "disk_full"
    assert "full" in str(info.value) and "MB" in str(info.value) and str(backups) in str(info.value)
    assert path.read_bytes() == before
    assert list(backups.iterdir()) == []


def test_replacing_the_file_while_a_read_is_out_serves_the_new_file(tmp_path: Path) -> None:
    """A read in flight when a restore replaces the file ends normally (closing the connection under it would fail
    it with "connection already closed"), and the reads after the replacement see the new file."""
    import threading

    store = Store.open(tmp_path / "a.duckdb")
    replacement = tmp_path / "b.duckdb"
    other = Store.open(replacement)
    run(other.execute("INSERT INTO meta VALUES ('which', 'new')"))
    other.close()
    reading, release = threading.Event(), threading.Event()

    def slow_read(cur) -> str:
        cur.execute("SELECT count(*) FROM meta").fetchall()
        reading.set()
        release.wait(10)
        return "done"

    async def main() -> str | None:
        await store.execute("INSERT INTO meta VALUES ('which', 'old')")
        read = asyncio.create_task(store.read(slow_read))
        await asyncio.to_thread(reading.wait, 10)
        replaced = asyncio.create_task(store.replace_file(replacement, aside_label="replaced"))
        await asyncio.sleep(0.2)
        assert not replaced.done(), "the file was replaced while a read still held a cursor"
        release.set()
        assert await read == "done"
        await replaced
        row = await store.fetchone("SELECT value FROM meta WHERE key = 'which'")
        return row["value"] if row else None

    try:
        assert run(main()) == "new"
    finally:
        release.set()
        store.close()
