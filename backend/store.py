"""The DuckDB store: one file per user, opened only by the backend.

DuckDB 2.x refuses concurrent use of one connection, so every call runs on its own ``cursor()`` inside
``asyncio.to_thread`` (the event loop never blocks), and every write goes through one ``asyncio.Lock``
(without it, concurrent UPDATEs fail with "Conflict on update").
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from .migrations import MIGRATIONS

log = logging.getLogger(__name__)
T = TypeVar("T")

_MAGIC_OFFSET = 8
_HEADER_BYTES = 116


class StoreOpenError(Exception):
    """The database file cannot be opened. ``reason`` is newer_version | corrupt | locked | io."""

    def __init__(self, message: str, *, reason: str, path: Path):
        super().__init__(message)
        self.reason = reason
        self.path = path


@dataclass(frozen=True)
class FileHeader:
    storage_version: int
    library_version: str | None


def read_header(path: Path) -> FileHeader | None:
    """Read the DuckDB main header without opening the database. None when the file does not look like DuckDB."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(_HEADER_BYTES)
    except OSError:
        return None
    if len(data) < 20 or data[_MAGIC_OFFSET : _MAGIC_OFFSET + 4] != b"DUCK":
        return None
    (storage_version,) = struct.unpack("<Q", data[12:20])
    library = data[52:84].split(b"\0", 1)[0].decode("ascii", "replace") or None
    return FileHeader(storage_version, library)


_own_storage_version: int | None = None


def library_storage_version() -> int:
    """The storage version this DuckDB library writes (found once by creating a scratch database)."""
    global _own_storage_version
    if _own_storage_version is None:
        with tempfile.TemporaryDirectory() as tmp:
            probe = Path(tmp) / "probe.duckdb"
            duckdb.connect(str(probe)).close()
            header = read_header(probe)
            _own_storage_version = header.storage_version if header else 0
    return _own_storage_version


def _version_tuple(text: str | None) -> tuple[int, ...]:
    if not text:
        return ()
    parts = []
    for piece in text.lstrip("v").split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


class Store:
    """Async access to the per-user DuckDB file. Create with :meth:`open`."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path, *, recovered_from: Path | None = None):
        self._con = con
        self.path = path
        self.recovered_from = recovered_from
        self.write_lock = asyncio.Lock()
        self._closed = False
        self._close_lock = threading.Lock()

    # -- opening -------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: Path, *, backups_dir: Path | None = None, recover_corrupt: bool = True) -> Store:
        """Open (creating and migrating) the database file.

        - A file written by a newer DuckDB storage version is refused and left untouched.
        - A file written by an older DuckDB library is copied to ``backups_dir`` before this one opens it.
        - A file that is not a DuckDB database (truncated, garbled) is moved aside and a fresh one is created;
          ``store.recovered_from`` then names the kept file, so the UI can tell the user.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        backups_dir = backups_dir or path.parent / "backups"
        recovered_from: Path | None = None
        existed = path.exists() and path.stat().st_size > 0
        if existed:
            header = read_header(path)
            if header is None:
                if not recover_corrupt:
                    raise StoreOpenError(f"{path} is not a readable Atelier database.", reason="corrupt", path=path)
                recovered_from = _move_aside(path, "corrupt")
            else:
                ours = duckdb.__version__
                if header.library_version and _version_tuple(header.library_version) > _version_tuple(ours):
                    if header.storage_version > library_storage_version():
                        raise StoreOpenError(
                            f"The library file {path} was written by a newer version of Atelier "
                            f"(DuckDB {header.library_version}). Update Atelier to open it; the file was not changed.",
                            reason="newer_version",
                            path=path,
                        )
                elif header.library_version and _version_tuple(header.library_version) < _version_tuple(ours):
                    _backup(path, backups_dir, f"duckdb-{header.library_version}")
        try:
            con = duckdb.connect(str(path))
        except duckdb.IOException as exc:
            text = str(exc)
            if "lock" in text.lower():
                raise StoreOpenError(
                    f"{path} is in use by another Atelier process.", reason="locked", path=path
                ) from None
            if "permission" in text.lower() or "no space" in text.lower() or not recover_corrupt:
                raise StoreOpenError(f"Cannot open {path}: {text}", reason="io", path=path) from None
            recovered_from = _move_aside(path, "corrupt")  # short reads: a truncated file
            con = duckdb.connect(str(path))
        except (duckdb.SerializationException, duckdb.InternalException, duckdb.CatalogException) as exc:
            if not recover_corrupt:
                raise StoreOpenError(f"{path} is damaged: {exc}", reason="corrupt", path=path) from None
            recovered_from = _move_aside(path, "corrupt")
            con = duckdb.connect(str(path))
        except duckdb.Error as exc:
            # A damaged WAL or data file: keep it aside and start clean rather than crash-looping.
            if not recover_corrupt or "version" in str(exc).lower() and "newer" in str(exc).lower():
                raise StoreOpenError(f"Cannot open {path}: {exc}", reason="corrupt", path=path) from None
            recovered_from = _move_aside(path, "corrupt")
            con = duckdb.connect(str(path))
        if existed and recovered_from is None and not _has_table(con, "schema_migrations"):
            # DuckDB opens some truncated files as an empty database: never migrate over what may be a
            # damaged library. Keep it aside and start clean.
            con.close()
            if not recover_corrupt:
                raise StoreOpenError(f"{path} is damaged (no Atelier tables).", reason="corrupt", path=path)
            recovered_from = _move_aside(path, "corrupt")
            con = duckdb.connect(str(path))
        try:
            migrate(con)
        except Exception:
            con.close()
            raise
        return cls(con, path, recovered_from=recovered_from)

    # -- access ----------------------------------------------------------------------------------------------
    def _cursor(self) -> duckdb.DuckDBPyConnection:
        if self._closed:
            raise RuntimeError("the store is closed")
        return self._con.cursor()

    def _run(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        cur = self._cursor()
        try:
            return fn(cur)
        finally:
            cur.close()

    def _run_tx(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        cur = self._cursor()
        try:
            cur.execute("BEGIN TRANSACTION")
            try:
                result = fn(cur)
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")
            return result
        finally:
            cur.close()

    async def read(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Run ``fn(cursor)`` in a worker thread (reads; no lock)."""
        return await asyncio.to_thread(self._run, fn)

    async def fetchall(self, sql: str, params: Sequence[Any] | dict | None = None) -> list[dict[str, Any]]:
        def run(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
            cur.execute(sql, params or [])
            names = [d[0] for d in cur.description or []]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

        return await self.read(run)

    async def fetchone(self, sql: str, params: Sequence[Any] | dict | None = None) -> dict[str, Any] | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def execute(self, sql: str, params: Sequence[Any] | dict | None = None) -> None:
        """One write statement, autocommitted, under the write lock."""
        async with self.write_lock:
            await asyncio.to_thread(self._run, lambda cur: cur.execute(sql, params or []))

    async def transaction(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Run ``fn(cursor)`` inside BEGIN … COMMIT under the write lock; any exception rolls back."""
        async with self.write_lock:
            return await asyncio.to_thread(self._run_tx, fn)

    def close(self) -> None:
        """CHECKPOINT (so no .wal is left) and close. Safe to call twice and from any thread."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._con.execute("CHECKPOINT")
            except duckdb.Error as exc:  # a full disk must not prevent closing
                log.warning("checkpoint at shutdown failed: %s", exc)
            self._con.close()


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply every migration not yet recorded; return the names applied now."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)"
    )
    done = {row[0] for row in con.execute("SELECT name FROM schema_migrations").fetchall()}
    applied = []
    for name, sql in MIGRATIONS:
        if name in done:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            for statement in _split_sql(sql):
                con.execute(statement)
            con.execute("INSERT INTO schema_migrations VALUES (?, now())", [name])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    row = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]).fetchone()
    return bool(row and row[0])


def _split_sql(sql: str) -> list[str]:
    """Split a migration into statements (our migrations have no semicolons inside literals)."""
    lines = [line.split("--", 1)[0] for line in sql.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def _move_aside(path: Path, why: str) -> Path:
    target = path.with_name(f"{path.name}.{why}-{_stamp()}")
    path.rename(target)
    wal = path.with_name(path.name + ".wal")
    if wal.exists():
        wal.rename(target.with_name(target.name + ".wal"))
    log.error("database file %s could not be read; kept as %s and a new one was started", path, target)
    return target


def _backup(path: Path, backups_dir: Path, label: str) -> Path:
    backups_dir.mkdir(parents=True, exist_ok=True)
    target = backups_dir / f"{path.stem}-{_stamp()}-{label}{path.suffix}"
    shutil.copy2(path, target)
    wal = path.with_name(path.name + ".wal")
    if wal.exists():
        shutil.copy2(wal, target.with_name(target.name + ".wal"))
    log.info("backed up %s to %s before opening it with DuckDB %s", path, target, duckdb.__version__)
    return target
