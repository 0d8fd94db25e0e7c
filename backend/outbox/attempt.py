"""What every attempt shares, whatever its kind: the services it uses, the checks before sending, and the
rules for how a failed attempt ends (retry with backoff, reject, unknown delivery)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from backend.core.errors import error_dict
from backend.core.policy import Policy
from backend.core.preferences import Preferences
from backend.core.settings import Settings
from backend.core.vocabulary import Kind, Status
from backend.db import attempts as attempts_db
from backend.db import generations as gens
from backend.db import outcomes
from backend.db.store import Store
from backend.keys.credentials import Credentials
from backend.media.store import MediaStore
from backend.openrouter import OpenRouterClient, UpstreamError, Usage
from backend.openrouter.classification import gave_up_message
from backend.outbox.backoff import Uniform, backoff_seconds
from backend.outbox.connectivity import Connectivity
from backend.outbox.events import Running
from backend.services.admission import send_refusal
from backend.services.catalogue import Catalogue
from backend.services.request_body import RequestBodies

REJECT_CODES = frozenset(
    {"invalid_key", "insufficient_credits", "content_blocked", "model_not_found", "context_too_long", "bad_request",
     "key_limit_reached", "spend_limit_reached", "privacy_restricted"}
)
#: A request whose delivery was unknown this many times is not sent again automatically (a crash loop must
#: never bill a request without limit).
MAX_UNKNOWN_DELIVERIES = 2


@dataclass
class OutboxServices:
    """The services the outbox works with (built once by the composition root)."""

    store: Store
    settings: Settings
    client: OpenRouterClient
    keys: Credentials
    media: MediaStore
    preferences: Preferences
    catalogue: Catalogue | None
    connectivity: Connectivity
    policy: Policy | None = None
    rng: Uniform | None = None  # None: the random module; tests inject their own

    def __post_init__(self) -> None:
        self.bodies = RequestBodies(store=self.store, media=self.media, preferences=self.preferences,
                                    catalogue=self.catalogue)


class AttemptRules:
    """Begins and ends attempts; decides what a failure means for the generation."""

    def __init__(self, services: OutboxServices) -> None:
        self.s = services

    async def retry_unknown(self) -> bool:
        """Whether text/image requests with unknown delivery may be sent again (a user setting)."""
        try:
            return bool(await self.s.preferences.get("retry_unknown_text"))
        except Exception:
            return bool(self.s.settings.retry_unknown_text)

    async def finish(self, gen_id: str, status: str, *, usage: Usage | None = None,
                     from_statuses: tuple[str, ...] = (Status.RUNNING,), **changes: Any) -> bool:
        """End a generation in ``status`` unless it left ``from_statuses`` meanwhile (a user cancel)."""
        return await outcomes.conclude(self.s.store, gen_id, status=status, from_statuses=from_statuses,
                                       usage=usage, outputs=False, finished_at=gens.now(), next_attempt_at=None,
                                       **changes) is not None

    async def end(self, running: Running, event: str, status: str, *, attempt: dict[str, Any] | None,
                  usage: Usage | None = None, from_statuses: tuple[str, ...] = (Status.RUNNING,),
                  outputs: bool = True, **changes: Any) -> None:
        """Close the attempt, move the generation to ``status`` and tell the listeners (``event``), in one
        transaction with no read before it; after it, only the record's files are read (``outputs``), or the
        whole record when a user's cancel got there first. A terminal ``status`` sets ``finished_at`` and
        clears ``next_attempt_at``; ``queued`` gets them from ``changes``."""
        if status != Status.QUEUED:
            changes = {"finished_at": gens.now(), "next_attempt_at": None, **changes}
        record = await outcomes.conclude(self.s.store, running.gen_id, status=status, from_statuses=from_statuses,
                                         attempt=attempt, usage=usage, outputs=outputs, **changes)
        await self.publish_final(running, event, record)

    async def publish_final(self, running: Running, event: str, record: dict[str, Any] | None = None) -> None:
        if record is None:
            record = await gens.record(self.s.store, running.gen_id, with_attempts=False)
        if event in ("error", "queued"):
            running.publish(event, {"error": record["error"], "generation": record})
        else:
            running.publish(event, record)
        running.started.set()

    async def key_or_requeue(self, running: Running) -> str | None:
        """The key, or None after putting the generation back in the queue until a key is set."""
        key = await self.s.keys.get()
        if key is None:
            attempt = None
            if running.attempt is not None:  # recorded with the row, but nothing was sent
                attempt = dict(number=running.attempt, outcome="no_key", error_code="no_api_key")
                running.attempt = None
            await self.end(running, "queued", Status.QUEUED, attempt=attempt, error=error_dict(
                "no_api_key", "No OpenRouter key is set. Add one in Settings; this request will then be sent."))
        return key

    async def begin(self, running: Running, row: dict[str, Any]) -> tuple[str, int] | None:
        """Right before sending: policy and budget, then the key, then the attempt row (written before anything
        is sent, so a crash after this point is closed as ``unknown``). Returns ``(key, attempt number)``, or
        None when the generation was failed or put back in the queue instead."""
        if await self.refused(running, row):
            return None
        key = await self.key_or_requeue(running)
        if key is None:
            return None
        return key, await running.begin_attempt(self.s.store)

    async def refused(self, running: Running, row: dict[str, Any]) -> bool:
        """Policy and budget, checked right before sending: True (and the generation failed, nothing sent)
        when they no longer allow it. The request path checked them a moment ago, so it skips this."""
        if running.attempt is not None:
            return False
        refusal = await send_refusal(store=self.s.store, policy=self.s.policy, preferences=self.s.preferences,
                                     model=row["model"])
        if refusal is None:
            return False
        await self.end(running, "error", Status.FAILED, attempt=None,
                       error=error_dict(refusal.code, refusal.message))
        return True

    async def failed(self, running: Running, row: dict[str, Any], number: int, exc: UpstreamError, *,
                     partial: str, reasoning: str | None, upstream_id: str | None = None) -> None:
        """An attempt ended with an upstream error: retry later, keep partial output, or fail. ``upstream_id``
        (OpenRouter's id of a stream that had started) is kept with partial output: its cost is looked up later."""
        s = self.s
        gen_id = running.gen_id
        outcome = {"retry": "retry", "reject": "rejected", "unknown": attempts_db.UNKNOWN}[exc.disposition]
        if exc.output_started:
            outcome = "interrupted"
        attempt: dict[str, Any] | None = dict(number=number, outcome=outcome, http_status=exc.upstream_status,
                                              error_code=exc.code, error_message=exc.message)
        err = error_dict(exc.code, exc.message, upstream_status=exc.upstream_status, retry_after=exc.retry_after)
        if exc.code == "network" or (exc.code == "timeout" and exc.upstream_status is None
                                     and exc.disposition == "retry"):
            s.connectivity.mark(False)
        elif exc.upstream_status is not None:
            s.connectivity.mark(True)
        # A failure that came with usage was billed (e.g. an in-band error with tokens and cost): record it.
        if exc.output_started or (partial and exc.disposition != "retry"):
            ids = {"upstream_id": upstream_id} if upstream_id else {}
            await self.end(running, "error", Status.INTERRUPTED, attempt=attempt, usage=exc.usage,
                           output_text=partial or None, reasoning_text=reasoning, error=err, **ids)
            return
        # Whether to send it again is decided from the attempts as closed, this one included.
        await attempts_db.end(s.store, generation_id=gen_id, **attempt)
        attempt = None
        retry = exc.disposition == "retry" or (
            exc.disposition == "unknown" and row["kind"] in (Kind.TEXT, Kind.IMAGE) and await self.retry_unknown()
            and await attempts_db.unknown_deliveries(s.store, generation_id=gen_id) < MAX_UNKNOWN_DELIVERIES
        )
        counted = await attempts_db.counted(s.store, generation_id=gen_id) if retry else 0
        if retry and counted >= s.settings.max_attempts:
            err["message"] = gave_up_message(err["message"], s.settings.max_attempts)
            retry = False
        if retry:
            offline = not s.connectivity.online
            delay = 0.0 if offline and exc.retry_after is None else backoff_seconds(
                counted, base=s.settings.retry_base_seconds, cap=s.settings.retry_max_seconds,
                retry_after=exc.retry_after, rng=s.rng)
            err["retryable"] = True
            await self.end(running, "queued", Status.QUEUED, attempt=attempt, usage=exc.usage,
                           next_attempt_at=gens.now() + timedelta(seconds=delay), error=err)
            return
        await self.end(running, "error", Status.INTERRUPTED if exc.disposition == "unknown" else Status.FAILED,
                       attempt=attempt, usage=exc.usage, error=err)
