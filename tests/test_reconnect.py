"""Back online fast (docs/outbox.md, "Offline and back online"): while offline the outbox probes 0.5 s after
going offline and backs off (×1.25) to ``PROBE_SECONDS``; user activity probes at once.

Nothing here is timed: the connectivity's clock is injected and advanced by hand, and the probes are counted
on a fake transport. The outbox loop is woken after each step and the test waits for its next pass.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from backend.core.preferences import Preferences
from backend.db import generations as gens
from backend.media.store import MediaStore
from backend.openrouter import OpenRouterClient
from backend.outbox.connectivity import Connectivity
from backend.outbox.worker import Outbox
from tests.test_outbox_unit import BASE, Keys, Rig, chat_ok, run


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_backoff_schedule_and_recheck() -> None:
    clock = Clock()
    woken: list[int] = []
    c = Connectivity(probe_seconds=10.0, clock=clock)
    c.on_recheck(lambda: woken.append(1))
    c.mark(True)
    c.mark(False)  # a send failed: offline now
    assert not c.probe_due() and c.seconds_to_probe() == 0.5
    waits = []
    for _ in range(14):
        clock.now += c.seconds_to_probe()
        assert c.probe_due()
        c.probed(False)
        waits.append(round(c.seconds_to_probe(), 3))
    assert waits[:10] == [0.625, 0.781, 0.977, 1.221, 1.526, 1.907, 2.384, 2.98, 3.725, 4.657]
    assert waits[10:] == [5.821, 7.276, 9.095, 10.0]
    c.recheck()  # user activity
    assert c.probe_due() and woken == [1]
    c.probed(False)
    assert c.seconds_to_probe() == 0.5  # the backoff starts again
    clock.now += 0.5
    c.probed(True)
    assert c.online and c.probes == 16


def test_the_cap_applies_to_the_first_probe() -> None:
    clock = Clock()
    c = Connectivity(probe_seconds=0.2, clock=clock)
    c.mark(True)
    c.mark(False)
    assert c.seconds_to_probe() == 0.2


class Upstream:
    """A fake OpenRouter that can be down (connection refused); counts probes (``GET /key``) and sends."""

    def __init__(self) -> None:
        self.down = True
        self.probes = 0
        self.sends = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path.endswith("/key"):
            self.probes += 1
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if request.method == "POST":
            self.sends += 1
            return chat_ok()
        return httpx.Response(200, json={"data": {}})


def build(rig: Rig, upstream: Upstream, clock: Clock) -> Outbox:
    rig.client = OpenRouterClient(BASE, transport=httpx.MockTransport(upstream))
    return Outbox(
        store=rig.store, settings=rig.settings, client=rig.client, keys=Keys(),  # type: ignore[arg-type]
        media=MediaStore(rig.tmp / "media"), preferences=Preferences(rig.store, None), catalogue=None,
        connectivity=Connectivity(clock=clock), rng=rig.rng)


async def next_pass(outbox: Outbox) -> None:
    """Wake the loop and wait until it has made a whole pass after this call."""
    start = outbox.passes
    outbox.wake()
    for _ in range(1000):
        if outbox.passes >= start + 2 and not outbox.running:
            return
        await asyncio.sleep(0.005)
        outbox.wake()
    raise AssertionError("the outbox loop made no pass")


def test_after_openrouter_comes_back_the_next_probe_is_early(tmp_path: Path) -> None:
    upstream, clock = Upstream(), Clock()

    async def scenario() -> None:
        async with Rig(tmp_path, upstream) as rig:  # default settings: PROBE_SECONDS = 10
            assert rig.settings.probe_seconds == 10.0
            rig.outbox = build(rig, upstream, clock)
            gen_id = await rig.queued()
            await rig.outbox.start()
            await next_pass(rig.outbox)
            assert upstream.probes == 1  # at start-up, at once
            clock.now += 0.4
            await next_pass(rig.outbox)
            assert upstream.probes == 1  # not yet
            clock.now += 0.1
            await next_pass(rig.outbox)
            assert upstream.probes == 2  # 0.5 s after the first
            upstream.down = False  # OpenRouter answers again
            clock.now += 0.6
            await next_pass(rig.outbox)
            assert upstream.probes == 2 and upstream.sends == 0
            clock.now += 0.025  # 0.625 s after the second probe, not PROBE_SECONDS
            await next_pass(rig.outbox)
            assert upstream.probes == 3
            for _ in range(200):
                if (await gens.get_row(rig.store, gen_id))["status"] == "succeeded":
                    break
                await next_pass(rig.outbox)
            assert upstream.sends == 1
            assert (await gens.get_row(rig.store, gen_id))["status"] == "succeeded"

    run(scenario())


def test_user_activity_probes_at_once_when_backed_off(tmp_path: Path) -> None:
    upstream, clock = Upstream(), Clock()

    async def scenario() -> None:
        async with Rig(tmp_path, upstream) as rig:
            rig.outbox = build(rig, upstream, clock)
            gen_id = await rig.queued()
            await rig.outbox.start()
            await next_pass(rig.outbox)
            for _ in range(15):  # then 0.5, 0.625, … 9.1 and 10 s later: backed off to PROBE_SECONDS
                clock.now += rig.outbox.connectivity.seconds_to_probe()
                await next_pass(rig.outbox)
            probes = upstream.probes
            assert probes == 16 and rig.outbox.connectivity.seconds_to_probe() == 10.0
            await next_pass(rig.outbox)
            assert upstream.probes == probes  # the clock did not move: no probe
            upstream.down = False
            rig.outbox.activity()  # the window gained focus
            await next_pass(rig.outbox)
            assert upstream.probes == probes + 1
            for _ in range(200):
                if (await gens.get_row(rig.store, gen_id))["status"] == "succeeded":
                    break
                await next_pass(rig.outbox)
            assert upstream.sends == 1

    run(scenario())


def test_activity_endpoint_answers_with_the_state(api) -> None:
    with api.client() as client:
        r = client.post("/api/v1/activity")
        assert r.status_code == 200, r.text
        assert set(r.json()) == {"online"}
