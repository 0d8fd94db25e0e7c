"""How long a generation waits before its next attempt."""

from __future__ import annotations

import random
from typing import Protocol


class Uniform(Protocol):
    """The part of :class:`random.Random` backoff uses (tests inject a seeded or scripted one)."""

    def uniform(self, a: float, b: float) -> float: ...


def backoff_seconds(attempt: int, *, base: float, cap: float, retry_after: float | None = None,
                    rng: Uniform | None = None) -> float:
    """Exponential backoff with full jitter (attempt 1 waits up to ``base``, then doubling, at most ``cap``);
    never sooner than ``Retry-After``, which may exceed ``cap`` (the server said so)."""
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    delay = (rng or random).uniform(0, ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay
