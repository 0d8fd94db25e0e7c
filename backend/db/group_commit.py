"""Group commit: writes that arrive while the database is busy share one transaction and one journal sync.

Every ``POST /generations`` writes its row (and its first attempt) before anything is sent, and each commit
syncs the journal to disk (~2.5 ms). With a hundred requests at once, one commit each queued behind the
store's single write lock made the last request wait for a hundred syncs. Here the first write starts a
commit at once (no added wait when the app is idle); whatever arrives while that commit is waiting for the
lock or being written goes into the next one, together, as one multi-row ``INSERT`` per table (a hundred
single-row statements cost DuckDB several times more than one statement of a hundred rows). Each caller
returns only after the commit holding its rows has succeeded, so a request is still on disk before it is
acknowledged or sent. When a group's commit fails, every write in it fails with a 507 ``storage_error``:
none of them is on disk.

See docs/performance.md ("Group commit").
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from typing import Any
from weakref import WeakKeyDictionary

from backend.core.errors import StorageError
from backend.db import search as search_index
from backend.db.store import Store

log = logging.getLogger(__name__)

#: One row to insert: the statement up to ``VALUES`` (``INSERT INTO t (a, b) VALUES``) and the row's values.
Row = tuple[str, Sequence[Any]]
#: Rows per statement at most (DuckDB binds every parameter of a statement).
_ROWS_PER_STATEMENT = 200


class GroupCommit:
    """Batches row inserts of one store into shared transactions."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._mutex = threading.Lock()  # the pending list is taken from the database thread
        self._pending: list[tuple[list[Row], asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None
        #: Commits made and writes they held (diagnostics, tests and benchmarks).
        self.commits = 0
        self.writes = 0
        self.largest = 0

    async def insert(self, rows: list[Row]) -> None:
        """Insert ``rows`` (in order) in the next group transaction; return once that transaction is committed.

        Raises :class:`StorageError` (507) when the group's commit failed. A caller that is cancelled while
        waiting does not take its write out: it may still be committed.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._mutex:
            self._pending.append((rows, future))
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._task = loop.create_task(self._drain(), name="group-commit")
        await asyncio.shield(future)

    async def _drain(self) -> None:
        while True:
            with self._mutex:
                if not self._pending:
                    return
            taken: list[tuple[list[Row], asyncio.Future[None]]] = []
            try:
                await self.store.transaction(lambda cur, taken=taken: self._run(cur, taken))
            except BaseException as exc:  # noqa: BLE001 - every waiter learns the outcome, whatever it was
                if not taken:  # the transaction could not even begin: fail what is waiting now
                    with self._mutex:
                        taken.extend(self._pending)
                        self._pending.clear()
                log.error("a group commit of %d writes failed: %s", len(taken), exc)
                for _, future in taken:
                    if not future.done():
                        error = StorageError("Atelier could not write this request to its library on disk (the "
                                             "disk may be full or read-only), so nothing was sent. Free some space "
                                             "and try again.")
                        error.__cause__ = exc
                        future.set_exception(error)
                        future.add_done_callback(_retrieved)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            self.commits += 1
            self.writes += len(taken)
            self.largest = max(self.largest, len(taken))
            for _, future in taken:
                if not future.done():
                    future.set_result(None)


    def _run(self, cur: Any, taken: list[tuple[list[Row], asyncio.Future[None]]]) -> None:
        """In the database thread, with the write lock held: everything that arrived meanwhile joins, one
        multi-row statement per table (tables in the order they first appear)."""
        with self._mutex:
            taken.extend(self._pending)
            self._pending.clear()
        by_head: dict[str, list[Sequence[Any]]] = {}
        for rows, _ in taken:
            for head, values in rows:
                by_head.setdefault(head, []).append(values)
        for head, values in by_head.items():
            for start in range(0, len(values), _ROWS_PER_STATEMENT):
                chunk = values[start:start + _ROWS_PER_STATEMENT]
                one = "(" + ", ".join("?" * len(chunk[0])) + ")"
                cur.execute(f"{head} {', '.join([one] * len(chunk))}", [v for row in chunk for v in row])
        # New generations join the search index in the same transaction (their id is the first value).
        search_index.index(cur, [values[0] for head, rows in by_head.items()
                                 if head.startswith("INSERT INTO generations ") for values in rows])


def _retrieved(future: asyncio.Future[None]) -> None:
    """Mark a failed write's error as seen even when its caller was cancelled meanwhile (no warning)."""
    if not future.cancelled():
        future.exception()


_groups: WeakKeyDictionary[Store, GroupCommit] = WeakKeyDictionary()


def group_for(store: Store) -> GroupCommit:
    """The one :class:`GroupCommit` of ``store``."""
    group = _groups.get(store)
    if group is None:
        group = _groups[store] = GroupCommit(store)
    return group
