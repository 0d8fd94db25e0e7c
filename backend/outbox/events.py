"""An attempt in progress and the listeners that follow it (a small in-process pub/sub)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from backend.core.vocabulary import TERMINAL
from backend.db import attempts as attempts_db
from backend.db import generations as gens
from backend.db.store import Store


class Event(StrEnum):
    """What an attempt tells its listeners, and the SSE event names they are relayed under (docs/api.md).

    A vocabulary of its own: ``queued`` here means "this attempt ended and the generation waits to be sent
    again"; a generation's status is :class:`backend.core.vocabulary.Status`."""

    GENERATION = "generation"  # the record, first
    STARTED = "started"  # OpenRouter began answering
    DELTA = "delta"
    REASONING = "reasoning"
    PROGRESS = "progress"  # a video job's status
    KEEPALIVE = "keepalive"
    PING = "ping"  # nothing happened for a while (followers)
    DONE = "done"  # final: the record
    ERROR = "error"  # final: {"error", "generation"}
    QUEUED = "queued"  # final for this attempt: {"error", "generation"}


#: The events after which an attempt publishes nothing more.
FINAL = frozenset({Event.DONE, Event.ERROR, Event.QUEUED})


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
        return number if number is not None else await attempts_db.begin(store, generation_id=self.gen_id)

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


async def follow(store: Store, running_now: dict[str, Running], gen_id: str) -> AsyncIterator[tuple[str, Any]]:
    """The record, then progress events, until the generation reaches a terminal status. While it waits in
    the queue the record is polled; once an attempt runs, its events are relayed."""
    running = running_now.get(gen_id)
    queue = running.subscribe() if running is not None else None
    try:
        record = await gens.record(store, gen_id)
        yield Event.GENERATION, record
        if record["status"] in TERMINAL:
            yield Event.DONE, record
            return
        while True:
            if queue is None:
                await asyncio.sleep(0.5)  # queued: poll until the worker picks it up
                record = await gens.record(store, gen_id)
                if record["status"] in TERMINAL:
                    yield Event.DONE, record
                    return
                running = running_now.get(gen_id)
                if running is not None:
                    queue = running.subscribe()
                continue
            try:
                event, data = await asyncio.wait_for(queue.get(), timeout=15)
            except TimeoutError:
                yield Event.PING, {}
                continue
            if event in (Event.GENERATION, Event.STARTED):
                continue
            yield event, data
            if event in FINAL:
                if event == Event.QUEUED:
                    running.unsubscribe(queue)
                    queue = None
                    continue
                return
    finally:
        if queue is not None and running is not None:
            running.unsubscribe(queue)
