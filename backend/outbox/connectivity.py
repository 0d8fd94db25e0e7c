"""Whether OpenRouter answered lately."""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


class Connectivity:
    """Whether OpenRouter answered lately. ``online`` starts unknown (False) until the first probe."""

    def __init__(self) -> None:
        self.online = False
        self.checked_at: float | None = None

    def mark(self, online: bool) -> None:
        self.checked_at = time.monotonic()
        if online != self.online:
            log.info("OpenRouter is %s", "reachable" if online else "unreachable")
            self.online = online

    def recheck(self) -> None:
        """Probe again at the next occasion (user activity: Retry now, Resume)."""
        self.checked_at = None
