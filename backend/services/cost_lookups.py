"""The real cost of stopped streams, looked up from OpenRouter's generation stats after they ended.

OpenRouter reports a stream's usage only in its last chunk, so a stream the user stopped (``cancelled``) or
that broke after output began (``interrupted``) ends without a cost. Its stats (``GET /generation?id=``) give
the cost a little later. This service runs beside the outbox, never in it: it finds such generations in the
database (at start and when an attempt ends; while lookups wait, at least every ``RESCAN_SECONDS``), asks for
their stats on a schedule counted from when they ended (``ATELIER_COST_LOOKUP_SECONDS``, 2, 10 and 60 s by
default) and writes the cost and tokens to the generation, or gives up and leaves "no cost reported". Its
progress is kept in the ``cost_lookups`` table, so a restart carries on where it stopped.
docs/openrouter.md, "Generation stats".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta
from typing import Any

from backend.core.vocabulary import Kind, Status
from backend.db import generations as gens
from backend.db.store import Store
from backend.openrouter import UpstreamError
from backend.openrouter.stats import GenerationStats, generation_stats

log = logging.getLogger(__name__)

#: How often the database is searched for stopped generations even when nothing woke the service.
RESCAN_SECONDS = 60.0
#: With no lookup waiting, the service sleeps until woken (every stop ends an attempt, which wakes it); this only
#: bounds that sleep.
IDLE_SECONDS = 3600.0
#: Generations that ended longer ago than this are not looked up for the first time (an upgrade must not
#: send a burst of lookups for old history); lookups already started are finished whatever their age.
DISCOVERY_HOURS = 24
#: At most this many lookups per pass, one after the other (a pass never holds many connections).
BATCH = 20

# Statuses whose stream may have ended without its usage chunk, of the kinds that stream.
_ELIGIBLE = (
    f"status IN ('{Status.CANCELLED}', '{Status.INTERRUPTED}') AND kind IN ('{Kind.TEXT}', '{Kind.IMAGE}') "
    "AND upstream_id IS NOT NULL AND cost_usd IS NULL"
)


class CostLookups:
    """Looks up the cost of stopped generations. One per app; ``start()``/``stop()`` from the composition root.

    ``client`` is the OpenRouter client, ``keys`` the credentials (``await keys.get()``), ``connectivity`` the
    outbox's reachability tracker (lookups wait while OpenRouter is unreachable; a lookup that cannot connect
    marks it unreachable, as any traffic does). ``delays`` are seconds after the generation ended.
    """

    def __init__(self, *, store: Store, client: Any, keys: Any, connectivity: Any, delays: tuple[float, ...],
                 probe_seconds: float = 10.0) -> None:
        if not delays:
            raise ValueError("at least one lookup delay is needed")
        self.store = store
        self.client = client
        self.keys = keys
        self.connectivity = connectivity
        self.delays = delays
        self.probe_seconds = probe_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        #: Passes made so far, and what became of each lookup this run (upstream id → found | gave_up |
        #: dropped): diagnostics, and tests wait on them instead of sleeping.
        self.passes = 0
        self.outcomes: dict[str, str] = {}
        #: The upstream ids still waiting for a lookup, as of the last pass.
        self.pending: set[str] = set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="cost-lookups")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def wake(self, *_: object) -> None:
        """Something may have stopped (an attempt ended) or OpenRouter may be back: look now."""
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                timeout = await self._pass()
            except asyncio.CancelledError:
                raise
            except Exception:  # a full disk, a bug: never let it end the loop or touch the outbox
                log.exception("cost lookup pass failed")
                timeout = RESCAN_SECONDS
            self.passes += 1
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.01, timeout))

    async def _pass(self) -> float:
        """Find new stopped generations, run the lookups that are due; return how long to sleep."""
        await self._discover(gens.now())
        pending = await self._pending()
        if pending and self.connectivity.online:
            key = await self.keys.get()
            if key is None:
                return RESCAN_SECONDS
            now = gens.now()
            due = sorted((row for row in pending if self._due_at(row) <= now), key=self._due_at)[:BATCH]
            for row in due:
                if not await self._lookup(key, row):
                    break  # unreachable: the rest wait too
            if due:
                pending = await self._pending()
        return self._sleep_for(pending)

    async def _pending(self) -> list[dict[str, Any]]:
        rows = await self.store.fetchall(
            "SELECT upstream_id, generation_id, stopped_at, tries FROM cost_lookups WHERE state = 'pending'")
        self.pending = {row["upstream_id"] for row in rows}
        return rows

    def _sleep_for(self, pending: list[dict[str, Any]]) -> float:
        """Until the next lookup is due; while nothing waits, until an attempt ends (``wake``), which is when a
        generation can stop."""
        if not pending:
            return IDLE_SECONDS
        if not self.connectivity.online:
            return min(RESCAN_SECONDS, self.probe_seconds)
        wait = (min(self._due_at(row) for row in pending) - gens.now()).total_seconds()
        return min(RESCAN_SECONDS, max(0.01, wait))

    def _due_at(self, row: dict[str, Any]) -> datetime:
        step = min(int(row["tries"]), len(self.delays) - 1)
        return row["stopped_at"] + timedelta(seconds=self.delays[step])

    async def _discover(self, now: datetime) -> None:
        """Start a lookup for every recently stopped generation that has an OpenRouter id and no cost."""
        found = await self.store.fetchall(
            "SELECT g.upstream_id, g.id, coalesce(g.finished_at, g.updated_at) AS stopped_at FROM generations g "  # noqa: S608
            f"WHERE {_ELIGIBLE} AND coalesce(g.finished_at, g.updated_at) >= ? "
            "AND NOT EXISTS (SELECT 1 FROM cost_lookups c WHERE c.upstream_id = g.upstream_id) "
            "ORDER BY stopped_at LIMIT 500",
            [now - timedelta(hours=DISCOVERY_HOURS)],
        )
        if not found:
            return

        def run(cur: Any) -> None:
            cur.executemany(
                "INSERT INTO cost_lookups (upstream_id, generation_id, stopped_at, tries, state, updated_at) "
                "VALUES (?, ?, ?, 0, 'pending', ?) ON CONFLICT DO NOTHING",
                [[row["upstream_id"], row["id"], row["stopped_at"], now] for row in found],
            )

        await self.store.transaction(run)

    async def _lookup(self, key: str, row: dict[str, Any]) -> bool:
        """One lookup. False when OpenRouter could not be reached (not counted as a try)."""
        upstream_id, gen_id = row["upstream_id"], row["generation_id"]
        still = await self.store.fetchone(
            f"SELECT 1 AS one FROM generations WHERE id = ? AND upstream_id = ? AND {_ELIGIBLE}",  # noqa: S608
            [gen_id, upstream_id])
        if still is None:  # retried, deleted, or its cost arrived another way
            await self._set_state(upstream_id, "dropped", row["tries"])
            return True
        try:
            stats = await generation_stats(self.client, key, upstream_id)
        except UpstreamError as exc:
            if exc.code == "network":
                self.connectivity.mark(False)
                log.debug("cost lookup for generation %s waits: OpenRouter is unreachable", gen_id)
                return False
            log.debug("cost lookup for generation %s failed: %s (HTTP %s)", gen_id, exc.code, exc.upstream_status)
            stats = None
        else:
            self.connectivity.mark(True)
        if stats is not None:
            await self._record(gen_id, stats, row["tries"])
            return True
        tries = int(row["tries"]) + 1
        if tries >= len(self.delays):
            log.info("no cost found for generation %s after %d lookups; it stays without a reported cost",
                     gen_id, tries)
            await self._set_state(upstream_id, "gave_up", tries)
        else:
            await self._set_state(upstream_id, "pending", tries)
        return True

    async def _record(self, gen_id: str, stats: GenerationStats, tries: int) -> None:
        """Write the cost and tokens to the generation (only if it is still stopped without a cost) and close
        the lookup, in one transaction."""
        stamp = gens.now()

        def run(cur: Any) -> bool:
            cur.execute(
                "UPDATE generations SET cost_usd = ?, "  # noqa: S608
                "prompt_tokens = CASE WHEN ? IS NULL THEN prompt_tokens ELSE coalesce(prompt_tokens, 0) + ? END, "
                "completion_tokens = CASE WHEN ? IS NULL THEN completion_tokens "
                "ELSE coalesce(completion_tokens, 0) + ? END, updated_at = ? "
                f"WHERE id = ? AND upstream_id = ? AND {_ELIGIBLE} RETURNING id",
                [stats.cost_usd, stats.prompt_tokens, stats.prompt_tokens, stats.completion_tokens,
                 stats.completion_tokens, stamp, gen_id, stats.upstream_id],
            )
            written = cur.fetchone() is not None
            cur.execute("UPDATE cost_lookups SET state = ?, tries = ?, updated_at = ? WHERE upstream_id = ?",
                        ["found" if written else "dropped", tries + 1, stamp, stats.upstream_id])
            return written

        written = await self.store.transaction(run)
        self.outcomes[stats.upstream_id] = "found" if written else "dropped"
        if written:
            log.info("cost of stopped generation %s found: $%.6f", gen_id, stats.cost_usd)

    async def _set_state(self, upstream_id: str, state: str, tries: int) -> None:
        await self.store.execute("UPDATE cost_lookups SET state = ?, tries = ?, updated_at = ? WHERE upstream_id = ?",
                                 [state, tries, gens.now(), upstream_id])
        if state != "pending":
            self.outcomes[upstream_id] = state
