"""kill -9 of the real ``atelier --no-window`` process during streams and writes (docs/security.md).

The app runs as a child process against an in-process fake OpenRouter; the test SIGKILLs it at awkward moments,
starts it again on the same data directory (over the stale ``runtime.json``) and checks what survived.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import PYTHON, ROOT, subprocess_env
from tests.fakes.openrouter import FakeOpenRouter

FAST_ENV = {"ATELIER_RETRY_BASE_SECONDS": "0.05", "ATELIER_RETRY_MAX_SECONDS": "0.2", "ATELIER_PROBE_SECONDS": "0.1"}
LONG_REPLY = " ".join(f"word{i}" for i in range(400))


def wait_for(fn: Callable[[], Any], timeout: float = 30, interval: float = 0.05, what: str = "condition") -> Any:
    """Poll ``fn`` until it returns something truthy (a deadline, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} not met within {timeout} s")


class AppProcess:
    """One run of ``python -m desktop --no-window`` on a data directory, with an authenticated API client."""

    def __init__(self, data_dir: Path, *args: str, **env: str) -> None:
        self.data_dir = data_dir
        self.args = args
        self.env = env
        self.proc: subprocess.Popen[str] | None = None
        self.info: dict[str, Any] = {}
        self.api: httpx.Client | None = None

    def start(self, timeout: float = 60) -> AppProcess:
        """Launch and wait until *this* process has published runtime.json and answers."""
        log = (self.data_dir.parent / f"{self.data_dir.name}-console.log").open("a")
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "desktop", "--no-window", *self.args], cwd=ROOT,
            env=subprocess_env(self.data_dir, **self.env), stdout=log, stderr=subprocess.STDOUT, text=True,
        )
        log.close()
        runtime = self.data_dir / "runtime.json"

        def ready() -> dict[str, Any] | None:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"atelier exited early with {self.proc.returncode}: {self.console()}")
            try:
                info = json.loads(runtime.read_text())
            except (OSError, ValueError):
                return None
            if info.get("pid") != self.proc.pid:
                return None  # still the stale file of a killed run
            try:
                httpx.get(info["api_url"] + "/api/v1/health", timeout=2).raise_for_status()
            except httpx.HTTPError:
                return None
            return info

        self.info = wait_for(ready, timeout=timeout, what="runtime.json of the new process")
        self.api = httpx.Client(base_url=self.info["api_url"], timeout=30,
                                headers={"Authorization": f"Bearer {self.info['token']}"})
        return self

    def console(self) -> str:
        """What the process printed (all runs on this data dir)."""
        path = self.data_dir.parent / f"{self.data_dir.name}-console.log"
        return path.read_text() if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no shutdown hook, no checkpoint, runtime.json left behind."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self._close_client()

    def stop(self) -> int:
        """SIGTERM and wait for a clean exit; returns the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            self._close_client()
        return code

    def _close_client(self) -> None:
        if self.api is not None:
            self.api.close()
            self.api = None


@pytest.fixture
def slow_fake() -> Iterator[FakeOpenRouter]:
    """A fake that streams a long answer slowly, so a kill lands mid-stream."""
    with FakeOpenRouter(token_delay=0.02) as fake:
        yield fake


def set_key(api: httpx.Client, key: str) -> None:
    r = api.put("/api/v1/credentials", json={"api_key": key})
    assert r.status_code == 200, r.text
    assert r.json()["configured"] is True


def test_kill_during_stream_keeps_partial_text_and_sends_queued_once(data_dir: Path, slow_fake: FakeOpenRouter) -> None:
    slow_fake.reply_text = LONG_REPLY
    env = {**FAST_ENV, "ATELIER_OPENROUTER_BASE_URL": slow_fake.base_url, "ATELIER_OUTBOX_CONCURRENCY": "1"}
    app = AppProcess(data_dir, **env).start()
    try:
        set_key(app.api, slow_fake.key)
        streamed: list[str] = []
        stream_id: str | None = None
        body = {"kind": "text", "model": "openai/gpt-4o-mini", "prompt": "a long story", "stream": True}
        with app.api.stream("POST", "/api/v1/generations", json=body) as r:
            assert r.status_code == 200
            event = None
            for line in r.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data = json.loads(line[6:])
                    if event == "generation":
                        stream_id = data["id"]
                    elif event == "delta":
                        streamed.append(data["text"])
                if len(streamed) >= 20:
                    break
            assert stream_id is not None
            # With one outbox slot busy streaming, a deferred generation must wait in the queue.
            queued = app.api.post("/api/v1/generations", json={"kind": "text", "model": "openai/gpt-4o-mini",
                                                               "prompt": "queued behind the stream", "defer": True})
            assert queued.status_code == 202, queued.text
            queued_id = queued.json()["id"]
            # Wait until part of the stream has been saved, then kill while it is still running.
            saved = wait_for(lambda: (g := app.api.get(f"/api/v1/generations/{stream_id}").json())["output_text"]
                             and g, what="partial text saved")
            assert saved["status"] == "running"
            assert app.api.get(f"/api/v1/generations/{queued_id}").json()["status"] == "queued"
            app.kill()
        assert not slow_fake.completions, "the stream should still have been running at the kill"
        assert (data_dir / "runtime.json").exists()  # stale, left by the killed process

        app2 = AppProcess(data_dir, **env).start()
        try:
            assert app2.info["pid"] != app.info["pid"] and app2.info["token"] != app.info["token"]
            gen = app2.api.get(f"/api/v1/generations/{stream_id}").json()
            assert gen["status"] == "interrupted"
            assert gen["output_text"] and LONG_REPLY.startswith(gen["output_text"])
            assert len(gen["output_text"]) >= len(saved["output_text"])  # nothing saved before the kill was lost
            done = wait_for(lambda: (g := app2.api.get(f"/api/v1/generations/{queued_id}").json())["status"]
                            not in ("queued", "running") and g, what="queued generation finished")
            assert done["status"] == "succeeded", done
            assert done["output_text"] == LONG_REPLY
            status = app2.api.get("/api/v1/status").json()
            assert status["queue"]["running"] == 0 and status["queue"]["queued"] == 0
            listing = app2.api.get("/api/v1/generations", params={"status": "running"}).json()
            assert listing["items"] == []
            # Nothing is queued or running any more, so nothing else can go out: every send is on record.
            posts = [r for r in slow_fake.requests
                     if r.path == "/chat/completions" and "queued behind the stream" in json.dumps(r.json)]
            assert len(posts) == 1 and done["attempts"] == 1
            sent = [c for c in slow_fake.completions if c.prompt == "queued behind the stream"]
            assert len(sent) == 1 and sent[0].id == done["upstream_id"]
            # The interrupted stream is not resent behind the user's back.
            assert not [c for c in slow_fake.completions if c.prompt == "a long story"]
        finally:
            assert app2.stop() == 0
    finally:
        app.stop()


class _Writer(threading.Thread):
    """Fires writes at the API until stopped or the app dies; remembers every acknowledged one."""

    def __init__(self, api_url: str, token: str, cycle: int) -> None:
        super().__init__(daemon=True)
        self.client = httpx.Client(base_url=api_url, timeout=10, headers={"Authorization": f"Bearer {token}"})
        self.cycle = cycle
        self.acked_budget: float | None = None
        self.acked_tags: dict[str, list[str]] = {}
        self.acked_deferred: list[str] = []
        self.acked_done: dict[str, str] = {}
        self.count = 0
        self.stop_flag = threading.Event()

    def run(self) -> None:
        i = 0
        try:
            while not self.stop_flag.is_set():
                i += 1
                budget = self.cycle * 1000 + i
                r = self.client.put("/api/v1/settings", json={"budget_monthly_usd": budget})
                if r.status_code == 200:
                    self.acked_budget = budget
                r = self.client.post("/api/v1/generations", json={
                    "kind": "text", "model": "openai/gpt-4o-mini", "prompt": f"deferred {self.cycle}-{i}",
                    "defer": True, "tags": [f"c{self.cycle}"]})
                if r.status_code == 202:
                    self.acked_deferred.append(r.json()["id"])
                if i % 3 == 0:
                    r = self.client.post("/api/v1/generations", json={
                        "kind": "text", "model": "openai/gpt-4o-mini", "prompt": f"now {self.cycle}-{i}"})
                    if r.status_code == 201:
                        self.acked_done[r.json()["id"]] = r.json()["output_text"]
                        gen_id = r.json()["id"]
                        tags = [f"t{i}", "kept"]
                        r = self.client.patch(f"/api/v1/generations/{gen_id}", json={"tags": tags, "favorite": True})
                        if r.status_code == 200:
                            self.acked_tags[gen_id] = tags
                self.count += 1
        except httpx.HTTPError:
            pass  # the app was killed mid-request: that write was never acknowledged
        finally:
            self.client.close()


def test_repeated_kill_during_writes_keeps_every_acknowledged_write(data_dir: Path,
                                                                    fake_openrouter: FakeOpenRouter) -> None:
    env = {**FAST_ENV, "ATELIER_OPENROUTER_BASE_URL": fake_openrouter.base_url}
    acked_budget = None
    deferred: list[str] = []
    done: dict[str, str] = {}
    tagged: dict[str, list[str]] = {}
    for cycle in range(1, 4):
        app = AppProcess(data_dir, **env).start()
        if cycle == 1:
            set_key(app.api, fake_openrouter.key)
        writer = _Writer(app.info["api_url"], app.info["token"], cycle)
        writer.start()
        wait_for(lambda w=writer: w.count >= 4 or not w.is_alive(), what="some acknowledged writes")
        app.kill()  # while the writer is in the middle of its next requests
        writer.stop_flag.set()
        writer.join(30)
        assert writer.acked_budget is not None
        acked_budget = writer.acked_budget
        deferred += writer.acked_deferred
        done.update(writer.acked_done)
        tagged.update(writer.acked_tags)

    app = AppProcess(data_dir, **env).start()
    try:
        budget = app.api.get("/api/v1/settings").json()["values"]["budget_monthly_usd"]
        # The last acknowledged value, or the one after it whose answer the kill swallowed.
        assert budget in (acked_budget, acked_budget + 1)
        for gen_id in deferred:
            r = app.api.get(f"/api/v1/generations/{gen_id}")
            assert r.status_code == 200, f"acknowledged generation {gen_id} is missing"
        for gen_id, text in done.items():
            g = app.api.get(f"/api/v1/generations/{gen_id}").json()
            assert g["status"] == "succeeded" and g["output_text"] == text
        for gen_id, tags in tagged.items():
            g = app.api.get(f"/api/v1/generations/{gen_id}").json()
            assert g["tags"] == tags and g["favorite"] is True
        # Every deferred one eventually goes out and nothing stays stuck in "running".
        wait_for(lambda: all(app.api.get(f"/api/v1/generations/{g}").json()["status"] == "succeeded"
                             for g in deferred), what="deferred generations sent")
        assert app.api.get("/api/v1/status").json()["queue"] == {"queued": 0, "running": 0, "paused": False}
        prompts = [c.prompt for c in fake_openrouter.completions]
        for gen_id in done:  # a generation acknowledged as finished is never sent again
            assert prompts.count(app.api.get(f"/api/v1/generations/{gen_id}").json()["prompt"]) == 1
    finally:
        assert app.stop() == 0
    assert not (data_dir / "atelier.duckdb.wal").exists()
