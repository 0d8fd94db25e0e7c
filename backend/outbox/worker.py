"""The outbox: every generation is sent from here, retried when OpenRouter cannot have billed it, and
followed to the end (video jobs across restarts).

Life of a generation: ``queued`` → ``running`` → ``succeeded`` | ``failed`` | ``interrupted`` | ``cancelled``;
``running`` → ``queued`` on a retryable failure. This module runs the loop (probe, claim, start), resumes after
a restart and handles cancel, retry and pause; one attempt is run by :mod:`backend.outbox.text` or
:mod:`backend.outbox.video` under the rules of :mod:`backend.outbox.attempt`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

from backend.core.errors import AtelierError, Conflict, error_dict
from backend.core.files import is_storage_failure
from backend.core.policy import Policy
from backend.core.preferences import Preferences
from backend.core.settings import Settings
from backend.core.vocabulary import RETRYABLE, Kind, Status
from backend.db import claiming, meta
from backend.db import generations as gens
from backend.db import search as search_index
from backend.db.store import Store
from backend.keys.credentials import Credentials
from backend.media.store import MediaStore
from backend.openrouter import OpenRouterClient
from backend.outbox.attempt import AttemptRules, OutboxServices
from backend.outbox.backoff import Uniform
from backend.outbox.connectivity import Connectivity
from backend.outbox.events import Event, Running, follow
from backend.outbox.restart import resume_after_restart
from backend.outbox.text import ChatAttempt
from backend.outbox.video import VideoAttempt
from backend.services.admission import send_refusal
from backend.services.catalogue import Catalogue

log = logging.getLogger(__name__)


class Outbox:
    """Sends generations and follows them. One per app; started and stopped by the app's lifespan."""

    def __init__(
        self,
        *,
        store: Store,
        settings: Settings,
        client: OpenRouterClient,
        keys: Credentials,
        media: MediaStore,
        preferences: Preferences,
        catalogue: Catalogue | None,
        connectivity: Connectivity,
        policy: Policy | None = None,
        concurrency: int | None = None,
        rng: Uniform | None = None,
    ) -> None:
        self.services = OutboxServices(
            store=store, settings=settings, client=client, keys=keys, media=media, preferences=preferences,
            catalogue=catalogue, connectivity=connectivity, policy=policy, rng=rng)
        self.store = store
        self.settings = settings
        self.client = client
        self.keys = keys
        self.connectivity = connectivity
        self.rules = AttemptRules(self.services)
        self.chat = ChatAttempt(self.rules)
        self.video = VideoAttempt(self.rules)
        self.concurrency = concurrency or settings.outbox_concurrency
        self.running: dict[str, Running] = {}
        self.paused = False
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task | None = None
        self._stopping = False
        self._backlog: int | None = None
        self._backlog_at = 0.0
        self._background: set[asyncio.Task] = set()
        self._attempt_end: list[Callable[[str], None]] = []
        #: Passes of the loop so far (tests wait on it instead of sleeping).
        self.passes = 0
        # Offline, probes back off from 0.5 s to PROBE_SECONDS; user activity wakes the loop for a probe at once.
        connectivity.probe_seconds = settings.probe_seconds
        connectivity.on_recheck(self.wake)

    # -- lifecycle ---------------------------------------------------------------------------------------------
    async def start(self) -> None:
        self.paused = await meta.get(self.store, key="outbox_paused") == "true"
        await self._resume_after_restart()
        # In case the app stopped before the newest generations' words were indexed (db/group_commit.py).
        try:
            await self.store.transaction(search_index.index_unfinished)
        except Exception as exc:  # noqa: BLE001 - a search index must not keep the outbox from starting
            log.warning("the search index could not catch up at start-up: %s", exc)
        self._loop_task = asyncio.create_task(self._loop(), name="outbox")

    async def stop(self) -> None:
        """Stop sending. Text/image attempts in flight go back to the queue (or are kept as interrupted when
        output had begun); video jobs stay ``running`` and are followed again at the next start."""
        self._stopping = True
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        for task in list(self._background):
            task.cancel()
        tasks = []
        for running in list(self.running.values()):
            if running.task is not None and not running.task.done():
                running.cancel_reason = "shutdown"
                running.task.cancel()
                tasks.append(running.task)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def wake(self) -> None:
        self._wake.set()

    def on_attempt_end(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(gen_id)`` (must not block) whenever an attempt has ended and its outcome is saved."""
        self._attempt_end.append(listener)

    def activity(self) -> None:
        """The user did something (a new request, the window gaining focus): while offline, probe now."""
        if not self.connectivity.online:
            self.connectivity.recheck()  # wakes the loop

    async def backlog(self) -> int:
        """How many generations wait or run, for the outbox limit. Counted at most every few seconds and
        kept up to date in between (a soft limit: it must not cost a query on every request)."""
        if self._backlog is None or time.monotonic() - self._backlog_at > 5:
            self._backlog = await gens.pending_count(self.store)
            self._backlog_at = time.monotonic()
        return self._backlog

    def added(self, count: int = 1) -> None:
        if self._backlog is not None:
            self._backlog += count

    async def set_paused(self, paused: bool) -> None:
        self.paused = paused
        await meta.put(self.store, key="outbox_paused", value="true" if paused else "false")
        if not paused:
            self.connectivity.recheck()  # "Resume" also re-checks reachability
        self.wake()

    async def _resume_after_restart(self) -> None:
        """Decide what was ``running`` when the app last stopped (``backend/outbox/restart.py``)."""
        await resume_after_restart(self.store, self.rules, max_attempts=self.settings.max_attempts)

    # -- the loop ----------------------------------------------------------------------------------------------
    async def _loop(self) -> None:
        # Checked each pass as well as cancelled: on Python 3.11 ``wait_for`` swallows a cancel that arrives
        # together with a wake-up, which would leave stop() waiting for ever.
        while not self._stopping:
            # Cleared before the pass, not after: a wake-up that arrives during the pass (user activity while
            # a probe is out) starts the next pass at once instead of being lost.
            self._wake.clear()
            try:
                timeout = await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # the loop must survive anything (a full disk, a bug in one item)
                log.exception("outbox loop error")
                timeout = self.settings.probe_seconds
            self.passes += 1
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.01, timeout))

    async def _tick(self) -> float:
        """One pass: probe when offline, resume video jobs, start due items. Returns how long to sleep."""
        probe = self.settings.probe_seconds
        await gens.fail_orphaned_turns(self.store)  # a turn whose parent failed cannot go out
        stale = self.connectivity.stale(probe * 3)
        if not self.connectivity.online:
            if self.connectivity.probe_due():
                self.connectivity.probed(await self.client.probe())
            if not self.connectivity.online:
                return self.connectivity.seconds_to_probe()
        elif stale and not self.running:
            self.connectivity.probed(await self.client.probe())
            if not self.connectivity.online:
                return self.connectivity.seconds_to_probe()
        for gen_id in await gens.video_jobs(self.store):
            if gen_id not in self.running:
                self._spawn(gen_id, resume_video=True)
        if self.paused:
            return probe * 3
        if await self.keys.get() is None:
            return probe
        free = self.concurrency - sum(1 for r in self.running.values() if r.task and not r.task.done())
        now = gens.now()
        horizon = timedelta(seconds=self.settings.retry_max_seconds)
        if free > 0:
            batch_slots = (self.settings.batch_concurrency or self.concurrency) - await claiming.running_in_batches(
                self.store, [g for g, r in self.running.items() if r.task and not r.task.done()])
            for gen_id in await claiming.due(self.store, at=now, horizon=horizon, limit=free, batch_slots=batch_slots):
                if gen_id not in self.running and await gens.claim(self.store, gen_id):
                    self._spawn(gen_id)
        nxt = await claiming.next_due_at(self.store, after=now, horizon=horizon)
        if nxt is not None:
            return min(probe * 3, max(0.01, (nxt - gens.now()).total_seconds()))
        return probe * 3

    def _spawn(self, gen_id: str, *, resume_video: bool = False) -> Running:
        running = self.running.get(gen_id) or Running(gen_id)
        self.running[gen_id] = running
        running.task = asyncio.create_task(self._run(running, resume_video=resume_video), name=f"gen-{gen_id}")
        return running

    # -- API entry points ------------------------------------------------------------------------------------
    def send_now(self, row: dict[str, Any]) -> tuple[Running, asyncio.Queue]:
        """Start the first attempt of a generation admitted as ``running`` with attempt 1 recorded (the request
        path). Returns it with a queue already subscribed to its events, so none is missed."""
        running = Running(row["id"], attempt=1, row=row)
        self.running[row["id"]] = running
        queue = running.subscribe()
        running.task = asyncio.create_task(self._run(running), name=f"gen-{running.gen_id}")
        return running, queue

    async def send_queued(self, gen_id: str) -> Running | None:
        """Claim a queued generation and start an attempt now; None when it was not queued."""
        if not await gens.claim(self.store, gen_id):
            return None
        return self._spawn(gen_id)

    async def cancel(self, gen_id: str) -> bool:
        """Cancel a queued or running generation. False when it had already finished.

        The status is written first: whatever an attempt in flight does afterwards cannot bring it back.
        """
        if not await gens.cancel(self.store, gen_id):
            return False
        running = self.running.get(gen_id)
        if running is not None and running.task is not None and not running.task.done():
            running.cancel_reason = "user"
            running.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await running.task
            if self.running.get(gen_id) is running:  # cancelled before it started: its cleanup never ran
                del self.running[gen_id]
        return True

    async def retry(self, gen_id: str) -> bool:
        """Queue a generation again now (queued, failed, interrupted or cancelled). False when it is in none
        of those. Raises the refusal when policy or the budget no longer allow it (it is then failed)."""
        row = await gens.get_row(self.store, gen_id)
        if row["status"] not in RETRYABLE:
            return False
        if await gens.parent_failed(self.store, row):
            raise Conflict("The turn this one answers did not finish: retry that turn first.",
                           code="parent_failed")
        refusal = await self._refusal(row["model"])
        if refusal is not None:
            await gens.transition(self.store, gen_id, status=Status.FAILED,
                                  from_statuses=RETRYABLE,
                                  finished_at=gens.now(), next_attempt_at=None,
                                  error=error_dict(refusal.code, refusal.message))
            raise refusal
        done = await gens.requeue(self.store, gen_id)
        if done:
            self.connectivity.recheck()  # "Retry now" also re-checks reachability
            self.wake()
        return done

    async def _refusal(self, model: str) -> AtelierError | None:
        s = self.services
        return await send_refusal(store=s.store, policy=s.policy, preferences=s.preferences, model=model)

    def events(self, gen_id: str) -> AsyncIterator[tuple[str, Any]]:
        """The record, then progress events, until the generation reaches a terminal status."""
        return follow(self.store, self.running, gen_id)

    # -- one generation ------------------------------------------------------------------------------------
    async def _run(self, running: Running, *, resume_video: bool = False) -> None:
        gen_id = running.gen_id
        try:
            row, running.row = running.row or await gens.get_row(self.store, gen_id), None
            if row["kind"] == Kind.VIDEO:
                if resume_video:
                    running.started.set()
                    await self.video.poll(running, row)
                else:
                    await self.video.submit(running, row)
            else:
                await self.chat.run(running, row)
        except asyncio.CancelledError:
            if running.cancel_reason != "shutdown":
                raise
        except Exception as exc:
            await self._unexpected(running, exc)
        finally:
            running.started.set()
            if self.running.get(gen_id) is running:
                del self.running[gen_id]
            for listener in list(self._attempt_end):
                listener(gen_id)
            if not self._stopping:
                self.wake()

    async def _unexpected(self, running: Running, exc: Exception) -> None:
        """An attempt raised: a full disk, or a bug. The generation fails with a clear error."""
        gen_id = running.gen_id
        if is_storage_failure(exc):
            log.error("generation %s could not be saved: %s", gen_id, exc)
            err = error_dict("storage_error", "Atelier could not save this generation (the disk may be full or "
                        "read-only). Free some space, then retry it.")
        else:
            log.exception("generation %s failed unexpectedly", gen_id)
            err = error_dict("internal_error", "Something went wrong inside Atelier while handling this "
                        "generation. Retry it; details are in the log file.")
        try:
            await self.rules.finish(gen_id, Status.FAILED, error=err)
            running.publish(Event.ERROR, {"error": err, "generation": await gens.record(self.store, gen_id)})
        except Exception:
            # The disk is still refusing writes: keep trying in the background so the item does not stay
            # "running" until the next start.
            running.publish(Event.ERROR, {"error": err, "generation": None})
            task = asyncio.create_task(self._record_failure_later(gen_id, err))
            self._background.add(task)  # keep a reference until it is done
            task.add_done_callback(self._background.discard)

    async def _record_failure_later(self, gen_id: str, err: dict[str, Any]) -> None:
        for _ in range(120):
            await asyncio.sleep(self.settings.probe_seconds)
            try:
                await self.rules.finish(gen_id, Status.FAILED, error=err)
                return
            except Exception:  # noqa: S112 - still failing; try again
                continue
