"""The two local servers, each on 127.0.0.1 and a free port, each in its own thread."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class _NoDelayHandler(WSGIRequestHandler):
    """werkzeug writes headers and each streamed chunk separately: disable Nagle so none of them waits."""

    disable_nagle_algorithm = True


class ApiServer:
    """uvicorn serving the FastAPI app on a socket bound to 127.0.0.1:0."""

    def __init__(self, app: Any, *, log_level: str = "warning"):
        # Created as IPPROTO_TCP so asyncio sets TCP_NODELAY on accepted connections: with protocol 0 it does
        # not, and every small reply waits ~40 ms for the client's delayed ACK.
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        config = uvicorn.Config(
            app, log_level=log_level, access_log=False, lifespan="on", timeout_graceful_shutdown=3,
            server_header=False, timeout_keep_alive=30,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name="atelier-api", daemon=True)
        self.error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        try:
            # uvicorn installs no signal handlers off the main thread; the shell handles signals itself.
            self.server.run(sockets=[self.sock])
        except BaseException as exc:  # reported to the starter
            self.error = exc

    def start(self, timeout: float = 20.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if self.error is not None or not self.thread.is_alive():
                raise RuntimeError(f"the API server failed to start: {self.error!r}")
            if time.monotonic() > deadline:
                raise RuntimeError("the API server did not start in time")
            time.sleep(0.005)

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        self.sock.close()


class UiServer:
    """werkzeug's threaded WSGI server for the Flask UI (streams responses unbuffered, for SSE)."""

    def __init__(self, app: Any):
        self.server: BaseWSGIServer = make_server(
            "127.0.0.1", 0, app, threaded=True, request_handler=_NoDelayHandler
        )
        self.port: int = self.server.server_port
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, name="atelier-ui", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout)
