"""Video generations: submit the job, follow it (across restarts) and download the result.

OpenRouter has no idempotency key and no way to list jobs, so a submission is never repeated automatically:
the attempt is recorded before the request goes out, and the job id is saved the moment OpenRouter answers.
"""

from __future__ import annotations

import asyncio
from typing import Any

from backend.core.errors import error_dict
from backend.core.vocabulary import Status
from backend.db import assets as assets_db
from backend.db import attempts as attempts_db
from backend.db import generations as gens
from backend.media import MediaError
from backend.openrouter import UpstreamError
from backend.outbox.attempt import AttemptRules
from backend.outbox.events import Event, Running

VIDEO_DONE = {"completed", "succeeded"}
VIDEO_FAILED = {"failed", "cancelled", "canceled", "expired", "dead", "error"}


def job_cost(info: dict[str, Any]) -> float | None:
    usage = info.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("cost"), int | float):
        return float(usage["cost"])
    return None


class VideoAttempt:
    """Submits a video job, polls it and downloads the files."""

    def __init__(self, rules: AttemptRules) -> None:
        self.rules = rules
        self.s = rules.s

    async def submit(self, running: Running, row: dict[str, Any]) -> None:
        s, rules = self.s, self.rules
        gen_id = running.gen_id
        # The attempt row, without an outcome, marks the submission as pending: after a crash it is closed as
        # unknown and the generation becomes interrupted, never submitted (and billed) again.
        started = await rules.begin(running, row)
        if started is None:
            return
        key, number = started
        try:
            job = await s.client.submit_video(key, await s.bodies.video(row))
        except UpstreamError as exc:
            await rules.failed(running, row, number, exc, partial="", reasoning=None)
            return
        except asyncio.CancelledError:
            # Cancelled while the submission was on the wire: whether the job exists is unknown.
            await attempts_db.end(s.store, generation_id=gen_id, number=number, outcome=attempts_db.UNKNOWN)
            await rules.finish(gen_id, Status.INTERRUPTED if running.cancel_reason == "shutdown" else Status.CANCELLED,
                               from_statuses=(Status.RUNNING, Status.CANCELLED), error=error_dict(
                                   "delivery_unknown", "The video submission was stopped midway; it is unknown "
                                   "whether OpenRouter started it."))
            raise
        # Saved first and shielded from cancellation: the job is paid for, and without its id it is lost.
        await asyncio.shield(gens.save_video_job(
            s.store, gen_id, attempt=number, job_id=job["id"], polling_url=job.get("polling_url"),
            upstream_id=job.get("generation_id")))
        s.connectivity.mark(True)
        running.started.set()
        record = await gens.record(s.store, gen_id, with_attempts=False)
        running.publish(Event.PROGRESS, {"status": job.get("status", "pending"), "generation": record})
        await self.poll(running, await gens.get_row(s.store, gen_id))

    async def poll(self, running: Running, row: dict[str, Any]) -> None:
        """Follow a submitted job until it finishes (also after a restart)."""
        s, rules = self.s, self.rules
        gen_id = running.gen_id
        interval = s.settings.video_poll_seconds
        failures = 0
        while True:
            try:
                await asyncio.sleep(interval)
            except asyncio.CancelledError:
                if running.cancel_reason == "user":
                    await rules.finish(gen_id, Status.CANCELLED, from_statuses=(Status.RUNNING, Status.CANCELLED),
                                       error=error_dict("cancelled", "Stopped following this video. OpenRouter has no "
                                                        "way to cancel a video job, so it may still finish (and "
                                                        "be billed) there."))
                    await rules.publish_final(running, Event.DONE)
                    return
                raise
            key = await s.keys.get()
            if key is None:
                continue
            try:
                info = await s.client.get_video(key, row["job_id"], row["polling_url"])
            except UpstreamError as exc:
                if exc.disposition == "reject" and exc.upstream_status in (401, 403, 404):
                    failures += 1
                    if exc.upstream_status == 404 or failures >= 5:
                        await rules.finish(gen_id, Status.FAILED, error=error_dict(exc.code, exc.message,
                                                                         upstream_status=exc.upstream_status))
                        await rules.publish_final(running, Event.ERROR)
                        return
                elif exc.code == "network":
                    s.connectivity.mark(False)
                interval = min(s.settings.retry_max_seconds, max(s.settings.video_poll_seconds, interval * 1.5))
                continue
            s.connectivity.mark(True)
            interval = s.settings.video_poll_seconds
            status = str(info.get("status", "")).lower()
            if status in VIDEO_DONE:
                await self._download(running, row, key, info)
                return
            if status in VIDEO_FAILED:
                message = info.get("error") if isinstance(info.get("error"), str) else None
                texts = {"expired": "The video job expired at OpenRouter before it finished.",
                         "cancelled": "The video job was cancelled at OpenRouter."}
                await rules.finish(gen_id, Status.FAILED, error=error_dict(
                    f"video_{status}", message or texts.get(status, "OpenRouter reports that the video failed.")),
                    cost_usd=job_cost(info))
                await rules.publish_final(running, Event.ERROR)
                return
            running.publish(Event.PROGRESS, {"status": status or "pending"})

    async def _download(self, running: Running, row: dict[str, Any], key: str, info: dict[str, Any]) -> None:
        s, rules = self.s, self.rules
        gen_id = running.gen_id
        urls = info.get("unsigned_urls") or []
        if not urls:
            base = row["polling_url"] or f"videos/{row['job_id']}"
            urls = [base.rstrip("/") + "/content?index=0"]
        infos = []
        for url in urls:
            for attempt in range(3):
                writer = s.media.open_writer(None)
                try:
                    async for chunk in s.client.download(key, url, max_bytes=s.settings.max_media_bytes):
                        await asyncio.to_thread(writer.write, chunk)
                    infos.append(await asyncio.to_thread(writer.commit))
                    break
                except UpstreamError as exc:
                    writer.abort()
                    if exc.disposition == "reject" or attempt == 2:
                        await rules.finish(gen_id, Status.FAILED, error=error_dict(
                            "download_failed", f"The video finished but could not be downloaded: {exc.message}"),
                            cost_usd=job_cost(info))
                        await rules.publish_final(running, Event.ERROR)
                        return
                    await asyncio.sleep(min(30, s.settings.retry_base_seconds * (2 ** attempt)))
                except MediaError as exc:
                    writer.abort()
                    code = "storage_error" if exc.code in ("disk_full", "io_error") else "bad_media"
                    await rules.finish(gen_id, Status.FAILED, error=error_dict(code, str(exc)), cost_usd=job_cost(info))
                    await rules.publish_final(running, Event.ERROR)
                    return
                except BaseException:
                    writer.abort()
                    raise
        await assets_db.add_outputs(s.store, generation_id=gen_id, infos=infos)
        await rules.finish(gen_id, Status.SUCCEEDED, cost_usd=job_cost(info), error=None,
                           upstream_id=info.get("generation_id") or row["upstream_id"])
        await rules.publish_final(running, Event.DONE)

