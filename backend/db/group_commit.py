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

The new generations' words go into the search index in a transaction of their own, right after the commit and
whenever no other commit is waiting, so indexing a prompt (~10 ms of regular expressions in DuckDB) is not on
the path to the first token. A caller that answers at once (a deferred request) waits for it; one whose
generation goes out now does not. Should the app stop between the two, the rows still waiting or running are
indexed again at start-up (:func:`backend.db.generations.index_unfinished`), and a generation that ends is
indexed when it ends.

See docs/performance.md ("Group commit").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from backend.core.errors import StorageError
from backend.db import search as search_index
from backend.db.store import Store

log = logging.getLogger(__name__)

#: One row to insert: the statement up to ``VALUES`` (``INSERT INTO t (a, b) VALUES``) and the row's values.
Row = tuple[str, Sequence[Any]]
#: How long the search index of requests sent at once waits for their first token (unless a write comes).
INDEX_DELAY = 0.2
#: New generations indexed per transaction at most.
_INDEX_PART = 16
#: Rows per statement at most (DuckDB binds every parameter of a statement).
_ROWS_PER_STATEMENT = 200
_GENERATIONS = "INSERT INTO generations "


@dataclass
class _Write:
    """One caller's rows, with what it waits for."""

    rows: list[Row]
    committed: asyncio.Future[None]
    indexed: asyncio.Future[None]

    def generation_ids(self) -> list[str]:
        """The new generations among ``rows`` (a generation's id is its first value)."""
        return [values[0] for head, values in self.rows if head.startswith(_GENERATIONS)]


class GroupCommit:
    """Batches row inserts of one store into shared transactions."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._mutex = threading.Lock()  # the pending list is taken from the database thread
        self._pending: list[_Write] = []
        #: Written and committed, not yet in the search index: (generation ids, resolved once indexed).
        self._unindexed: list[tuple[list[str], asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self._arrived = asyncio.Event()
        #: Index futures someone waits for (a deferred request answers once it is searchable).
        self._searchable: set[asyncio.Future[None]] = set()
        #: Commits made and writes they held (diagnostics, tests and benchmarks).
        self.commits = 0
        self.writes = 0
        self.largest = 0

    async def insert(self, rows: list[Row], *, searchable: bool = True) -> None:
        """Insert ``rows`` (in order) in the next group transaction; return once that transaction is committed
        and, with ``searchable``, once the new generations are in the search index too.

        Raises :class:`StorageError` (507) when the group's commit failed. A caller that is cancelled while
        waiting does not take its write out: it may still be committed.
        """
        loop = asyncio.get_running_loop()
        write = _Write(rows, loop.create_future(), loop.create_future())
        if searchable:
            self._searchable.add(write.indexed)
            write.indexed.add_done_callback(self._searchable.discard)
        with self._mutex:
            self._pending.append(write)
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._arrived = asyncio.Event()  # of this loop; nobody waits on the old one
            self._task = loop.create_task(self._drain(), name="group-commit")
        self._arrived.set()  # a drain waiting to index commits this first
        await asyncio.shield(write.committed)
        if searchable:
            await asyncio.shield(write.indexed)

    async def _drain(self) -> None:
        try:
            await self._drain_all()
        finally:
            # Stopped (shutdown) with rows left unindexed: nobody waits for them any more. They are still
            # waiting or running, so the next start indexes them (generations.index_unfinished).
            unindexed, self._unindexed = self._unindexed, []
            for _, future in unindexed:
                if not future.done():
                    future.set_result(None)

    async def _drain_all(self) -> None:
        while True:
            with self._mutex:
                waiting = bool(self._pending)
            if not waiting:
                if not self._unindexed:
                    return
                if not any(future in self._searchable for _, future in self._unindexed):
                    # Only requests on their way to OpenRouter: index once their first token is likely in,
                    # so the index does not compete with it for the CPU. A new write ends the wait.
                    self._arrived.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._arrived.wait(), INDEX_DELAY)
                    with self._mutex:
                        if self._pending:
                            continue
                await self._index()  # nothing waits to be committed: index what was
                continue
            taken: list[_Write] = []
            try:
                await self.store.transaction(lambda cur, taken=taken: self._run(cur, taken))
            except BaseException as exc:  # noqa: BLE001 - every waiter learns the outcome, whatever it was
                if not taken:  # the transaction could not even begin: fail what is waiting now
                    with self._mutex:
                        taken.extend(self._pending)
                        self._pending.clear()
                log.error("a group commit of %d writes failed: %s", len(taken), exc)
                for write in taken:
                    future = write.committed
                    write.indexed.cancel()  # nobody waits for it once the commit failed
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
            for write in taken:
                if not write.committed.done():
                    write.committed.set_result(None)
                self._unindexed.append((write.generation_ids(), write.indexed))

    async def _index(self) -> None:
        """Add committed generations to the search index, a part at a time. A failure is logged, not
        raised: the rows are on disk, and they are indexed again when they end or at the next start."""
        # A few at a time: new requests arriving meanwhile commit between two parts instead of waiting for the
        # whole burst's words (a hundred prompts hold the write lock for a long while on a busy machine).
        count = total = 0
        while count < len(self._unindexed) and total < _INDEX_PART:
            total += len(self._unindexed[count][0])
            count += 1
        batch, self._unindexed = self._unindexed[:count], self._unindexed[count:]
        ids = [gen_id for ids, _ in batch for gen_id in ids]
        try:
            if ids:
                await self.store.transaction(lambda cur: search_index.index(cur, ids))
        except Exception as exc:  # noqa: BLE001 - a search index write must not fail a committed request
            log.warning("%d new generations could not be added to the search index yet: %s", len(ids), exc)
        finally:
            for _, future in batch:
                if not future.done():
                    future.set_result(None)

    def _run(self, cur: Any, taken: list[_Write]) -> None:
        """In the database thread, with the write lock held: everything that arrived meanwhile joins, one
        multi-row statement per table (tables in the order they first appear)."""
        with self._mutex:
            taken.extend(self._pending)
            self._pending.clear()
        by_head: dict[str, list[Sequence[Any]]] = {}
        for write in taken:
            for head, values in write.rows:
                by_head.setdefault(head, []).append(values)
        for head, values in by_head.items():
            for start in range(0, len(values), _ROWS_PER_STATEMENT):
                chunk = values[start:start + _ROWS_PER_STATEMENT]
                one = "(" + ", ".join("?" * len(chunk[0])) + ")"
                cur.execute(f"{head} {', '.join([one] * len(chunk))}", [v for row in chunk for v in row])


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
