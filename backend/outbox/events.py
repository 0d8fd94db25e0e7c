"""An attempt in progress and the listeners that follow it (a small in-process pub/sub)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from backend.db import attempts as attempts_db
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
