"""Streamed text flushed to the database for every running stream together: one statement, one transaction.

Each stream saves its text so far at most every 250 ms (backend/outbox/text.py), so that a crash keeps it.
With a hundred streams, a hundred separate writes a quarter-second apart held the store's one write lock most
of the time, and the commits of new requests (the path to their first token) queued behind them. Here a
stream hands its latest text over and carries on; whatever was handed over when the write lock comes free is
written as one multi-row ``UPDATE`` in one transaction (docs/performance.md, "Issue 14").

Only ``running`` generations are updated, and an attempt drops its pending text (:meth:`Flushes.discard`)
before it writes its outcome, so a late flush never overwrites a final answer.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from backend.db.store import Store
from backend.db.time import now

log = logging.getLogger(__name__)

_UPDATE = (
    "UPDATE generations SET output_text = n.output_text, reasoning_text = n.reasoning_text, "
    "upstream_id = coalesce(n.upstream_id, generations.upstream_id), updated_at = ? "
    "FROM (SELECT unnest(?::VARCHAR[]) AS id, unnest(?::VARCHAR[]) AS output_text, "
    "unnest(?::VARCHAR[]) AS reasoning_text, unnest(?::VARCHAR[]) AS upstream_id) n "
    "WHERE generations.id = n.id AND generations.status = 'running'"
)


class Flushes:
    """The streamed text waiting to be written, by generation (the newest text of each wins)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._mutex = threading.Lock()  # the pending texts are taken from the database thread
        self._pending: dict[str, tuple[str, str | None, str | None]] = {}
        self._task: asyncio.Task[None] | None = None
        #: Transactions written and texts they held (tests and diagnostics).
        self.writes = 0
        self.texts = 0

    def put(self, gen_id: str, *, output_text: str, reasoning_text: str | None, upstream_id: str | None) -> None:
        """Save this text of a running generation soon (its newest text replaces one still waiting)."""
        with self._mutex:
            waiting = self._pending.get(gen_id)
            if upstream_id is None and waiting is not None:
                upstream_id = waiting[2]
            self._pending[gen_id] = (output_text, reasoning_text, upstream_id)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain(), name="text-flushes")

    def discard(self, gen_id: str) -> None:
        """The attempt is ending: its own final write carries the text, so a waiting flush is dropped."""
        with self._mutex:
            self._pending.pop(gen_id, None)

    async def _drain(self) -> None:
        while True:
            with self._mutex:
                if not self._pending:
                    return
            try:
                await self.store.transaction(self._write)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a failed flush loses nothing the attempt does not hold
                log.warning("streamed text could not be saved this time: %s", exc)
                return

    def _write(self, cur: Any) -> None:
        """In the database thread, with the write lock held: everything handed over until now, at once."""
        with self._mutex:
            batch, self._pending = self._pending, {}
        if not batch:
            return
        ids = list(batch)
        texts = [batch[i] for i in ids]
        cur.execute(_UPDATE, [now(), ids, [t[0] for t in texts], [t[1] for t in texts], [t[2] for t in texts]])
        self.writes += 1
        self.texts += len(ids)
