"""Run the fake OpenRouter in its own process and drive it through its control API.

For browser tests and benchmarks, where the app under test runs in another process and the fake must keep
serving even while the test process is busy::

    with FakeOpenRouterProcess(keys=["sk-or-v1-test"], token_delay=0.01) as fake:
        fake.enqueue("/chat/completions", rate_limited(retry_after=2))
        ...  # point the app at fake.base_url
        fake.go_offline(seconds=3)            # API port refuses connections, then comes back
        assert fake.stats()["completions"] == 1
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.fakes.behaviours import Behaviour, behaviour_to_json

__all__ = ["FakeOpenRouterProcess"]

ROOT = Path(__file__).resolve().parents[2]


class FakeOpenRouterProcess:
    """``python -m tests.fakes.openrouter`` as a child process, with a thin client for ``/_fake/``."""

    def __init__(
        self,
        *,
        keys: list[str] | None = None,
        token_delay: float = 0.0,
        port: int = 0,
        extra_args: list[str] | None = None,
    ) -> None:
        self._args = [sys.executable, "-m", "tests.fakes.openrouter", "--port", str(port)]
        for key in keys or []:
            self._args += ["--key", key]
        self._args += ["--token-delay", str(token_delay), *(extra_args or [])]
        self._proc: subprocess.Popen[str] | None = None
        self._http: httpx.Client | None = None
        self.info: dict[str, Any] = {}

    def start(self) -> FakeOpenRouterProcess:
        """Start the process and wait for its address line."""
        self._proc = subprocess.Popen(
            self._args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            self.stop()
            raise RuntimeError("the fake OpenRouter process exited before printing its addresses")
        self.info = json.loads(line)
        self._http = httpx.Client(base_url=self.info["control_url"], timeout=10)
        return self

    def stop(self) -> None:
        """Terminate the process (SIGTERM, then kill) and close pipes; idempotent."""
        if self._http is not None:
            self._http.close()
            self._http = None
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> FakeOpenRouterProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """The API base URL (``http://127.0.0.1:<port>/api/v1``)."""
        return self.info["base_url"]

    @property
    def site_url(self) -> str:
        """The site root, where ``/auth`` lives."""
        return self.info["site_url"]

    @property
    def control_url(self) -> str:
        """The control API root on its own port."""
        return self.info["control_url"]

    @property
    def returncode(self) -> int | None:
        """The exit code once the process has ended."""
        return None if self._proc is None else self._proc.poll()

    def _call(self, method: str, name: str, payload: dict[str, Any] | None = None) -> Any:
        if self._http is None:
            raise RuntimeError("start() the fake process first")
        response = self._http.request(method, f"/{name}", json=payload)
        response.raise_for_status()
        return response.json()

    def enqueue(self, path: str, behaviour: Behaviour | dict[str, Any]) -> None:
        """Queue a one-shot behaviour (object or JSON form) for ``path``."""
        data = behaviour if isinstance(behaviour, dict) else behaviour_to_json(behaviour)
        self._call("POST", "enqueue", {"path": path, "behaviour": data})

    def go_offline(self, seconds: float | None = None) -> None:
        """Close the API listener, for ``seconds`` or until :meth:`go_online`."""
        self._call("POST", "offline", {"seconds": seconds} if seconds else {})

    def go_online(self) -> None:
        """Re-open the API listener on the same port."""
        self._call("POST", "online")

    def add_key(self, key: str, **key_info: Any) -> None:
        """Make ``key`` valid (``key_info`` as for ``FakeOpenRouter.add_key``)."""
        self._call("POST", "keys", {"key": key, **key_info})

    def revoke_key(self, key: str) -> None:
        """Invalidate ``key``."""
        self._call("POST", "revoke", {"key": key})

    def requests(self) -> list[dict[str, Any]]:
        """Every recorded request (JSON form)."""
        return self._call("GET", "requests")

    def completions(self) -> list[dict[str, Any]]:
        """Chat completions that finished successfully."""
        return self._call("GET", "completions")

    def stats(self) -> dict[str, Any]:
        """Counters: requests by path and status, completions, aborted ids, video jobs, online flag."""
        return self._call("GET", "stats")

    def reset(self) -> None:
        """Forget everything and come back online."""
        self._call("POST", "reset")
