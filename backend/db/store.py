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
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from backend.core.files import is_storage_failure
from backend.db.library_file import (
    StoreOpenError,
    cannot_write,
    check_version,
    is_truncated,
    move_aside,
    move_wal_aside,
    read_header,
    stamp,
    wal_path,
)
from backend.db.migrations import _has_table, migrate

log = logging.getLogger(__name__)
__all__ = ["Store", "StoreOpenError", "commit_was_durable", "is_invalidated", "migrate", "read_header"]

T = TypeVar("T")


def is_invalidated(exc: BaseException) -> bool:
    """True when DuckDB has given up on the open database (after a failed checkpoint, for instance)."""
    if isinstance(exc, duckdb.FatalException):
        return True
    return isinstance(exc, duckdb.Error) and "database has been invalidated" in str(exc).lower()


def commit_was_durable(exc: BaseException) -> bool:
    """True when DuckDB reports that the COMMIT itself succeeded and only the checkpoint after it failed."""
    return isinstance(exc, duckdb.Error) and "commit succeeded and is durable" in str(exc).lower()


class CursorGate:
    """Counts the cursors out. Closing a connection fails every cursor still out ("connection already closed"),
    so replacing or reopening the file first waits (:meth:`quiet`) until the reads and transactions in flight
    have given theirs back, holding new ones back meanwhile."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._out = 0
        self._closing = False

    @contextlib.contextmanager
    def borrowed(self, open_cursor: Callable[[], duckdb.DuckDBPyConnection]) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor from ``open_cursor`` for one call, closed and counted back in afterwards."""
        with self._cond:
            while self._closing:
                self._cond.wait()
            cur = open_cursor()
            self._out += 1
        try:
            yield cur
        finally:
            with contextlib.suppress(duckdb.Error):
                cur.close()
            with self._cond:
                self._out -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def quiet(self, timeout: float = 30.0) -> Iterator[None]:
        """Hold new cursors back and wait (at most ``timeout``) until every cursor out has been given back."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._closing = True
            while self._out and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            if self._out:
                log.warning("%d database cursors still open after %.0f s; going on", self._out, timeout)
        try:
            yield
        finally:
            with self._cond:
                self._closing = False
                self._cond.notify_all()


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
        self._gate = CursorGate()
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
            check_version(path, backups_dir)
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
            if wal_path(path).exists() and recover_corrupt:
                # The journal may be what is damaged: keep it aside and try the database alone.
                wal_kept = move_wal_aside(path)
                try:
                    con = _connect(path, existed)
                except _Damaged as again:
                    recovered_from = _refuse_or_move(path, recover_corrupt, f"is damaged ({again})")
                    con = _connect(path, False)
            else:
                recovered_from = _refuse_or_move(path, recover_corrupt, f"is damaged ({exc})")
                con = _connect(path, False)
        if existed and recovered_from is None and wal_path(path).exists():
            # DuckDB silently skips a journal it cannot read and leaves it in place; a checkpoint folds a good
            # journal into the file, so one still there afterwards was not read back.
            try:
                con.execute("CHECKPOINT")
            except duckdb.Error as exc:
                with contextlib.suppress(duckdb.Error):
                    con.close()
                if is_storage_failure(exc):
                    raise cannot_write(path, exc) from None
                raise
            if wal_path(path).exists() and wal_path(path).stat().st_size > 0:
                con.close()
                wal_kept = move_wal_aside(path)
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

    def _run(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        with self._gate.borrowed(self._cursor) as cur:
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
        with self._gate.borrowed(self._cursor) as cur:
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
            with self._gate.quiet():
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
            with self._gate.quiet():
                return self._replace_file_now(new_file, aside_label)

    def _replace_file_now(self, new_file: Path, aside_label: str) -> Path:
        """:meth:`_replace_file` once no cursor is out."""
        if self._invalidated is None:
            with contextlib.suppress(duckdb.Error):
                self._con.execute("CHECKPOINT")
        with contextlib.suppress(duckdb.Error):
            self._con.close()
        aside = self.path.with_name(f"{self.path.name}.{aside_label}-{stamp()}")
        os.replace(self.path, aside)
        if wal_path(self.path).exists():
            os.replace(wal_path(self.path), aside.with_name(aside.name + ".wal"))
        try:
            os.replace(new_file, self.path)
            self._con = _connect(self.path, True)
        except BaseException:
            with contextlib.suppress(OSError):
                os.replace(self.path, new_file)
            os.replace(aside, self.path)
            if aside.with_name(aside.name + ".wal").exists():
                os.replace(aside.with_name(aside.name + ".wal"), wal_path(self.path))
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
            raise cannot_write(path, exc) from None
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
            raise cannot_write(path, exc) from None
        raise _Damaged(str(exc)) from None
    except duckdb.Error as exc:
        with contextlib.suppress(duckdb.Error):
            con.close()
        if is_storage_failure(exc):  # a migration's commit or checkpoint refused by the disk
            raise cannot_write(path, exc) from None
        if isinstance(exc, (duckdb.SerializationException, duckdb.InternalException, duckdb.CatalogException,
                            duckdb.InvalidInputException)):
            raise _Damaged(str(exc)) from None
        raise
    return con


def _refuse_or_move(path: Path, recover: bool, why: str) -> Path:
    if not recover:
        raise StoreOpenError(f"{path} {why}.", reason="corrupt", path=path)
    return move_aside(path, "corrupt")


