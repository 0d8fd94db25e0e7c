"""The DuckDB store: one file per user, opened only by the backend.

DuckDB 2.x refuses concurrent use of one connection, so every call runs on its own ``cursor()`` inside
``asyncio.to_thread`` (the event loop never blocks), and every write goes through one ``asyncio.Lock``
(without it, concurrent UPDATEs fail with "Conflict on update").

When a checkpoint cannot be written (a full disk), DuckDB "invalidates" the database: every later call on
that connection fails, reads included, until the file is opened again. The store notices, and on the next
call (under the write lock) closes the connection and opens the file again; the journal holds every
committed write, so nothing acknowledged is lost and the app carries on without a restart once space is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import shutil
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from backend.core.files import is_storage_failure
from backend.db.migrations import MIGRATIONS

log = logging.getLogger(__name__)
T = TypeVar("T")

_MAGIC_OFFSET = 8
_HEADER_BYTES = 116


class StoreOpenError(Exception):
    """The database file cannot be opened. ``reason`` is newer_version | corrupt | locked | io | disk_full."""

    def __init__(self, message: str, *, reason: str, path: Path):
        super().__init__(message)
        self.reason = reason
        self.path = path

    @property
    def is_storage_failure(self) -> bool:
        return self.reason in ("io", "disk_full")


def is_invalidated(exc: BaseException) -> bool:
    """True when DuckDB has given up on the open database (after a failed checkpoint, for instance)."""
    if isinstance(exc, duckdb.FatalException):
        return True
    return isinstance(exc, duckdb.Error) and "database has been invalidated" in str(exc).lower()


def commit_was_durable(exc: BaseException) -> bool:
    """True when DuckDB reports that the COMMIT itself succeeded and only the checkpoint after it failed."""
    return isinstance(exc, duckdb.Error) and "commit succeeded and is durable" in str(exc).lower()


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


def is_truncated(path: Path) -> bool:
    """Whether the file is shorter than its active database header says (a cut file may still open, with the
    cut-off blocks failing only when read). DuckDB 2.x: two database headers at 4 KiB and 8 KiB, each
    ``checksum, iteration, meta_block, free_list, block_count, block_alloc_size``; blocks start at 12 KiB."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(3 * 4096)
        size = path.stat().st_size
    except OSError:
        return False
    if len(data) < 3 * 4096:
        return True
    headers = [struct.unpack_from("<QQqqQQ", data, offset) for offset in (4096, 8192)]
    _, _, _, _, blocks, block_size = max(headers, key=lambda h: h[1])  # the newer iteration is the active one
    if not (4096 <= block_size <= 1 << 24 and block_size & (block_size - 1) == 0 and blocks < 1 << 40):
        return False  # not a layout this check knows: let DuckDB decide
    return size < 3 * 4096 + blocks * block_size


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
        self.salvaged: Any = None  # what was copied from ``recovered_from`` (backend/db/salvage.py)
        self.wal_kept: Path | None = None
        self.write_lock = asyncio.Lock()
        self._closed = False
        self._close_lock = threading.Lock()
        # Closing the connection fails every cursor still out ("connection already closed"): replacing or
        # reopening the file waits until the reads and transactions in flight have given theirs back.
        self._cursors = threading.Condition()
        self._open_cursors = 0
        self._swapping = False
        # The error that invalidated the connection; the next call opens the file again.
        self._invalidated: BaseException | None = None
        self.reopened = 0

    # -- opening -------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: Path, *, backups_dir: Path | None = None, recover_corrupt: bool = True) -> Store:
        """Open (creating and migrating) the database file.

        - A file written by a newer DuckDB storage version is refused and left untouched.
        - A file written by an older DuckDB library is copied to ``backups_dir`` before this one opens it.
        - A damaged journal (``.wal``) is kept aside and the database opened without it (``store.wal_kept``).
        - A damaged database (garbled, truncated) is kept aside with its journal and a fresh one is created
          (``store.recovered_from``), holding every row that could still be read from the damaged one
          (``store.salvaged``, see backend/db/salvage.py). Either way the UI tells the user; nothing is deleted.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        backups_dir = backups_dir or path.parent / "backups"
        existed = path.exists() and path.stat().st_size > 0
        if existed:
            _check_version(path, backups_dir)
        recovered_from: Path | None = None
        wal_kept: Path | None = None
        if existed and read_header(path) is None:
            recovered_from = _refuse_or_move(path, recover_corrupt, "is not a readable Atelier database")
            existed = False
        elif existed and is_truncated(path):
            recovered_from = _refuse_or_move(path, recover_corrupt, "is shorter than it should be (cut off)")
            existed = False
        try:
            con = _connect(path, existed)
        except _Damaged as exc:
            if _wal_path(path).exists() and recover_corrupt:
                # The journal may be what is damaged: keep it aside and try the database alone.
                wal_kept = _move_wal_aside(path)
                try:
                    con = _connect(path, existed)
                except _Damaged as again:
                    recovered_from = _refuse_or_move(path, recover_corrupt, f"is damaged ({again})")
                    con = _connect(path, False)
            else:
                recovered_from = _refuse_or_move(path, recover_corrupt, f"is damaged ({exc})")
                con = _connect(path, False)
        if existed and recovered_from is None and _wal_path(path).exists():
            # DuckDB silently skips a journal it cannot read and leaves it in place; a checkpoint folds a good
            # journal into the file, so one still there afterwards was not read back.
            try:
                con.execute("CHECKPOINT")
            except duckdb.Error as exc:
                with contextlib.suppress(duckdb.Error):
                    con.close()
                if is_storage_failure(exc):
                    raise _cannot_write(path, exc) from None
                raise
            if _wal_path(path).exists() and _wal_path(path).stat().st_size > 0:
                con.close()
                wal_kept = _move_wal_aside(path)
                con = _connect(path, existed)
        salvaged = None
        if recovered_from is not None:
            from backend.db.salvage import salvage

            salvaged = salvage(con, recovered_from)  # read-only: the file kept aside stays byte for byte
        store = cls(con, path, recovered_from=recovered_from)
        store.salvaged = salvaged
        store.wal_kept = wal_kept
        return store

    # -- access ----------------------------------------------------------------------------------------------
    def _cursor(self) -> duckdb.DuckDBPyConnection:
        if self._closed:
            raise RuntimeError("the store is closed")
        return self._con.cursor()

    def _note_invalidated(self, exc: BaseException) -> None:
        if self._invalidated is None and (is_invalidated(exc) or commit_was_durable(exc)):
            self._invalidated = exc
            log.error("the database was invalidated; it is opened again on the next call: %s", exc)

    @contextlib.contextmanager
    def _borrowed(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor for one call, counted so that :meth:`_no_cursors` can wait for it to be given back."""
        with self._cursors:
            while self._swapping:
                self._cursors.wait()
            cur = self._cursor()
            self._open_cursors += 1
        try:
            yield cur
        finally:
            with contextlib.suppress(duckdb.Error):
                cur.close()
            with self._cursors:
                self._open_cursors -= 1
                self._cursors.notify_all()

    @contextlib.contextmanager
    def _no_cursors(self, timeout: float = 30.0) -> Iterator[None]:
        """Hold new cursors back and wait (at most ``timeout``) until every cursor out has been given back."""
        deadline = time.monotonic() + timeout
        with self._cursors:
            self._swapping = True
            while self._open_cursors and (left := deadline - time.monotonic()) > 0:
                self._cursors.wait(left)
            if self._open_cursors:
                log.warning("%d database cursors still open after %.0f s; going on", self._open_cursors, timeout)
        try:
            yield
        finally:
            with self._cursors:
                self._swapping = False
                self._cursors.notify_all()

    def _run(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        with self._borrowed() as cur:
            try:
                return fn(cur)
            except duckdb.Error as exc:
                self._note_invalidated(exc)
                raise

    def _run_write(self, sql: str, params: Sequence[Any] | dict) -> None:
        try:
            self._run(lambda cur: cur.execute(sql, params))
        except duckdb.Error as exc:
            if not commit_was_durable(exc):
                raise
            # The row is in the journal: acknowledge it; the store reopens the file on the next call.

    def _run_tx(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        with self._borrowed() as cur:
            try:
                cur.execute("BEGIN TRANSACTION")
            except duckdb.Error as exc:
                self._note_invalidated(exc)
                raise
            try:
                result = fn(cur)
            except BaseException as exc:
                if isinstance(exc, duckdb.Error):
                    self._note_invalidated(exc)
                # An invalidated database refuses the ROLLBACK too; the transaction is gone with it.
                with contextlib.suppress(duckdb.Error):
                    cur.execute("ROLLBACK")
                raise
            try:
                cur.execute("COMMIT")
            except duckdb.Error as exc:
                self._note_invalidated(exc)
                if not commit_was_durable(exc):
                    raise
            return result

    def _reopen(self) -> None:
        """Close the invalidated connection and open the file again (runs under the write lock).

        Raises the error that invalidated the database when the file cannot be opened yet (the disk is still
        full); the next call tries again.
        """
        with self._close_lock:
            if self._closed:
                raise RuntimeError("the store is closed")
            cause = self._invalidated
            if cause is None:
                return
            with self._no_cursors():
                self._reopen_now(cause)

    def _reopen_now(self, cause: BaseException) -> None:
        """:meth:`_reopen` once no cursor is out."""
        with contextlib.suppress(duckdb.Error):
            self._con.close()
        try:
            con = _connect(self.path, True)
        except (StoreOpenError, _Damaged) as exc:
            log.warning("the database cannot be opened again yet: %s", exc)
            raise cause from None
        try:
            # A cursor still open elsewhere keeps the old (invalid) instance alive: check that this one works.
            con.execute("SELECT 1").fetchall()
        except duckdb.Error:
            con.close()
            raise cause from None
        self._con = con
        self._invalidated = None
        self.reopened += 1
        log.warning("the database was opened again after: %s", cause)

    async def _recover(self) -> None:
        """Reopen an invalidated database. The caller holds the write lock."""
        if self._invalidated is not None:
            await asyncio.to_thread(self._reopen)

    async def read(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Run ``fn(cursor)`` in a worker thread (reads; no lock, unless the database must be opened again).

        A read that meets a database invalidated meanwhile is run once more on the reopened file.
        """
        for attempt in (1, 2):
            if self._invalidated is not None:
                async with self.write_lock:
                    await self._recover()
            reopened = self.reopened
            try:
                return await asyncio.to_thread(self._run, fn)
            except duckdb.Error:
                if attempt == 2 or (self._invalidated is None and self.reopened == reopened):
                    raise
        raise AssertionError("unreachable")

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
            await self._recover()
            await asyncio.to_thread(self._run_write, sql, params or [])

    async def transaction(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Run ``fn(cursor)`` inside BEGIN … COMMIT under the write lock; any exception rolls back."""
        async with self.write_lock:
            await self._recover()
            return await asyncio.to_thread(self._run_tx, fn)

    async def replace_file(self, new_file: Path, *, aside_label: str) -> Path:
        """Put ``new_file`` (a complete, checkpointed database) in place of the library's file and carry on with
        it. The current file is checkpointed, closed and kept beside it as ``<name>.<aside_label>-<stamp>``
        (returned); if the new file cannot be opened, the current one is put back and the error raised."""
        async with self.write_lock:
            return await asyncio.to_thread(self._replace_file, new_file, aside_label)

    def _replace_file(self, new_file: Path, aside_label: str) -> Path:
        with self._close_lock:
            if self._closed:
                raise RuntimeError("the store is closed")
            with self._no_cursors():
                return self._replace_file_now(new_file, aside_label)

    def _replace_file_now(self, new_file: Path, aside_label: str) -> Path:
        """:meth:`_replace_file` once no cursor is out."""
        if self._invalidated is None:
            with contextlib.suppress(duckdb.Error):
                self._con.execute("CHECKPOINT")
        with contextlib.suppress(duckdb.Error):
            self._con.close()
        aside = self.path.with_name(f"{self.path.name}.{aside_label}-{_stamp()}")
        os.replace(self.path, aside)
        if _wal_path(self.path).exists():
            os.replace(_wal_path(self.path), aside.with_name(aside.name + ".wal"))
        try:
            os.replace(new_file, self.path)
            self._con = _connect(self.path, True)
        except BaseException:
            with contextlib.suppress(OSError):
                os.replace(self.path, new_file)
            os.replace(aside, self.path)
            if aside.with_name(aside.name + ".wal").exists():
                os.replace(aside.with_name(aside.name + ".wal"), _wal_path(self.path))
            self._con = _connect(self.path, True)
            raise
        self._invalidated = None
        log.warning("the library was replaced by %s; the previous file is kept as %s", new_file.name, aside)
        return aside

    def close(self) -> None:
        """CHECKPOINT (so no .wal is left) and close. Safe to call twice and from any thread."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            if self._invalidated is None:
                try:
                    self._con.execute("CHECKPOINT")
                except duckdb.Error as exc:  # a full disk must not prevent closing; the journal keeps the rest
                    log.warning("checkpoint at shutdown failed: %s", exc)
            with contextlib.suppress(duckdb.Error):
                self._con.close()


class _Damaged(Exception):
    """The file (or its journal) cannot be read back."""


def _wal_path(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


def _check_version(path: Path, backups_dir: Path) -> None:
    header = read_header(path)
    if header is None or not header.library_version:
        return
    ours = duckdb.__version__
    theirs = _version_tuple(header.library_version)
    if theirs > _version_tuple(ours) and header.storage_version > library_storage_version():
        raise StoreOpenError(
            f"The library file {path} was written by a newer version of Atelier (DuckDB "
            f"{header.library_version}). Update Atelier to open it; the file was not changed.",
            reason="newer_version",
            path=path,
        )
    if theirs < _version_tuple(ours):
        try:
            _backup(path, backups_dir, f"duckdb-{header.library_version}")
        except OSError as exc:
            if not is_storage_failure(exc):
                raise
            # No backup, no upgrade: the file stays as it is until there is room for the copy.
            raise _cannot_write(backups_dir / path.name, exc, need=_file_bytes(path) + _file_bytes(_wal_path(path)),
                                why="to back up the library before this version of Atelier opens it") from None


def _connect(path: Path, existed: bool) -> duckdb.DuckDBPyConnection:
    """Connect and migrate. Raises ``_Damaged`` for unreadable content, ``StoreOpenError`` for lock and I/O."""
    try:
        con = duckdb.connect(str(path))
    except duckdb.IOException as exc:
        text = str(exc).lower()
        if "lock" in text:
            raise StoreOpenError(f"{path} is in use by another Atelier process.", reason="locked",
                                 path=path) from None
        if "permission" in text or "no space" in text or "read-only" in text or "quota" in text:
            raise _cannot_write(path, exc) from None
        raise _Damaged(str(exc)) from None  # short reads: a truncated file
    except duckdb.Error as exc:
        raise _Damaged(str(exc)) from None
    try:
        if existed and not _has_table(con, "schema_migrations"):
            # DuckDB opens some truncated files as an empty database: never migrate over what may be a
            # damaged library.
            raise _Damaged("no Atelier tables")
        migrate(con)
    except _Damaged:
        con.close()
        raise
    except duckdb.IOException as exc:
        con.close()
        text = str(exc).lower()
        if "no space" in text or "permission" in text or "read-only" in text or "quota" in text:
            raise _cannot_write(path, exc) from None
        raise _Damaged(str(exc)) from None
    except duckdb.Error as exc:
        with contextlib.suppress(duckdb.Error):
            con.close()
        if is_storage_failure(exc):  # a migration's commit or checkpoint refused by the disk
            raise _cannot_write(path, exc) from None
        if isinstance(exc, (duckdb.SerializationException, duckdb.InternalException, duckdb.CatalogException,
                            duckdb.InvalidInputException)):
            raise _Damaged(str(exc)) from None
        raise
    return con


_MB = 1_000_000
# Room asked for on top of the journal: the checkpoint's metadata, the log file, runtime.json.
_HEADROOM = 8 * 2**20


def _file_bytes(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _cannot_write(path: Path, exc: BaseException, *, need: int | None = None,
                  why: str | None = None) -> StoreOpenError:
    """The error for a database the disk will not let us write: full (with how much room is needed), or
    read-only / not permitted. ``need`` defaults to the journal that opening has to fold into the file."""
    text = str(exc).lower()
    folder = path.parent
    if isinstance(exc, OSError):
        full = exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
    else:
        refused = "read-only" in text or "permission" in text
        full = not refused and ("no space" in text or "quota" in text or isinstance(exc, duckdb.FatalException))
    if full:
        try:
            free = shutil.disk_usage(folder).free
        except OSError:
            free = 0
        if need is None:
            need = _file_bytes(_wal_path(path))
        more = max(need + _HEADROOM - free, _HEADROOM)
        return StoreOpenError(
            f"The disk holding the Atelier library ({folder}) is full: Atelier needs about "
            f"{-(-more // _MB)} MB more free space there {why or f'to open {path.name}'} ({free // _MB} MB free "
            "now). Free some space and start Atelier again; nothing saved was lost.",
            reason="disk_full",
            path=path,
        )
    return StoreOpenError(
        f"Atelier cannot write its library {path}: the folder {folder} is read-only or not writable by this "
        f"user ({exc}). Make it writable, or choose another data folder with ATELIER_DATA_DIR or --data-dir.",
        reason="io",
        path=path,
    )


def _refuse_or_move(path: Path, recover: bool, why: str) -> Path:
    if not recover:
        raise StoreOpenError(f"{path} {why}.", reason="corrupt", path=path)
    return _move_aside(path, "corrupt")


def _move_wal_aside(path: Path) -> Path:
    wal = _wal_path(path)
    target = wal.with_name(f"{path.name}.journal-{_stamp()}.wal")
    wal.rename(target)
    log.error("the journal %s could not be read back; kept as %s", wal, target)
    return target


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
    """A file-name timestamp with microseconds, so two recoveries in one second never collide."""
    now = time.time()
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + f"-{int(now % 1 * 1e6):06d}"


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
    wal = path.with_name(path.name + ".wal")
    wal_target = target.with_name(target.name + ".wal")
    try:
        shutil.copy2(path, target)
        if wal.exists():
            shutil.copy2(wal, wal_target)
    except OSError:
        for partial in (target, wal_target):  # never leave a half copy that looks like a backup
            with contextlib.suppress(OSError):
                partial.unlink()
        raise
    log.info("backed up %s to %s before opening it with DuckDB %s", path, target, duckdb.__version__)
    return target
