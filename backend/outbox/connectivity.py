"""Whether OpenRouter answered lately, and when to probe again while it does not (docs/outbox.md,
"Offline and back online")."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

#: The first probe after going offline comes this soon; each failed probe makes the wait this much longer, up
#: to ``PROBE_SECONDS``: 0.5, 0.63, 0.78, 0.98, 1.2, 1.5, 1.9, 2.4, 3.0, 3.7, 4.7, 5.8, 7.3, 9.1, then 10 s (15
#: probes in the first 45 s offline, then 6 a minute). A probe while offline is one failed connection, so the
#: wait after OpenRouter comes back stays about an eighth of the outage for outages up to ~40 s;
#: docs/performance.md ("Back online") has the numbers behind the choice.
FIRST_PROBE_SECONDS = 0.5
BACKOFF_FACTOR = 1.25


class Connectivity:
    """Whether OpenRouter answered lately. ``online`` starts unknown (False) until the first probe.

    While offline, probes are spaced by a backoff: 0.5 s after going offline, then 1.25 times longer each time,
    up to ``probe_seconds`` (``PROBE_SECONDS``). User activity (:meth:`recheck`) makes the next probe due at once
    and starts the backoff again from 0.5 s; listeners (the outbox's wake-up) are told so.
    """

    def __init__(self, *, probe_seconds: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.online = False
        #: The longest wait between probes while offline (``PROBE_SECONDS``; the outbox sets it).
        self.probe_seconds = probe_seconds
        self.checked_at: float | None = None
        self._clock = clock
        self._delay = FIRST_PROBE_SECONDS
        #: When the next probe is due while offline (None: at once).
        self._probe_at: float | None = None
        self._listeners: list[Callable[[], None]] = []
        #: Probes made so far (diagnostics and tests).
        self.probes = 0

    def mark(self, online: bool) -> None:
        """Real traffic or a probe says OpenRouter is (un)reachable."""
        now = self._clock()
        self.checked_at = now
        if online != self.online:
            log.info("OpenRouter is %s", "reachable" if online else "unreachable")
            self.online = online
            if not online:  # just went offline: the first probe comes soon
                self._delay = min(self.probe_seconds, FIRST_PROBE_SECONDS)
                self._probe_at = now + self._delay

    def probed(self, online: bool) -> None:
        """Record a probe's answer; a failed one pushes the next probe out (1.25 times longer, at most
        ``probe_seconds``)."""
        self.probes += 1
        was_offline = not self.online
        self.mark(online)
        if not online and was_offline:
            grown = self._delay * BACKOFF_FACTOR if self._probe_at is not None else self._delay
            self._delay = min(self.probe_seconds, grown)
            self._probe_at = self._clock() + self._delay

    def stale(self, max_age: float) -> bool:
        """Whether nothing was heard from OpenRouter for ``max_age`` seconds (or ever)."""
        return self.checked_at is None or self._clock() - self.checked_at > max_age

    def probe_due(self) -> bool:
        """While offline: whether the next probe is due now."""
        return self._probe_at is None or self._clock() >= self._probe_at

    def seconds_to_probe(self) -> float:
        """While offline: how long until the next probe is due (never more than ``probe_seconds``)."""
        if self._probe_at is None:
            return 0.0
        return max(0.0, min(self.probe_seconds, self._probe_at - self._clock()))

    def recheck(self) -> None:
        """User activity (a new request, Retry now, Resume, the window gaining focus, a network change): probe
        at the next occasion, and tell the listeners so that occasion is now."""
        self.checked_at = None
        self._probe_at = None
        self._delay = FIRST_PROBE_SECONDS
        for listener in list(self._listeners):
            listener()

    def on_recheck(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (no arguments, must not block) whenever :meth:`recheck` is called."""
        self._listeners.append(listener)
