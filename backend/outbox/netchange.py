"""Operating-system network-change signals, so the outbox probes OpenRouter as soon as the network is back
instead of waiting for its next backoff probe (docs/outbox.md, "Offline and back online").

* Linux: NetworkManager's ``StateChanged`` signal, and ``PropertiesChanged`` of its ``State`` and
  ``Connectivity`` properties, on the system D-Bus (through ``jeepney``, pure Python). A state of
  ``CONNECTED_LOCAL`` (50) or better, or a connectivity of ``LIMITED`` (3) or ``FULL`` (4), triggers a probe.
* Windows: ``NotifyAddrChange`` (iphlpapi, through ctypes) in a daemon thread: any change of the machine's
  IPv4 addresses triggers a probe. Not exercised by the test suite.
* macOS and others: nothing is listened to.

Everything fails soft: no D-Bus library, no system bus, no NetworkManager, a bus that goes away — each is
logged once at debug level and the outbox carries on with its backoff and the probes on user activity.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

NM_NAME = "org.freedesktop.NetworkManager"
NM_PATH = "/org/freedesktop/NetworkManager"
NM_INTERFACE = "org.freedesktop.NetworkManager"
PROPERTIES_INTERFACE = "org.freedesktop.DBus.Properties"
#: ``NMState``: CONNECTED_LOCAL, CONNECTED_SITE, CONNECTED_GLOBAL.
NM_CONNECTED = 50
#: ``NMConnectivityState``: LIMITED, FULL (PORTAL, 2, means a captive portal: a probe would not get through).
NM_REACHABLE = (3, 4)


def network_is_back(interface: str, member: str, body: tuple) -> bool:
    """Whether a NetworkManager signal says the network is (back) up."""
    if interface == NM_INTERFACE and member == "StateChanged":
        return bool(body) and isinstance(body[0], int) and body[0] >= NM_CONNECTED
    if interface == PROPERTIES_INTERFACE and member == "PropertiesChanged":
        if len(body) < 2 or body[0] != NM_INTERFACE or not isinstance(body[1], dict):
            return False
        state = _variant(body[1].get("State"))
        connectivity = _variant(body[1].get("Connectivity"))
        return (isinstance(state, int) and state >= NM_CONNECTED) or connectivity in NM_REACHABLE
    return False


def _variant(value: Any) -> Any:
    """jeepney gives a D-Bus variant as ``(signature, value)``."""
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
        return value[1]
    return value


class NetworkChanges:
    """Calls ``on_change()`` (on the event loop, must not block) when the OS says the network came back.

    ``bus`` is the D-Bus address to listen on (Linux): ``"SYSTEM"`` (the default) is the system bus, at
    ``DBUS_SYSTEM_BUS_ADDRESS`` or the standard socket; tests give a private bus's ``unix:path=…`` address.
    ``platform`` defaults to ``sys.platform``.
    """

    def __init__(self, on_change: Callable[[], None], *, bus: str = "SYSTEM", platform: str | None = None) -> None:
        self.on_change = on_change
        self.bus = bus
        self.platform = platform or sys.platform
        #: True once the OS source is being listened to (the D-Bus match rule is in place).
        self.listening = False
        #: Network-back signals received so far.
        self.signals = 0
        self._task: asyncio.Task | None = None
        self._stopped = threading.Event()

    def start(self) -> None:
        if self.platform.startswith("linux"):
            self._task = asyncio.create_task(self._dbus(), name="network-changes")
        elif self.platform == "win32":
            loop = asyncio.get_running_loop()
            threading.Thread(target=_watch_windows, args=(lambda: loop.call_soon_threadsafe(self._changed),
                                                          self._stopped),
                             name="network-changes", daemon=True).start()
        else:
            log.debug("network-change signals are not listened to on %s", self.platform)

    async def stop(self) -> None:
        self._stopped.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.listening = False

    def _changed(self) -> None:
        if self._stopped.is_set():
            return
        self.signals += 1
        log.debug("the network is back (OS signal): probing OpenRouter now")
        self.on_change()

    async def _dbus(self) -> None:
        try:
            from jeepney import HeaderFields, MatchRule, MessageType
            from jeepney.bus_messages import message_bus
            from jeepney.io.asyncio import open_dbus_connection
        except ImportError:
            log.debug("jeepney is not installed: NetworkManager's signals are not listened to")
            return
        try:
            conn = await open_dbus_connection(self.bus)
        except (OSError, RuntimeError, ValueError, KeyError, EOFError) as exc:
            log.debug("no system D-Bus (%s): NetworkManager's signals are not listened to", exc)
            return
        try:
            rules = [
                MatchRule(type="signal", sender=NM_NAME, path=NM_PATH, interface=NM_INTERFACE, member="StateChanged"),
                MatchRule(type="signal", sender=NM_NAME, path=NM_PATH, interface=PROPERTIES_INTERFACE,
                          member="PropertiesChanged"),
            ]
            for rule in rules:
                await conn.send(message_bus.AddMatch(rule))
            # Replies to AddMatch come back in order; once both are in, signals are routed to us.
            replies = 0
            while not self.listening:
                msg = await conn.receive()
                if msg.header.message_type is MessageType.error:
                    log.debug("the system D-Bus refused the match rule: %s", msg.body)
                    return
                if msg.header.message_type is MessageType.method_return:
                    replies += 1
                    self.listening = replies == len(rules)
            log.debug("listening to NetworkManager's signals on the system D-Bus")
            while True:
                msg = await conn.receive()
                if msg.header.message_type is not MessageType.signal:
                    continue
                fields = msg.header.fields
                if fields.get(HeaderFields.path) != NM_PATH:
                    continue
                if network_is_back(fields.get(HeaderFields.interface, ""), fields.get(HeaderFields.member, ""),
                                   msg.body):
                    self._changed()
        except (OSError, EOFError) as exc:
            log.debug("the system D-Bus connection ended (%s): NetworkManager's signals are no longer heard", exc)
        finally:
            self.listening = False
            with contextlib.suppress(Exception):
                await conn.close()


def _watch_windows(notify: Callable[[], None], stopped: threading.Event) -> None:
    """Block in ``NotifyAddrChange`` (synchronous with both arguments NULL) and call ``notify()`` after each
    change of the IPv4 address table, until ``stopped``. A daemon thread: it may stay blocked at exit."""
    try:
        import ctypes

        notify_addr_change = ctypes.WinDLL("iphlpapi").NotifyAddrChange  # type: ignore[attr-defined]
        notify_addr_change.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        notify_addr_change.restype = ctypes.c_ulong
    except (OSError, AttributeError) as exc:
        log.debug("NotifyAddrChange is not available (%s): network changes are not listened to", exc)
        return
    while not stopped.is_set():
        result = notify_addr_change(None, None)
        if result != 0:  # NO_ERROR
            log.debug("NotifyAddrChange failed with %s: network changes are no longer listened to", result)
            return
        if not stopped.is_set():
            notify()
