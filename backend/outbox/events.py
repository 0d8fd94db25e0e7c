"""An attempt in progress and the listeners that follow it (a small in-process pub/sub)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from backend.core.vocabulary import TERMINAL
from backend.db import attempts as attempts_db
from backend.db import generations as gens
from backend.db.store import Store


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
        yield "generation", record
        if record["status"] in TERMINAL:
            yield "done", record
            return
        while True:
            if queue is None:
                await asyncio.sleep(0.5)  # queued: poll until the worker picks it up
                record = await gens.record(store, gen_id)
                if record["status"] in TERMINAL:
                    yield "done", record
                    return
                running = running_now.get(gen_id)
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
