"""Shared pieces of the benchmark scripts: processes, the fake OpenRouter, statistics and output.

Every benchmark runs the real app (``python -m desktop --no-window``) and the fake OpenRouter
(``python -m tests.fakes.openrouter``) as child processes bound to 127.0.0.1, each in its own session so
that only those processes are ever signalled. :class:`Processes` stops all of them on exit, on Ctrl-C and
on SIGTERM. Nothing here talks to anything but loopback.

``BENCH_APP_PYTHONPATH`` (optional) is put in front of the children's ``PYTHONPATH``: a way to measure a
candidate fix (say, a ``sitecustomize.py`` that patches a module) before it is made in the tree.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import platform
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # scripts run as ``python bench/<name>.py``: make the app packages importable
    sys.path.insert(0, str(ROOT))

PYTHON = sys.executable
FAKE_KEY = "sk-or-v1-" + "be0c4" * 12 + "bench"
TEXT_MODEL = "openai/gpt-4o-mini"
LOOPBACK = "127.0.0.1"
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


# ---------------------------------------------------------------------------------------------- processes


class Processes:
    """Child processes started by a benchmark; each gets SIGTERM, then SIGKILL, when the run ends."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen] = []
        self._lock = threading.Lock()
        atexit.register(self.stop_all)

    def spawn(self, args: Sequence[str], *, env: dict[str, str], stdout: Any = subprocess.PIPE) -> subprocess.Popen:
        """Start ``args`` from the repo root in a new session (so stopping it never touches the caller)."""
        proc = subprocess.Popen(  # noqa: S603 - fixed argument lists built by the benchmarks
            list(args), cwd=ROOT, env=env, stdout=stdout, stderr=subprocess.PIPE, text=True, bufsize=1,
            start_new_session=True,
        )
        with self._lock:
            self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL. Returns the exit status."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(5)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError, ValueError):
                    stream.close()
        with self._lock:
            if proc in self._procs:
                self._procs.remove(proc)
        return proc.returncode

    def stop_all(self) -> None:
        """Stop every process still running (newest first: the app before the fake it talks to)."""
        with self._lock:
            procs = list(reversed(self._procs))
        for proc in procs:
            self.stop(proc, timeout=5.0)


PROCESSES = Processes()


def _raise_interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# SIGTERM to the benchmark unwinds like Ctrl-C, so ``finally`` blocks and atexit stop the children.
signal.signal(signal.SIGTERM, _raise_interrupt)


class _LineReader:
    """Reads a child's stdout on a thread so the benchmark can wait for a line with a timeout."""

    def __init__(self, stream: Any) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: Any) -> None:
        with contextlib.suppress(OSError, ValueError):
            for line in stream:
                self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, predicate: Any, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the process did not print the expected line in time")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError("the process exited before printing the expected line")
            if predicate(line):
                return line


def _drain_stderr(proc: subprocess.Popen) -> None:
    """Keep reading stderr so a chatty child never blocks on a full pipe."""

    def pump() -> None:
        with contextlib.suppress(OSError, ValueError):
            for _ in proc.stderr:  # type: ignore[union-attr]
                pass

    threading.Thread(target=pump, daemon=True).start()


# ---------------------------------------------------------------------------------------------- the fake


@dataclass
class Fake:
    """A running fake OpenRouter (standalone process) and its control API."""

    proc: subprocess.Popen
    base_url: str
    control_url: str
    key: str

    def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Call the fake's control API (``/_fake/...``), which stays up while the API port is offline."""
        response = httpx.request(method, f"{self.control_url}{path}", json=body, timeout=10, trust_env=False)
        response.raise_for_status()
        return response.json() if response.content else None

    def offline(self) -> None:
        self.control("POST", "/offline", {})

    def online(self) -> None:
        self.control("POST", "/online", {})

    def stats(self) -> dict[str, Any]:
        return self.control("GET", "/stats")


def start_fake(*, token_delay: float = 0.0, key: str = FAKE_KEY) -> Fake:
    """Start ``python -m tests.fakes.openrouter`` on loopback and wait for its address line."""
    env = clean_env()
    proc = PROCESSES.spawn(
        [PYTHON, "-m", "tests.fakes.openrouter", "--port", "0", "--control-port", "0", "--key", key,
         "--token-delay", str(token_delay)],
        env=env,
    )
    _drain_stderr(proc)
    reader = _LineReader(proc.stdout)
    line = reader.wait_for(lambda text: text.startswith("{"), timeout=30)
    info = json.loads(line)
    control = info["control_url"].rstrip("/")
    if not control.endswith("/_fake"):
        control += "/_fake"
    fake = Fake(proc=proc, base_url=info["base_url"].rstrip("/"), control_url=control, key=key)
    for url in (fake.base_url, fake.control_url):
        assert_loopback(url)
    return fake


# ---------------------------------------------------------------------------------------------- the app


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without proxies or a display (the app serves headless, talks direct)."""
    env = dict(os.environ)
    for name in (*_PROXY_VARS, "DISPLAY", "WAYLAND_DISPLAY", "OPENROUTER_API_KEY"):
        env.pop(name, None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.environ.get("BENCH_APP_PYTHONPATH"), str(ROOT)]))
    env["PYTHONUNBUFFERED"] = "1"
    env["NO_PROXY"] = "127.0.0.1,localhost"
    env.update(extra)
    return env


def app_env(data_dir: Path, *, base_url: str, key: str | None = FAKE_KEY, **extra: str) -> dict[str, str]:
    """Environment for ``python -m desktop``: a private data dir, the fake as OpenRouter, a file key store."""
    assert_loopback(base_url)
    env = clean_env(
        ATELIER_DATA_DIR=str(data_dir),
        ATELIER_KEYRING_BACKEND="file",
        ATELIER_POLICY_FILE=str(data_dir / "no-policy.json"),
        ATELIER_NO_BROWSER="1",
        ATELIER_OPENROUTER_BASE_URL=base_url,
        **extra,
    )
    if key:
        env["OPENROUTER_API_KEY"] = key  # read-only key source: nothing is written to a keychain
    return env


@dataclass
class App:
    """A running ``python -m desktop --no-window``."""

    proc: subprocess.Popen
    data_dir: Path
    started: float  # perf_counter() just before the process was created
    login_url: str
    ready: float  # perf_counter() when the login URL was printed (both servers up, runtime.json written)
    ui_url: str = ""
    api_url: str = ""
    token: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def api_client(self, **kwargs: Any) -> httpx.Client:
        """An httpx client for the backend's ``/api/v1`` with the launch token."""
        return httpx.Client(base_url=f"{self.api_url}/api/v1", headers={"Authorization": f"Bearer {self.token}"},
                            timeout=60, trust_env=False, **kwargs)

    def ui_client(self, **kwargs: Any) -> httpx.Client:
        """An httpx client for the Flask UI, logged in (the session cookie set by ``/login``).

        The client has already made a request, so close it with ``contextlib.closing`` (not ``with``).
        """
        client = httpx.Client(base_url=self.ui_url, timeout=60, trust_env=False, **kwargs)
        response = client.get("/login", params={"token": self.token})
        if response.status_code != 302:
            raise RuntimeError(f"login failed: HTTP {response.status_code}")
        return client

    def session_cookies(self) -> httpx.Cookies:
        client = self.ui_client()
        try:
            return httpx.Cookies(client.cookies)
        finally:
            client.close()


def start_app(data_dir: Path, env: dict[str, str], *, timeout: float = 60.0) -> App:
    """Start the app headless and wait until it prints its login URL (its servers are then serving)."""
    started = time.perf_counter()
    proc = PROCESSES.spawn([PYTHON, "-m", "desktop", "--no-window", "--data-dir", str(data_dir)], env=env)
    _drain_stderr(proc)
    reader = _LineReader(proc.stdout)
    try:
        line = reader.wait_for(lambda text: text.startswith("http://"), timeout=timeout)
    except (TimeoutError, RuntimeError):
        PROCESSES.stop(proc)
        raise
    ready = time.perf_counter()
    parts = urlsplit(line.strip())
    app = App(proc=proc, data_dir=data_dir, started=started, login_url=line.strip(), ready=ready,
              ui_url=f"{parts.scheme}://{parts.netloc}", token=parse_qs(parts.query)["token"][0])
    assert_loopback(app.ui_url)
    runtime = json.loads((data_dir / "runtime.json").read_text())
    app.api_url = runtime["api_url"]
    assert_loopback(app.api_url)
    return app


def stop_app(app: App, timeout: float = 15.0) -> tuple[int | None, float]:
    """SIGTERM the app; returns (exit status, seconds it took to exit)."""
    t0 = time.perf_counter()
    rc = PROCESSES.stop(app.proc, timeout=timeout)
    return rc, time.perf_counter() - t0


def temp_dir(prefix: str) -> Path:
    """A new private temp directory, removed by the caller (``shutil.rmtree``)."""
    return Path(tempfile.mkdtemp(prefix=f"atelier-bench-{prefix}-"))


def assert_loopback(url: str) -> None:
    """Refuse any address that is not 127.0.0.1: benchmarks never leave this machine."""
    host = urlsplit(url).hostname
    if host not in (LOOPBACK, "localhost"):
        raise RuntimeError(f"benchmark traffic must stay on loopback, not {url}")


def rss_mb(pid: int) -> float | None:
    """Resident set size of a process in MiB (``VmRSS`` in /proc/<pid>/status), None if unavailable."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# ---------------------------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0–100) with linear interpolation between closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(values: Sequence[float]) -> dict[str, float]:
    """n, median, p90, p95, min, max and mean of a sample."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "median": statistics.median(values),
        "p90": percentile(values, 90),
        "p95": percentile(values, 95),
        "min": min(values),
        "max": max(values),
        "mean": statistics.fmean(values),
    }


def ms(seconds: float) -> float:
    return seconds * 1000.0


# ---------------------------------------------------------------------------------------------- output


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = round(int(line.split()[1]) / 1024 / 1024, 1)
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": mem,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def base_parser(description: str, *, runs: int) -> argparse.ArgumentParser:
    """The options every benchmark has: ``--runs`` and ``--json``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--runs", type=int, default=runs, help=f"measured repetitions (default {runs})")
    parser.add_argument("--json", nargs="?", const="-", metavar="PATH",
                        help="also write the results as JSON to PATH ('-' or no value: stdout, no table)")
    return parser


def table(title: str, headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain-text table with right-aligned numbers."""
    body = [[_cell(value) for value in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in body:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in body:
        cells = []
        for i, (cell, width) in enumerate(zip(row, widths, strict=True)):
            cells.append(cell.ljust(width) if i == 0 else cell.rjust(width))
        lines.append("  ".join(cells))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"
    if value is None:
        return "-"
    return str(value)


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def emit(args: argparse.Namespace, results: dict[str, Any], text: str) -> None:
    """Print the tables, or the JSON (``--json``), or both (``--json PATH``)."""
    results = {"machine": machine(), **results}
    if args.json in (None, ""):
        print(text)
        return
    payload = json.dumps(results, indent=2, default=str)
    if args.json == "-":
        print(payload)
    else:
        Path(args.json).write_text(payload + "\n")
        print(text)
        print(f"\nJSON written to {args.json}")


def log(message: str) -> None:
    """Progress on stderr, so ``--json`` output on stdout stays clean."""
    print(message, file=sys.stderr, flush=True)
