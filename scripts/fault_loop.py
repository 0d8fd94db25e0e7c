"""Fault loop: N random ``kill -9`` cycles of the real app under a mixed workload, then count what survived.

Each cycle starts ``python -m desktop --no-window`` on one data directory, pointed at a fake OpenRouter that
runs as a separate process (``tests/fakes/``), submits a random mix of text (streamed and not), image,
deferred and video requests, SIGKILLs the app at a random moment and starts it again. At the end the app runs
until the outbox has drained; then the script prints:

- ``acknowledged``: requests the local API answered with 2xx or 502 (the generation was stored);
- ``lost``: acknowledged, but absent from the database;
- ``stuck``: not in a terminal status after draining;
- ``duplicates``: generations the fake delivered more often than the outbox rules allow (a video submitted
  more than once; a text or image completed more than twice, or more than once when unknown deliveries are
  not retried — see docs/outbox.md).

Every prompt carries a unique marker, so each generation in the database is matched to what the fake saw.
The exit status is 1 when lost, stuck or duplicates is non-zero, 2 when the harness itself failed.
Traffic goes only to 127.0.0.1; every loop is bounded in count and in time. Results: docs/fault-loop.md.

    .venv/bin/python scripts/fault_loop.py --cycles 10 --seed 1 --fake-behaviour mixed
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fakes.process import FakeOpenRouterProcess  # noqa: E402

KEY = "sk-or-v1-" + "0fa17" * 12 + "beef"
MODELS = {"text": "openai/gpt-4o-mini", "image": "google/gemini-2.5-flash-image", "video": "google/veo-3.1"}
TERMINAL = {"succeeded", "failed", "interrupted", "cancelled"}
# (name, weight): what one submitted request is.
WORKLOAD = [("text", 30), ("text_stream", 25), ("image", 15), ("deferred", 15), ("video", 15)]
BEHAVIOURS = ("normal", "flaky", "slow", "offline", "mixed")
FAST_ENV = {
    "ATELIER_RETRY_BASE_SECONDS": "0.1",
    "ATELIER_RETRY_MAX_SECONDS": "1",
    "ATELIER_PROBE_SECONDS": "0.2",
    "ATELIER_VIDEO_POLL_SECONDS": "0.2",
    "ATELIER_CONNECT_TIMEOUT_SECONDS": "5",
    "ATELIER_REQUEST_TIMEOUT_SECONDS": "30",
    "ATELIER_STREAM_IDLE_TIMEOUT_SECONDS": "10",
}
# One-shot misbehaviours the "flaky" mode queues at the fake: retryable errors, cut connections, stalls.
FLAKY_CHAT = [
    {"kind": "preset", "name": "rate_limited", "args": {"retry_after": 1}},
    {"kind": "preset", "name": "internal_error"},
    {"kind": "preset", "name": "unavailable", "args": {"retry_after": 1}},
    {"kind": "preset", "name": "overloaded"},
    {"kind": "truncate", "after_tokens": 2},
    {"kind": "stall", "seconds": 1.5, "then": "close"},
]
FLAKY_VIDEO = [
    {"kind": "preset", "name": "internal_error"},
    {"kind": "preset", "name": "rate_limited", "args": {"retry_after": 1}},
    {"kind": "truncate"},  # the job may exist but the answer is lost: delivery unknown
]
LONG_REPLY = " ".join(f"word{i}" for i in range(60))


@dataclass
class Submitted:
    """One request sent to the local API and what it answered."""

    marker: str
    kind: str
    cycle: int
    status: int | None = None
    gen_id: str | None = None
    error: str | None = None

    @property
    def acknowledged(self) -> bool:
        return self.status is not None and (200 <= self.status < 300 or self.status == 502)


class App:
    """One run of ``python -m desktop --no-window`` on the loop's data directory."""

    def __init__(self, data_dir: Path, env: dict[str, str], console: Path) -> None:
        self.data_dir = data_dir
        self.env = env
        self.console = console
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}

    def start(self, timeout: float = 90) -> None:
        with self.console.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "desktop", "--no-window"], cwd=ROOT, env=self.env,
                                         stdout=out, stderr=subprocess.STDOUT)
        runtime = self.data_dir / "runtime.json"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the app exited with {self.proc.returncode} during start-up (see {self.console})")
            try:
                info = json.loads(runtime.read_text())
                if info.get("pid") == self.proc.pid:
                    httpx.get(info["api_url"] + "/api/v1/health", timeout=2).raise_for_status()
                    self.info = info
                    return
            except (OSError, ValueError, httpx.HTTPError):
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"the app did not publish runtime.json within {timeout:.0f} s (see {self.console})")

    def client(self, timeout: float = 60) -> httpx.Client:
        return httpx.Client(base_url=self.info["api_url"], timeout=timeout, trust_env=False,
                            headers={"Authorization": f"Bearer {self.info['token']}"})

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode


def submit(app: App, item: Submitted, delay: float) -> None:
    """Send one request after ``delay`` seconds; record the status code and the generation id."""
    time.sleep(delay)
    prompt = f"fault loop {item.marker}: one short line about the sea"
    body: dict[str, Any] = {"kind": "text", "model": MODELS["text"], "prompt": prompt}
    if item.kind == "text_stream":
        body["stream"] = True
    elif item.kind == "image":
        body.update(kind="image", model=MODELS["image"])
    elif item.kind == "deferred":
        body["defer"] = True
    elif item.kind == "video":
        body.update(kind="video", model=MODELS["video"], params={"duration": 4})
    try:
        with app.client() as api:
            if item.kind == "text_stream":
                with api.stream("POST", "/api/v1/generations", json=body) as r:
                    item.status = r.status_code
                    if r.status_code != 200:
                        r.read()
                        item.gen_id = ((r.json() or {}).get("generation") or {}).get("id")
                        return
                    event = None
                    for line in r.iter_lines():  # read to the end, or until the kill cuts the stream
                        if line.startswith("event: "):
                            event = line[7:]
                        elif line.startswith("data: ") and event == "generation":
                            item.gen_id = json.loads(line[6:]).get("id")
            else:
                r = api.post("/api/v1/generations", json=body)
                item.status = r.status_code
                data = r.json()
                item.gen_id = data.get("id") or (data.get("generation") or {}).get("id")
    except (httpx.HTTPError, ValueError) as exc:
        item.error = type(exc).__name__


def misbehave(fake: FakeOpenRouterProcess, mode: str, rng: random.Random) -> float | None:
    """Script the fake for one cycle; returns when (seconds into the cycle) to take it offline, if at all."""
    if mode == "mixed":
        mode = rng.choice(["normal", "flaky", "slow", "offline"])
    if mode in ("flaky", "slow"):
        for _ in range(rng.randint(1, 4)):
            fake.enqueue("/chat/completions", rng.choice(FLAKY_CHAT))
        if rng.random() < 0.5:
            fake.enqueue("/videos", rng.choice(FLAKY_VIDEO))
    if mode == "slow":
        fake.enqueue("/chat/completions", {"kind": "stall", "seconds": 2.0, "keepalive_interval": 0.5})
    if mode == "offline":
        return rng.uniform(0.0, 2.0)
    return None


def wait_drained(app: App, seconds: float) -> dict[str, Any]:
    """Poll ``/status`` until nothing is queued or running (or the deadline passes)."""
    deadline = time.monotonic() + seconds
    status: dict[str, Any] = {}
    with app.client(timeout=10) as api:
        while time.monotonic() < deadline:
            try:
                status = api.get("/api/v1/status").json()
            except (httpx.HTTPError, ValueError):
                time.sleep(0.5)
                continue
            if status["queue"]["queued"] == 0 and status["queue"]["running"] == 0:
                return status
            time.sleep(0.5)
    return status


def all_generations(app: App) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    with app.client() as api:
        for _ in range(1000):  # bounded: 200 per page
            params: dict[str, Any] = {"limit": 200}
            if cursor:
                params["cursor"] = cursor
            page = api.get("/api/v1/generations", params=params).json()
            items += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                break
    return items


def marker_of(text: str | None) -> str | None:
    if not text or "fault loop " not in text:
        return None
    return text.split("fault loop ", 1)[1].split(":", 1)[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cycles", type=int, default=10, help="kill -9 cycles (default 10)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    parser.add_argument("--fake-behaviour", choices=BEHAVIOURS, default="mixed",
                        help="how the fake OpenRouter misbehaves: normal, flaky (429/5xx/cut connections), slow "
                        "(long streams, stalls), offline (short outages) or mixed (one of these per cycle)")
    parser.add_argument("--max-requests", type=int, default=8, help="most requests submitted per cycle")
    parser.add_argument("--kill-within", type=float, default=4.0, help="kill at a random moment up to this many "
                        "seconds after the workload starts")
    parser.add_argument("--drain-seconds", type=float, default=240.0, help="how long the final run may drain")
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="stop starting cycles after this long")
    parser.add_argument("--no-retry-unknown", action="store_true",
                        help="set ATELIER_RETRY_UNKNOWN_TEXT=0: a text or image may then complete only once")
    parser.add_argument("--keep", action="store_true", help="keep the data directory and print its path")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    rng = random.Random(seed)  # noqa: S311 - a reproducible workload, not a secret
    started = time.monotonic()
    print(f"fault loop: cycles={args.cycles} seed={seed} fake-behaviour={args.fake_behaviour}", flush=True)

    work = Path(tempfile.mkdtemp(prefix="atelier-fault-loop-"))
    data_dir = work / "data"
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "display", "wayland_display")}
    slow = args.fake_behaviour in ("slow", "mixed")
    fake = FakeOpenRouterProcess(keys=[KEY], token_delay=0.03 if slow else 0.0,
                                 extra_args=["--reply-text", LONG_REPLY] if slow else None).start()
    env.update(FAST_ENV)
    env.update({
        "ATELIER_DATA_DIR": str(data_dir),
        "ATELIER_OPENROUTER_BASE_URL": fake.base_url,
        "ATELIER_KEYRING_BACKEND": "file",
        "ATELIER_POLICY_FILE": str(work / "no-policy.json"),
        "ATELIER_NO_BROWSER": "1",
        "OPENROUTER_API_KEY": KEY,
        "NO_PROXY": "127.0.0.1,localhost",
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
    })
    if args.no_retry_unknown:
        env["ATELIER_RETRY_UNKNOWN_TEXT"] = "0"
    app = App(data_dir, env, work / "console.log")
    submitted: list[Submitted] = []
    cycles_done = 0
    try:
        for cycle in range(1, args.cycles + 1):
            if time.monotonic() - started > args.max_seconds:
                print(f"time limit reached after {cycles_done} cycles", flush=True)
                break
            offline_at = misbehave(fake, args.fake_behaviour, rng)
            app.start()
            batch = []
            for n in range(rng.randint(1, args.max_requests)):
                kind = rng.choices([k for k, _ in WORKLOAD], weights=[w for _, w in WORKLOAD])[0]
                batch.append(Submitted(marker=f"c{cycle}n{n}x{rng.randrange(16**6):06x}", kind=kind, cycle=cycle))
            kill_at = rng.uniform(0.05, args.kill_within)
            # Every request leaves before the kill; the kill lands before, during or after its answer.
            threads = [threading.Thread(target=submit, args=(app, item, rng.uniform(0, kill_at * 0.9)),
                                        daemon=True) for item in batch]
            t0 = time.monotonic()
            for thread in threads:
                thread.start()
            if offline_at is not None and offline_at < kill_at:
                time.sleep(offline_at)
                fake.go_offline(seconds=rng.uniform(0.5, 3.0))
            time.sleep(max(0.0, kill_at - (time.monotonic() - t0)))
            app.kill()
            for thread in threads:
                thread.join(30)
            submitted += batch
            cycles_done = cycle
            acked = sum(1 for s in batch if s.acknowledged)
            print(f"cycle {cycle}: killed after {kill_at:.2f} s; {len(batch)} submitted, {acked} acknowledged",
                  flush=True)
            fake.go_online()

        # The last run: no kill; let everything go out.
        fake.go_online()
        app.start()
        status = wait_drained(app, args.drain_seconds)
        generations = all_generations(app)
        code = app.stop()
        if code != 0:
            print(f"warning: the final run exited with {code}", flush=True)
        completions = fake.completions()
        requests = fake.requests()
    except RuntimeError as exc:
        print(f"fault loop: harness failure: {exc}", file=sys.stderr, flush=True)
        app.kill()
        fake.stop()
        return 2
    finally:
        fake.stop()

    by_marker = {marker_of(g["prompt"]): g for g in generations if marker_of(g["prompt"])}
    completed = Counter(marker_of(c.get("prompt")) for c in completions)
    video_posts = [r for r in requests if r["method"] == "POST" and r["path"] == "/videos"]
    # A submission that got an HTTP error was refused before any job existed; one answered 202, or cut off
    # without an answer, may have started (and billed) a job.
    videos_sent = Counter(marker_of((r.get("json") or {}).get("prompt")) for r in video_posts
                          if r.get("status") is None or 200 <= r["status"] < 300)
    chat_sent = Counter(marker_of(_last_user_text(r.get("json"))) for r in requests
                        if r["method"] == "POST" and r["path"] == "/chat/completions")
    allowed_text = 1 if args.no_retry_unknown else 2

    acknowledged = [s for s in submitted if s.acknowledged]
    lost = [s for s in acknowledged if s.marker not in by_marker]
    stuck = [g for g in generations if g["status"] not in TERMINAL]
    duplicates = []
    for marker, gen in by_marker.items():
        if gen["kind"] == "video":
            if videos_sent[marker] > 1:
                duplicates.append((marker, gen, f"video job possibly started {videos_sent[marker]} times"))
        elif completed[marker] > allowed_text:
            duplicates.append((marker, gen, f"completed {completed[marker]} times"))
    twice = sum(1 for m, g in by_marker.items() if g["kind"] != "video" and completed[m] == 2)

    print()
    print(f"cycles:             {cycles_done} (seed {seed}, fake behaviour {args.fake_behaviour})")
    print(f"submitted:          {len(submitted)} ({dict(Counter(s.kind for s in submitted))})")
    print(f"acknowledged:       {len(acknowledged)}")
    print(f"stored:             {len(by_marker)} (unacknowledged but stored: "
          f"{sum(1 for s in submitted if not s.acknowledged and s.marker in by_marker)})")
    print(f"final statuses:     {dict(Counter(g['status'] for g in by_marker.values()))}")
    print(f"upstream sends:     chat {sum(chat_sent[m] for m in by_marker)}, video {len(video_posts)} "
          f"({sum(videos_sent.values())} accepted or unanswered); most chat sends of one generation: "
          f"{max([chat_sent[m] for m in by_marker] + [0])}")
    print(f"completed twice:    {twice} (text/image; allowed: {allowed_text})")
    print(f"drained:            queue {status.get('queue')}")
    print(f"lost:               {len(lost)}")
    print(f"stuck:              {len(stuck)}")
    print(f"duplicates:         {len(duplicates)}")
    for s in lost:
        print(f"  lost: {s.marker} ({s.kind}, cycle {s.cycle}, answered {s.status}, id {s.gen_id})")
    for g in stuck:
        print(f"  stuck: {g['id']} ({g['kind']}, {g['status']}, attempts {g['attempts']}, "
              f"next {g['next_attempt_at']})")
    for _marker, gen, what in duplicates:
        print(f"  duplicate: {gen['id']} ({gen['kind']}, {gen['status']}, attempts {gen['attempts']}): {what}")
    if args.keep:
        print(f"data directory kept: {data_dir}")
    else:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    print(f"elapsed:            {time.monotonic() - started:.0f} s")
    return 1 if lost or stuck or duplicates else 0


def _last_user_text(body: dict[str, Any] | None) -> str | None:
    messages = (body or {}).get("messages") or []
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return None


if __name__ == "__main__":
    raise SystemExit(main())
