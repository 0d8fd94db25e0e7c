"""OS network-change signals (docs/outbox.md, "Offline and back online"): on Linux, NetworkManager's signals on
the system D-Bus make the outbox probe at once. A real private ``dbus-daemon`` stands in for the system bus,
and a small fake NetworkManager service on it owns NetworkManager's name and emits its signals."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.outbox.netchange import NM_INTERFACE, NM_NAME, NM_PATH, PROPERTIES_INTERFACE, NetworkChanges
from tests.conftest import start_api
from tests.fakes.openrouter import FakeOpenRouter

jeepney = pytest.importorskip("jeepney")
from jeepney import DBusAddress, new_signal  # noqa: E402
from jeepney.bus_messages import message_bus  # noqa: E402
from jeepney.io.blocking import open_dbus_connection  # noqa: E402

NM_DISCONNECTED, NM_CONNECTED_GLOBAL = 20, 70
CONNECTIVITY_PORTAL, CONNECTIVITY_FULL = 2, 4


@pytest.fixture
def private_bus() -> Iterator[tuple[str, subprocess.Popen]]:
    """A private ``dbus-daemon`` listening on a socket in a temporary folder: (address, process)."""
    exe = shutil.which("dbus-daemon")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("dbus-daemon is missing: .ci/run installs the apt package dbus")
        pytest.skip("dbus-daemon is not installed (apt package dbus)")
    folder = Path(tempfile.mkdtemp(prefix="atelier-bus-"))  # short: a socket path has at most 107 bytes
    proc = subprocess.Popen([exe, "--session", "--nofork", "--print-address=1", f"--address=unix:path={folder}/bus"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        address = proc.stdout.readline().strip()
        assert address.startswith("unix:"), address
        yield address, proc
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()
        shutil.rmtree(folder, ignore_errors=True)


class FakeNetworkManager:
    """Owns ``org.freedesktop.NetworkManager`` on the bus and emits its signals, as NetworkManager does."""

    def __init__(self, address: str, *, own_name: bool = True) -> None:
        self.conn = open_dbus_connection(address)
        if own_name:
            reply = self.conn.send_and_get_reply(message_bus.RequestName(NM_NAME))
            assert reply.body[0] == 1  # primary owner

    def state_changed(self, state: int) -> None:
        self._emit(new_signal(DBusAddress(NM_PATH, interface=NM_INTERFACE), "StateChanged", "u", (state,)))

    def properties_changed(self, **properties: int) -> None:
        changed = {name: ("u", value) for name, value in properties.items()}
        self._emit(new_signal(DBusAddress(NM_PATH, interface=PROPERTIES_INTERFACE), "PropertiesChanged",
                              "sa{sv}as", (NM_INTERFACE, changed, [])))

    def _emit(self, signal) -> None:
        self.conn.send(signal)
        # A round trip to the bus: every message this connection sent before has been routed when it returns.
        self.conn.send_and_get_reply(message_bus.GetId())

    def close(self) -> None:
        self.conn.close()


async def until(predicate, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def test_network_manager_coming_back_triggers_a_probe_and_nothing_else_does(private_bus) -> None:
    address, _ = private_bus
    nm = FakeNetworkManager(address)
    impostor = FakeNetworkManager(address, own_name=False)
    calls: list[int] = []

    async def scenario() -> None:
        watcher = NetworkChanges(lambda: calls.append(1), bus=address, platform="linux")
        watcher.start()
        try:
            await until(lambda: watcher.listening)
            nm.state_changed(NM_DISCONNECTED)  # going down: no probe
            impostor.state_changed(NM_CONNECTED_GLOBAL)  # not NetworkManager: ignored
            nm.state_changed(NM_CONNECTED_GLOBAL)
            await until(lambda: calls)
            assert len(calls) == 1
            nm.properties_changed(Connectivity=CONNECTIVITY_PORTAL)  # a captive portal: a probe would fail
            nm.properties_changed(Connectivity=CONNECTIVITY_FULL)
            await until(lambda: len(calls) == 2)
            nm.properties_changed(State=NM_CONNECTED_GLOBAL)
            await until(lambda: len(calls) == 3)
            assert watcher.signals == 3
        finally:
            await watcher.stop()
        assert not watcher.listening

    try:
        asyncio.run(scenario())
    finally:
        nm.close()
        impostor.close()


def test_fails_soft_without_a_bus_without_jeepney_and_when_the_bus_goes_away(private_bus, caplog,
                                                                             monkeypatch) -> None:
    caplog.set_level(logging.DEBUG, logger="backend.outbox.netchange")
    address, daemon = private_bus

    async def ends_quietly(watcher: NetworkChanges) -> None:
        watcher.start()
        if watcher._task is not None:
            await asyncio.wait_for(watcher._task, 20)
        assert not watcher.listening and watcher.signals == 0
        await watcher.stop()

    asyncio.run(ends_quietly(NetworkChanges(lambda: None, bus="unix:path=/nonexistent/atelier/bus", platform="linux")))
    assert "no system D-Bus" in caplog.text
    asyncio.run(ends_quietly(NetworkChanges(lambda: None, platform="darwin")))
    assert "not listened to on darwin" in caplog.text

    async def bus_goes_away() -> None:
        watcher = NetworkChanges(lambda: None, bus=address, platform="linux")
        watcher.start()
        await until(lambda: watcher.listening)
        daemon.terminate()
        await asyncio.wait_for(watcher._task, 20)
        assert not watcher.listening
        await watcher.stop()

    asyncio.run(bus_goes_away())
    assert "connection ended" in caplog.text

    monkeypatch.setitem(sys.modules, "jeepney", None)  # the library is missing
    asyncio.run(ends_quietly(NetworkChanges(lambda: None, bus=address, platform="linux")))
    assert "jeepney is not installed" in caplog.text


def test_the_outbox_probes_at_once_when_network_manager_says_the_network_is_back(
        private_bus, data_dir: Path, monkeypatch) -> None:
    address, _ = private_bus
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", address)
    nm = FakeNetworkManager(address)
    fake = FakeOpenRouter().start()
    running = start_api(data_dir, openrouter_base_url=fake.base_url, probe_seconds=0.1)
    try:
        with running.client() as client:
            assert client.put("/api/v1/credentials", json={"api_key": fake.key}).status_code == 200
            watcher = running.app.state.network_changes
            connectivity = running.app.state.connectivity
            deadline = time.monotonic() + 20
            while not watcher.listening:
                assert time.monotonic() < deadline, "the app never listened to the bus"
                time.sleep(0.01)
            fake.go_offline()
            gen = client.post("/api/v1/generations", json={
                "kind": "text", "model": "openai/gpt-4o-mini", "prompt": "Hello", "stream": False}).json()
            gen_id = gen.get("id") or gen["generation"]["id"]
            while client.get(f"/api/v1/generations/{gen_id}").json()["status"] != "queued" or connectivity.online:
                assert time.monotonic() < deadline, "the generation was not queued offline"
                time.sleep(0.01)
            # The backoff's next probe is an hour away (and stays so whatever probe is in flight now): only a
            # signal can bring the probe forward.
            connectivity.probe_seconds = 3600
            connectivity._delay = 3600
            connectivity._probe_at = time.monotonic() + 3600
            probes = connectivity.probes
            fake.go_online()
            nm.state_changed(NM_CONNECTED_GLOBAL)
            deadline = time.monotonic() + 20
            while client.get(f"/api/v1/generations/{gen_id}").json()["status"] != "succeeded":
                assert time.monotonic() < deadline, "the outbox did not probe when the network came back"
                time.sleep(0.02)
            assert watcher.signals == 1 and connectivity.probes > probes and connectivity.online
    finally:
        running.stop()
        fake.stop()
        nm.close()
