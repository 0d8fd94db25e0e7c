"""Experiment for ``BENCH_APP_PYTHONPATH=bench/experiments/nodelay``: TCP_NODELAY on both app servers.

Patches ``desktop.servers`` right after it is imported (only the app imports it, not the fake):
``ApiServer`` gets a listening socket created with ``IPPROTO_TCP`` so asyncio sets TCP_NODELAY on every
accepted connection, and ``UiServer``'s Werkzeug handler disables Nagle's algorithm per connection.
See docs/performance.md, "What dominates".
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import socket
import sys
from types import ModuleType
from typing import Any


def _patch(mod: ModuleType) -> None:
    from werkzeug.serving import WSGIRequestHandler

    api_init = mod.ApiServer.__init__
    real_socket = socket.socket

    def tcp_socket(family: int = socket.AF_INET, type: int = socket.SOCK_STREAM, proto: int = 0,  # noqa: A002
                   fileno: int | None = None) -> socket.socket:
        if fileno is None and proto == 0:
            proto = socket.IPPROTO_TCP  # asyncio sets TCP_NODELAY only when sock.proto == IPPROTO_TCP
        return real_socket(family, type, proto, fileno)

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        mod.socket.socket = tcp_socket
        try:
            api_init(self, *args, **kwargs)
        finally:
            mod.socket.socket = real_socket

    class NoDelayHandler(WSGIRequestHandler):
        disable_nagle_algorithm = True

    real_make = mod.make_server
    mod.ApiServer.__init__ = init
    mod.make_server = lambda *a, **k: real_make(*a, request_handler=NoDelayHandler, **k)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name != "desktop.servers":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        real_exec = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            real_exec(module)
            _patch(module)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


sys.meta_path.insert(0, _Finder())
