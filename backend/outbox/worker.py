"""The outbox: every generation is sent from here, retried when OpenRouter cannot have billed it, and
followed to the end (video jobs across restarts).

Life of a generation: ``queued`` → ``running`` → ``succeeded`` | ``failed`` | ``interrupted`` | ``cancelled``;
``running`` → ``queued`` on a retryable failure. The rules (docs/outbox.md):

- Retry only where OpenRouter cannot have started or billed the generation (connect failures, 408/429/5xx,
  an in-band error before the first token), honouring ``Retry-After``; backoff is exponential with full
  jitter from ``retry_base_seconds``, capped at ``retry_max_seconds``.
- Being offline uses up no attempts: the worker probes reachability and drains the queue when OpenRouter
  answers again, at most ``outbox_concurrency`` at a time.
- Delivery unknown (connection lost after sending): text/image are retried unless the user turned that off;
  video submissions are never resubmitted — they become ``interrupted``.
- Streamed text is saved as it arrives (every 250 ms), so a crash or a broken stream keeps it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from backend.core.files import is_storage_failure
from backend.core.vocabulary import TERMINAL
from backend.db import generations as gens
from backend.db.store import Store
from backend.media.store import MediaError, MediaStore, decode_data_url, encode_data_url
from backend.openrouter import (
    ImageDelta,
    KeepAlive,
    OpenRouterClient,
    ReasoningDelta,
    StreamFinished,
    StreamStarted,
    TextDelta,
    UpstreamError,
    Usage,
)

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.25
REJECT_CODES = frozenset(
    {"invalid_key", "insufficient_credits", "content_blocked", "model_not_found", "context_too_long", "bad_request",
     "key_limit_reached", "spend_limit_reached", "privacy_restricted"}
)
VIDEO_DONE = {"completed", "succeeded"}
VIDEO_FAILED = {"failed", "cancelled", "canceled", "expired", "dead", "error"}


class Connectivity:
    """Whether OpenRouter answered lately. ``online`` starts unknown (False) until the first probe."""

    def __init__(self) -> None:
        self.online = False
        self.checked_at: float | None = None
        self.changed = asyncio.Event()

    def mark(self, online: bool) -> None:
        self.checked_at = time.monotonic()
        if online != self.online:
            log.info("OpenRouter is %s", "reachable" if online else "unreachable")
            self.online = online
            self.changed.set()


@dataclass
class Running:
    """An attempt in progress: its task and the listeners that get its events."""

    gen_id: str
    task: asyncio.Task | None = None
    listeners: list[asyncio.Queue] = field(default_factory=list)
    cancel_reason: str | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)
    #: The attempt already recorded with the row (the request path), so the task does not record another.
    attempt: int | None = None
    #: The values the request path just wrote, so the first attempt does not read them back.
    row: dict[str, Any] | None = None

    async def begin_attempt(self, store: Store) -> int:
        number, self.attempt = self.attempt, None
        return number if number is not None else await gens.begin_attempt(store, self.gen_id)

    def publish(self, event: str, data: Any) -> None:
        for queue in list(self.listeners):
            queue.put_nowait((event, data))

    def subscribe(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue()
        self.listeners.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        with contextlib.suppress(ValueError):
            self.listeners.remove(queue)


def backoff_seconds(attempt: int, *, base: float, cap: float, retry_after: float | None = None,
                    rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter; never sooner than ``Retry-After``."""
    rng = rng or random
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    delay = rng.uniform(0, ceiling)
    if retry_after is not None:
        delay = max(delay, min(retry_after, max(cap, retry_after)))
    return delay


class Outbox:
    """Sends generations and follows them. One per app; started and stopped by the app's lifespan."""

    def __init__(
        self,
        *,
        store: Store,
        settings: Any,
        client: OpenRouterClient,
        keys: Any,
        media: MediaStore,
        preferences: Any,
        catalogue: Any,
        connectivity: Connectivity,
        concurrency: int | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.client = client
        self.keys = keys
        self.media = media
        self.preferences = preferences
        self.catalogue = catalogue
        self.connectivity = connectivity
        self.concurrency = concurrency or settings.outbox_concurrency
        self.running: dict[str, Running] = {}
        self.paused = False
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task | None = None
        self._stopping = False
        self._backlog: int | None = None
        self._backlog_at = 0.0
        self._background: set[asyncio.Task] = set()

    # -- lifecycle ---------------------------------------------------------------------------------------------
    async def start(self) -> None:
        row = await self.store.fetchone("SELECT value FROM meta WHERE key = 'outbox_paused'")
        self.paused = bool(row and row["value"] == "true")
        await self._resume_after_restart()
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

    async def backlog(self) -> int:
        """How many generations wait or run, for the outbox limit. Counted at most every few seconds and
        kept up to date in between (a soft limit: it must not cost a query on every request)."""
        if self._backlog is None or time.monotonic() - self._backlog_at > 5:
            row = await self.store.fetchone(
                "SELECT count(*) AS n FROM generations WHERE status IN ('queued', 'running')"
            )
            self._backlog = int(row["n"]) if row else 0
            self._backlog_at = time.monotonic()
        return self._backlog

    def added(self) -> None:
        if self._backlog is not None:
            self._backlog += 1

    async def set_paused(self, paused: bool) -> None:
        self.paused = paused
        await self.store.execute("INSERT OR REPLACE INTO meta VALUES ('outbox_paused', ?)",
                                 ["true" if paused else "false"])
        self.wake()

    async def _resume_after_restart(self) -> None:
        """Whatever was ``running`` when the app last stopped (or crashed) is decided here."""
        rows = await self.store.fetchall(
            "SELECT id, kind, job_id, output_text FROM generations WHERE status = 'running'"
        )
        retry_unknown = await self._retry_unknown()
        for row in rows:
            if row["kind"] == "video":
                if row["job_id"]:
                    continue  # followed again by the loop
                await self._finish(row["id"], "interrupted", error=_error(
                    "delivery_unknown",
                    "Atelier stopped while this video was being submitted, so it is unknown whether OpenRouter "
                    "started it. Retry it if it does not appear in your OpenRouter activity."))
            elif row["output_text"]:
                await self._finish(row["id"], "interrupted", error=_error(
                    "interrupted", "Atelier stopped while this answer was streaming; the text received so far "
                    "is kept. Retry to generate it again."))
            elif retry_unknown:
                await gens.update(self.store, row["id"], status="queued", next_attempt_at=None)
            else:
                await self._finish(row["id"], "interrupted", error=_error(
                    "delivery_unknown", "Atelier stopped while this request was being sent; it may or may not "
                    "have reached the model. Retry it if you still want it."))

    # -- the loop ----------------------------------------------------------------------------------------------
    async def _loop(self) -> None:
        while True:
            try:
                timeout = await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # the loop must survive anything (a full disk, a bug in one item)
                log.exception("outbox loop error")
                timeout = self.settings.probe_seconds
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.01, timeout))

    async def _tick(self) -> float:
        """One pass: probe when offline, resume video jobs, start due items. Returns how long to sleep."""
        probe = self.settings.probe_seconds
        stale = self.connectivity.checked_at is None or time.monotonic() - self.connectivity.checked_at > probe * 3
        if not self.connectivity.online or (stale and not self.running):
            self.connectivity.mark(await self.client.probe())
        if not self.connectivity.online:
            return probe
        await self._follow_videos()
        if self.paused:
            return probe * 3
        if await self.keys.get() is None:
            return probe
        free = self.concurrency - sum(1 for r in self.running.values() if r.task and not r.task.done())
        now = gens.now()
        if free > 0:
            due = await self.store.fetchall(
                "SELECT id FROM generations WHERE status = 'queued' AND (next_attempt_at IS NULL OR "
                "next_attempt_at <= ?) ORDER BY created_at LIMIT ?",
                [now, free],
            )
            for row in due:
                if row["id"] in self.running:
                    continue
                if await gens.claim(self.store, row["id"]):
                    self._spawn(row["id"])
        nxt = await self.store.fetchone(
            "SELECT min(next_attempt_at) AS t FROM generations WHERE status = 'queued' AND next_attempt_at > ?",
            [now],
        )
        if nxt and nxt["t"] is not None:
            return min(probe * 3, max(0.01, (nxt["t"] - gens.now()).total_seconds()))
        return probe * 3

    async def _follow_videos(self) -> None:
        rows = await self.store.fetchall(
            "SELECT id FROM generations WHERE kind = 'video' AND status = 'running' AND job_id IS NOT NULL"
        )
        for row in rows:
            if row["id"] not in self.running:
                self._spawn(row["id"], resume_video=True)

    def _spawn(self, gen_id: str, *, resume_video: bool = False) -> Running:
        running = self.running.get(gen_id) or Running(gen_id)
        self.running[gen_id] = running
        running.task = asyncio.create_task(self._run(running, resume_video=resume_video), name=f"gen-{gen_id}")
        return running

    # -- API entry points ------------------------------------------------------------------------------------
    async def start_now(self, gen_id: str, *, claimed: bool = False, attempt: int | None = None,
                        row: dict[str, Any] | None = None) -> Running:
        """Claim a just-queued generation (unless it was inserted ``running``, with ``attempt`` already
        recorded) and start its first attempt now (the request path)."""
        if not claimed and not await gens.claim(self.store, gen_id):
            raise RuntimeError("generation was not queued")
        running = Running(gen_id, attempt=attempt, row=row)
        self.running[gen_id] = running
        return running

    def launch(self, running: Running) -> None:
        """Start the task of a Running made by :meth:`start_now` (after the caller subscribed)."""
        running.task = asyncio.create_task(self._run(running), name=f"gen-{running.gen_id}")

    async def cancel(self, gen_id: str) -> bool:
        """Cancel a queued or running generation. False when it had already finished."""
        running = self.running.get(gen_id)
        if running is not None and running.task is not None and not running.task.done():
            running.cancel_reason = "user"
            running.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await running.task
            return True

        def run(cur: Any) -> bool:
            cur.execute(
                "UPDATE generations SET status = 'cancelled', finished_at = ?, updated_at = ?, next_attempt_at = NULL "
                "WHERE id = ? AND status IN ('queued', 'running') RETURNING id",
                [gens.now(), gens.now(), gen_id],
            )
            return cur.fetchone() is not None

        return await self.store.transaction(run)

    async def retry(self, gen_id: str) -> bool:
        """Queue a generation again now (queued, failed, interrupted or cancelled)."""

        def run(cur: Any) -> bool:
            cur.execute(
                "UPDATE generations SET status = 'queued', next_attempt_at = NULL, finished_at = NULL, error = NULL, "
                "updated_at = ? WHERE id = ? AND status IN ('queued', 'failed', 'interrupted', 'cancelled') "
                "RETURNING id",
                [gens.now(), gen_id],
            )
            return cur.fetchone() is not None

        done = await self.store.transaction(run)
        if done:
            self.connectivity.checked_at = None  # "Retry now" also re-checks reachability
            self.wake()
        return done

    async def events(self, gen_id: str) -> AsyncIterator[tuple[str, Any]]:
        """The record, then progress events, until the generation reaches a terminal status."""
        running = self.running.get(gen_id)
        queue = running.subscribe() if running is not None else None
        try:
            record = await gens.record(self.store, gen_id)
            yield "generation", record
            if record["status"] in TERMINAL:
                yield "done", record
                return
            while True:
                if queue is None:
                    await asyncio.sleep(0.5)  # queued: poll until the worker picks it up
                    record = await gens.record(self.store, gen_id)
                    if record["status"] in TERMINAL:
                        yield "done", record
                        return
                    running = self.running.get(gen_id)
                    if running is not None:
                        queue = running.subscribe()
                    continue
                try:
                    event, data = await asyncio.wait_for(queue.get(), timeout=15)
                except TimeoutError:
                    yield "ping", {}
                    continue
                if event in ("generation", "started"):
                    continue
                yield event, data
                if event in ("done", "error", "queued"):
                    if event == "queued":
                        running.unsubscribe(queue)
                        queue = None
                        continue
                    return
        finally:
            if queue is not None and running is not None:
                running.unsubscribe(queue)

    # -- one generation ------------------------------------------------------------------------------------
    async def _run(self, running: Running, *, resume_video: bool = False) -> None:
        gen_id = running.gen_id
        try:
            row, running.row = running.row or await gens.get_row(self.store, gen_id), None
            if row["kind"] == "video":
                if resume_video:
                    running.started.set()
                    await self._poll_video(running, row)
                else:
                    await self._submit_video(running, row)
            else:
                await self._chat_attempt(running, row)
        except asyncio.CancelledError:
            if running.cancel_reason != "shutdown":
                raise
        except Exception as exc:
            storage = is_storage_failure(exc)
            if storage:
                log.error("generation %s could not be saved: %s", gen_id, exc)
                error = _error("storage_error", "Atelier could not save this generation (the disk may be full or "
                               "read-only). Free some space, then retry it.")
            else:
                log.exception("generation %s failed unexpectedly", gen_id)
                error = _error("internal_error", "Something went wrong inside Atelier while handling this "
                               "generation. Retry it; details are in the log file.")
            try:
                await self._finish(gen_id, "failed", error=error)
                running.publish("error", {"error": error, "generation": await gens.record(self.store, gen_id)})
            except Exception:
                # The disk is still refusing writes: keep trying in the background so the item does not stay
                # "running" until the next start.
                running.publish("error", {"error": error, "generation": None})
                task = asyncio.create_task(self._record_failure_later(gen_id, error))
                self._background.add(task)  # keep a reference until it is done
                task.add_done_callback(self._background.discard)
        finally:
            running.started.set()
            if self.running.get(gen_id) is running:
                del self.running[gen_id]
            if not self._stopping:
                self.wake()

    async def _record_failure_later(self, gen_id: str, error: dict[str, Any]) -> None:
        for _ in range(120):
            await asyncio.sleep(self.settings.probe_seconds)
            try:
                await self._finish(gen_id, "failed", error=error)
                return
            except Exception:  # noqa: S112 - still failing; try again
                continue

    async def _key_or_requeue(self, running: Running) -> str | None:
        key = await self.keys.get()
        if key is None:
            if running.attempt is not None:  # recorded with the row, but nothing was sent
                await gens.end_attempt(self.store, running.gen_id, running.attempt, outcome="no_key",
                                       error_code="no_api_key")
                running.attempt = None
            await gens.update(self.store, running.gen_id, status="queued", error=_error(
                "no_api_key", "No OpenRouter key is set. Add one in Settings; this request will then be sent."))
            await self._publish_final(running, "queued")
        return key

    async def _chat_attempt(self, running: Running, row: dict[str, Any]) -> None:
        gen_id = running.gen_id
        key = await self._key_or_requeue(running)
        if key is None:
            return
        number = await running.begin_attempt(self.store)
        body = await self._chat_body(row)
        text: list[str] = []
        reasoning: list[str] = []
        images: list[str] = []
        usage: Usage | None = None
        upstream_id = None
        upstream_model = None
        flushed_len = 0
        last_flush = time.monotonic()
        try:
            if row["stream"]:
                async with contextlib.aclosing(self.client.chat_stream(key, body)) as events:
                    async for event in events:
                        if isinstance(event, StreamStarted):
                            # Tell listeners first; upstream_id is saved with the first flush (off the path to
                            # the first token).
                            upstream_id, upstream_model = event.upstream_id, event.model
                            self.connectivity.mark(True)
                            running.started.set()
                            running.publish("started", {"upstream_id": upstream_id})
                            last_flush = 0.0
                        elif isinstance(event, TextDelta):
                            text.append(event.text)
                            running.publish("delta", {"text": event.text})
                        elif isinstance(event, ReasoningDelta):
                            reasoning.append(event.text)
                            running.publish("reasoning", {"text": event.text})
                        elif isinstance(event, ImageDelta):
                            images.append(event.data_url)
                        elif isinstance(event, StreamFinished):
                            usage = event.usage
                            upstream_model = event.model or upstream_model
                        elif isinstance(event, KeepAlive):
                            running.publish("keepalive", {})
                        if time.monotonic() - last_flush >= FLUSH_SECONDS and len("".join(text)) != flushed_len:
                            joined = "".join(text)
                            await gens.update(self.store, gen_id, output_text=joined, upstream_id=upstream_id,
                                              reasoning_text="".join(reasoning) or None)
                            flushed_len = len(joined)
                            last_flush = time.monotonic()
            else:
                result = await self.client.chat(key, body)
                self.connectivity.mark(True)
                running.started.set()
                text = [result.text]
                reasoning = [result.reasoning] if result.reasoning else []
                images = list(result.images)
                usage = result.usage
                upstream_id, upstream_model = result.upstream_id, result.model
        except UpstreamError as exc:
            await self._attempt_failed(running, row, number, exc, partial="".join(text) or exc.partial_text,
                                       reasoning="".join(reasoning) or None)
            return
        except asyncio.CancelledError:
            partial = "".join(text)
            if running.cancel_reason == "shutdown":
                await gens.end_attempt(self.store, gen_id, number, outcome="shutdown")
                if partial:
                    await self._finish(gen_id, "interrupted", output_text=partial, error=_error(
                        "interrupted", "Atelier was closed while this answer was streaming; the text received so "
                        "far is kept."))
                else:
                    await gens.update(self.store, gen_id, status="queued", next_attempt_at=None)
                raise
            await gens.end_attempt(self.store, gen_id, number, outcome="cancelled")
            await self._finish(gen_id, "cancelled", output_text=partial or None,
                               reasoning_text="".join(reasoning) or None)
            await self._publish_final(running, "done")
            return

        output = "".join(text)
        saved: list[str] = []
        if images:
            try:
                saved = await self._store_images(gen_id, images)
            except MediaError as exc:
                await gens.end_attempt(self.store, gen_id, number, outcome="rejected", error_code=exc.code,
                                       error_message=str(exc))
                code = {"too_large": "media_too_large", "disk_full": "storage_error",
                        "io_error": "storage_error"}.get(exc.code, "bad_media")
                await self._finish(gen_id, "failed", output_text=output or None, error=_error(code, str(exc)),
                                   usage=usage, upstream_id=upstream_id, upstream_model=upstream_model)
                await self._publish_final(running, "error")
                return
        if row["kind"] == "image" and not saved:
            await gens.end_attempt(self.store, gen_id, number, outcome="rejected", error_code="no_image_output")
            await self._finish(gen_id, "failed", output_text=output or None, usage=usage, upstream_id=upstream_id,
                               upstream_model=upstream_model, error=_error(
                                   "no_image_output", f"The model '{row['model']}' answered with text only. Pick a "
                                   "model that outputs images (the picker lists them)."))
            await self._publish_final(running, "error")
            return
        await gens.end_attempt(self.store, gen_id, number, outcome="succeeded", http_status=200)
        await self._finish(gen_id, "succeeded", output_text=output, reasoning_text="".join(reasoning) or None,
                           usage=usage, upstream_id=upstream_id, upstream_model=upstream_model, error=None)
        await self._publish_final(running, "done")

    async def _attempt_failed(self, running: Running, row: dict[str, Any], number: int, exc: UpstreamError, *,
                              partial: str, reasoning: str | None) -> None:
        gen_id = running.gen_id
        outcome = {"retry": "retry", "reject": "rejected", "unknown": "unknown"}[exc.disposition]
        if exc.output_started:
            outcome = "interrupted"
        await gens.end_attempt(self.store, gen_id, number, outcome=outcome, http_status=exc.upstream_status,
                               error_code=exc.code, error_message=exc.message)
        error = _error(exc.code, exc.message, upstream_status=exc.upstream_status,
                       retry_after=exc.retry_after)
        if exc.code in ("network",) or (exc.code == "timeout" and exc.upstream_status is None
                                          and exc.disposition == "retry"):
            self.connectivity.mark(False)
        elif exc.upstream_status is not None:
            self.connectivity.mark(True)
        # A failure that came with usage was billed (e.g. an in-band error with tokens and cost): record it.
        if exc.output_started or (partial and exc.disposition != "retry"):
            await self._finish(gen_id, "interrupted", output_text=partial or None, reasoning_text=reasoning,
                               error=error, usage=exc.usage)
            await self._publish_final(running, "error")
            return
        retry = exc.disposition == "retry" or (
            exc.disposition == "unknown" and row["kind"] in ("text", "image") and await self._retry_unknown()
        )
        if retry and await gens.counted_attempts(self.store, gen_id) >= self.settings.max_attempts:
            error["message"] += f" Gave up after {self.settings.max_attempts} attempts; retry it when you like."
            retry = False
        if retry:
            offline = not self.connectivity.online
            delay = 0.0 if offline and exc.retry_after is None else backoff_seconds(
                await gens.counted_attempts(self.store, gen_id), base=self.settings.retry_base_seconds,
                cap=self.settings.retry_max_seconds, retry_after=exc.retry_after)
            next_at = gens.now() + timedelta(seconds=delay)
            error["retryable"] = True
            await gens.update(self.store, gen_id, status="queued", next_attempt_at=next_at, error=error,
                              **await self._usage_totals(gen_id, exc.usage))
            await self._publish_final(running, "queued")
            return
        status = "interrupted" if exc.disposition == "unknown" else "failed"
        await self._finish(gen_id, status, error=error, usage=exc.usage)
        await self._publish_final(running, "error")

    async def _publish_final(self, running: Running, event: str) -> None:
        record = await gens.record(self.store, running.gen_id, with_attempts=False)
        if event == "error" or (event == "queued"):
            running.publish(event, {"error": record["error"], "generation": record})
        else:
            running.publish(event, record)
        running.started.set()

    async def _finish(self, gen_id: str, status: str, *, usage: Usage | None = None, **changes: Any) -> None:
        changes.update(await self._usage_totals(gen_id, usage))
        await gens.update(self.store, gen_id, status=status, finished_at=gens.now(), next_attempt_at=None, **changes)

    async def _usage_totals(self, gen_id: str, usage: Usage | None) -> dict[str, Any]:
        """The generation's usage columns with ``usage`` added: every attempt OpenRouter billed (a failure
        that reported usage, then the retry that succeeded) counts in what the generation cost."""
        if usage is None:
            return {}
        row = await self.store.fetchone(
            "SELECT prompt_tokens, completion_tokens, cost_usd FROM generations WHERE id = ?", [gen_id])
        before = row or {}

        def plus(name: str, value: Any) -> Any:
            if value is None:
                return before.get(name)
            return value if before.get(name) is None else before[name] + value

        return {"prompt_tokens": plus("prompt_tokens", usage.prompt_tokens),
                "completion_tokens": plus("completion_tokens", usage.completion_tokens),
                "cost_usd": plus("cost_usd", usage.cost_usd)}

    async def _retry_unknown(self) -> bool:
        try:
            return bool(await self.preferences.get("retry_unknown_text"))
        except Exception:
            return bool(self.settings.retry_unknown_text)

    # -- request bodies ----------------------------------------------------------------------------------------
    async def _input_data_urls(self, row: dict[str, Any]) -> list[str]:
        ids = json.loads(row["input_asset_ids"] or "[]")
        if not ids:
            return []
        placeholders = ", ".join("?" for _ in ids)
        rows = await self.store.fetchall(
            f"SELECT id, mime, sha256 FROM assets WHERE id IN ({placeholders})", ids  # noqa: S608
        )
        by_id = {r["id"]: r for r in rows}
        urls = []
        for asset_id in ids:
            asset = by_id.get(asset_id)
            if asset is None:
                continue
            data = await asyncio.to_thread(self.media.path_for(asset["sha256"]).read_bytes)
            urls.append(encode_data_url(asset["mime"], data))
        return urls

    async def _chat_body(self, row: dict[str, Any]) -> dict[str, Any]:
        params = json.loads(row["params"] or "{}")
        messages: list[dict[str, Any]] = []
        if row["system"]:
            messages.append({"role": "system", "content": row["system"]})
        images = await self._input_data_urls(row)
        if images:
            content: Any = [{"type": "text", "text": row["prompt"]}] + [
                {"type": "image_url", "image_url": {"url": url}} for url in images
            ]
        else:
            content = row["prompt"]
        messages.append({"role": "user", "content": content})
        body: dict[str, Any] = {"model": row["model"], "messages": messages}
        for name in ("temperature", "top_p", "seed", "max_tokens", "stop", "frequency_penalty", "presence_penalty",
                     "reasoning"):
            if name in params:
                body[name] = params[name]
        if row["kind"] == "text" and "max_tokens" not in body:
            # An explicit cap avoids OpenRouter's credit pre-check against the model's maximum output.
            body["max_tokens"] = await self.preferences.get("default_max_tokens")
        if row["kind"] == "image":
            model = await self.catalogue.get_model(row["model"], "image") if self.catalogue else None
            outputs = (model or {}).get("output_modalities") or ["image", "text"]
            body["modalities"] = ["image", "text"] if "text" in outputs else ["image"]
            image_config = {k: params[k] for k in ("aspect_ratio", "image_size") if k in params}
            if image_config:
                body["image_config"] = image_config
        return body

    async def _store_images(self, gen_id: str, data_urls: list[str]) -> list[str]:
        """Decode, store and record output images. All are checked before any row is written."""
        infos = []
        for url in data_urls:
            mime, data = decode_data_url(url, max_bytes=self.settings.max_media_bytes)
            infos.append(await asyncio.to_thread(self.media.put_bytes, data, mime))
        return await self._record_assets(gen_id, infos)

    async def _record_assets(self, gen_id: str, infos: list[Any]) -> list[str]:
        rows = []
        ts = gens.now()

        def write(cur: Any) -> None:
            for position, info in enumerate(infos):
                asset_id = gens.new_id()
                cur.execute(
                    "INSERT INTO assets (id, generation_id, role, kind, mime, bytes, sha256, width, height, "
                    "duration_s, thumb_sha256, position, created_at) "
                    "VALUES (?, ?, 'output', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [asset_id, gen_id, info.kind, info.mime, info.bytes, info.sha256, info.width, info.height,
                     info.duration_s, info.thumb_sha256, position, ts],
                )
                rows.append(asset_id)

        await self.store.transaction(write)
        return rows

    # -- video ---------------------------------------------------------------------------------------------------
    async def _video_body(self, row: dict[str, Any]) -> dict[str, Any]:
        params = json.loads(row["params"] or "{}")
        body: dict[str, Any] = {"model": row["model"], "prompt": row["prompt"]}
        for name in ("duration", "resolution", "aspect_ratio", "size", "generate_audio", "seed"):
            if name in params:
                body[name] = params[name]
        frames = await self._input_data_urls(row)
        if frames:
            kinds = ["first_frame", "last_frame"]
            body["frame_images"] = [
                {"type": "image_url", "image_url": {"url": url}, "frame_type": kinds[min(i, 1)]}
                for i, url in enumerate(frames[:2])
            ]
        return body

    async def _submit_video(self, running: Running, row: dict[str, Any]) -> None:
        gen_id = running.gen_id
        key = await self._key_or_requeue(running)
        if key is None:
            return
        number = await running.begin_attempt(self.store)
        try:
            job = await self.client.submit_video(key, await self._video_body(row))
        except UpstreamError as exc:
            await self._attempt_failed(running, row, number, exc, partial="", reasoning=None)
            return
        except asyncio.CancelledError:
            # Cancelled while the submission was on the wire: whether the job exists is unknown.
            await gens.end_attempt(self.store, gen_id, number, outcome="unknown")
            await self._finish(gen_id, "interrupted" if running.cancel_reason == "shutdown" else "cancelled",
                               error=_error("delivery_unknown", "The video submission was stopped midway; it is "
                                            "unknown whether OpenRouter started it."))
            raise
        self.connectivity.mark(True)
        await gens.update(self.store, gen_id, job_id=job["id"], polling_url=job.get("polling_url"),
                          upstream_id=job.get("generation_id"))
        await gens.end_attempt(self.store, gen_id, number, outcome="submitted", http_status=202)
        running.started.set()
        record = await gens.record(self.store, gen_id, with_attempts=False)
        running.publish("progress", {"status": job.get("status", "pending"), "generation": record})
        await self._poll_video(running, await gens.get_row(self.store, gen_id))

    async def _poll_video(self, running: Running, row: dict[str, Any]) -> None:
        gen_id = running.gen_id
        interval = self.settings.video_poll_seconds
        failures = 0
        while True:
            try:
                await asyncio.sleep(interval)
            except asyncio.CancelledError:
                if running.cancel_reason == "user":
                    await self._finish(gen_id, "cancelled", error=_error(
                        "cancelled", "Stopped following this video. OpenRouter has no way to cancel a video job, "
                        "so it may still finish (and be billed) there."))
                    await self._publish_final(running, "done")
                    return
                raise
            key = await self.keys.get()
            if key is None:
                continue
            try:
                info = await self.client.get_video(key, row["job_id"], row["polling_url"])
            except UpstreamError as exc:
                if exc.disposition == "reject" and exc.upstream_status in (401, 403, 404):
                    failures += 1
                    if exc.upstream_status == 404 or failures >= 5:
                        await self._finish(gen_id, "failed", error=_error(exc.code, exc.message,
                                                                          upstream_status=exc.upstream_status))
                        await self._publish_final(running, "error")
                        return
                elif exc.code == "network":
                    self.connectivity.mark(False)
                interval = min(self.settings.retry_max_seconds, max(self.settings.video_poll_seconds, interval * 1.5))
                continue
            self.connectivity.mark(True)
            interval = self.settings.video_poll_seconds
            status = str(info.get("status", "")).lower()
            if status in VIDEO_DONE:
                await self._download_video(running, row, key, info)
                return
            if status in VIDEO_FAILED:
                message = info.get("error") if isinstance(info.get("error"), str) else None
                texts = {"expired": "The video job expired at OpenRouter before it finished.",
                         "cancelled": "The video job was cancelled at OpenRouter."}
                await self._finish(gen_id, "failed", error=_error(
                    f"video_{status}", message or texts.get(status, "OpenRouter reports that the video failed.")),
                    cost_usd=_cost(info))
                await self._publish_final(running, "error")
                return
            running.publish("progress", {"status": status or "pending"})

    async def _download_video(self, running: Running, row: dict[str, Any], key: str, info: dict[str, Any]) -> None:
        gen_id = running.gen_id
        urls = info.get("unsigned_urls") or []
        if not urls:
            base = row["polling_url"] or f"videos/{row['job_id']}"
            urls = [base.rstrip("/") + "/content?index=0"]
        infos = []
        for url in urls:
            for attempt in range(3):
                writer = self.media.open_writer(None)
                try:
                    async for chunk in self.client.download(key, url, max_bytes=self.settings.max_media_bytes):
                        await asyncio.to_thread(writer.write, chunk)
                    infos.append(await asyncio.to_thread(writer.commit))
                    break
                except UpstreamError as exc:
                    writer.abort()
                    if exc.disposition == "reject" or attempt == 2:
                        await self._finish(gen_id, "failed", error=_error(
                            "download_failed", f"The video finished but could not be downloaded: {exc.message}"),
                            cost_usd=_cost(info))
                        await self._publish_final(running, "error")
                        return
                    await asyncio.sleep(min(30, self.settings.retry_base_seconds * (2 ** attempt)))
                except MediaError as exc:
                    writer.abort()
                    code = "storage_error" if exc.code in ("disk_full", "io_error") else "bad_media"
                    await self._finish(gen_id, "failed", error=_error(code, str(exc)), cost_usd=_cost(info))
                    await self._publish_final(running, "error")
                    return
                except BaseException:
                    writer.abort()
                    raise
        await self._record_assets(gen_id, infos)
        await self._finish(gen_id, "succeeded", cost_usd=_cost(info), error=None,
                           upstream_id=info.get("generation_id") or row["upstream_id"])
        await self._publish_final(running, "done")


def _cost(info: dict[str, Any]) -> float | None:
    usage = info.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("cost"), int | float):
        return float(usage["cost"])
    return None


def _error(code: str, message: str, **extra: Any) -> dict[str, Any]:
    out = {"code": code, "message": message}
    out.update({k: v for k, v in extra.items() if v is not None})
    return out
