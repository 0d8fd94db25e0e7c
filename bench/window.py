"""The real window under Xvfb: time from launch to the first page loaded in it, and memory of the whole app.

Each run starts ``python -m desktop`` (with its window: Qt WebEngine through pywebview) under ``xvfb-run`` on
a temp data dir, and reads the app's log for the line the window writes when its first page has loaded
(pywebview's ``loaded`` event, after the login redirect to the Studio). Then, after ``--settle`` seconds, it
sums PSS (``/proc/PID/smaps_rollup``) over the app process and all its descendants (Qt WebEngine's
renderer, GPU and zygote processes), and stops the app with SIGTERM. It also reports the CPU time the app's
processes had used when the page loaded (with the GUI probe's): on a loaded machine the wall-clock times
swing by seconds, the CPU time much less. The first run after a checkout is slower
(cold caches); ``--warmup`` runs are not counted.

    .venv/bin/python bench/window.py [--runs 5] [--warmup 1] [--settle 3] [--bundle dist/Atelier] [--json [PATH]]

``--bundle DIR`` runs a frozen one-folder bundle (``DIR/Atelier``, built with ``ATELIER_BUNDLE_GUI=1``)
instead of the source tree. When the window logs ``window: shown`` (it is shown with the theme's background
before the page loads), the time to that line is reported too.

Extra Chromium flags can be tried with ``QTWEBENGINE_CHROMIUM_FLAGS`` in the environment (the app adds its
own to them). Targets (issue 14): window painted ≤ 1.2 s, PSS of the whole app ≤ 350 MB.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from _common import PYTHON, ROOT, app_env, base_parser, emit, log, summarize, table, temp_dir, verdict

LOADED = "window: first page loaded"
SHOWN = "window: shown"


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def pss_mb(pids: list[int]) -> tuple[float, dict[str, float]]:
    total, by_name = 0.0, {}
    for pid in pids:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            kind = next((a.decode()[7:] for a in cmd if a.startswith(b"--type=")), "")
            name = f"{name} ({kind})" if kind else name
        except OSError:
            continue
        for line in rollup.splitlines():
            if line.startswith("Pss:"):
                mb = int(line.split()[1]) / 1024
                total += mb
                by_name[name] = by_name.get(name, 0.0) + mb
    return total, by_name


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes and of their children that have exited (the GUI probe)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    return total / tick


def _stamp(line: str, started_wall: float) -> float:
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp() - started_wall


def one_run(settle: float, bundle: Path | None = None) -> dict[str, Any]:
    data_dir = temp_dir("window")
    env = app_env(data_dir, base_url="http://127.0.0.1:9/api/v1", key=None)
    logfile = data_dir / "logs" / "atelier.log"
    started_wall = time.time()
    t0 = time.perf_counter()
    app = [str(bundle / "Atelier")] if bundle else [PYTHON, "-m", "desktop"]
    proc = subprocess.Popen(
        ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", *app, "--data-dir", str(data_dir)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    app_pid = None
    try:
        deadline = t0 + 60
        loaded_at = shown_at = None
        while loaded_at is None:
            if time.perf_counter() > deadline or proc.poll() is not None:
                raise RuntimeError(f"no '{LOADED}' line (exit {proc.poll()}): "
                                   f"{logfile.read_text()[-2000:] if logfile.exists() else 'no log'}")
            if logfile.exists():
                for line in logfile.read_text().splitlines():
                    if SHOWN in line and shown_at is None:
                        shown_at = _stamp(line, started_wall)
                    if LOADED in line:
                        loaded_at = _stamp(line, started_wall)
                        break
            time.sleep(0.02)
        runtime = json.loads((data_dir / "runtime.json").read_text())
        app_pid = int(runtime["pid"])
        cpu = cpu_seconds(descendants(app_pid))  # a measure of the work done that load does not inflate
        time.sleep(settle)
        pids = descendants(app_pid)
        total, by_name = pss_mb(pids)
        return {"loaded_s": loaded_at, "shown_s": shown_at, "cpu_s": cpu, "pss_mb": total, "processes": len(pids),
                "pss_by_name": by_name}
    finally:
        if app_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(app_pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    parser = base_parser(__doc__ or "", runs=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--settle", type=float, default=3.0, help="seconds after the page loaded before PSS")
    parser.add_argument("--bundle", type=Path, help="a frozen one-folder bundle to run instead of the source")
    args = parser.parse_args()
    bundle = args.bundle.resolve() if args.bundle else None
    runs = []
    for i in range(args.warmup + args.runs):
        result = one_run(args.settle, bundle)
        counted = i >= args.warmup
        shown = f"shown after {result['shown_s']:.2f} s, " if result["shown_s"] is not None else ""
        log(f"{'run' if counted else 'warm-up'} {i + 1}: {shown}page loaded after {result['loaded_s']:.2f} s "
            f"({result['cpu_s']:.2f} CPU s), PSS {result['pss_mb']:.0f} MB over {result['processes']} processes")
        if counted:
            runs.append(result)
    loaded = summarize([r["loaded_s"] * 1000 for r in runs])
    shown_runs = [r["shown_s"] * 1000 for r in runs if r["shown_s"] is not None]
    shown = summarize(shown_runs) if shown_runs else None
    pss = summarize([r["pss_mb"] for r in runs])
    cpu = summarize([r["cpu_s"] for r in runs])
    names: dict[str, list[float]] = {}
    for r in runs:
        for name, mb in r["pss_by_name"].items():
            names.setdefault(name, []).append(mb)
    text = "\n".join([
        table(f"Window under Xvfb ({len(runs)} runs{', ' + str(bundle) if bundle else ''})",
              ["metric", "median", "min", "max"], [
            *([("launch → window shown (ms)", f"{shown['median']:.0f}", f"{shown['min']:.0f}",
                f"{shown['max']:.0f}")] if shown else []),
            ("launch → first page loaded (ms)", f"{loaded['median']:.0f}", f"{loaded['min']:.0f}",
             f"{loaded['max']:.0f}"),
            ("CPU time of the app's processes by then (s)", f"{cpu['median']:.2f}", f"{cpu['min']:.2f}",
             f"{cpu['max']:.2f}"),
            ("PSS, app + descendants (MB)", f"{pss['median']:.0f}", f"{pss['min']:.0f}", f"{pss['max']:.0f}"),
        ]),
        table("PSS by process name (MB, median)", ["process", "PSS"],
              sorted(((n, f"{summarize(v)['median']:.0f}") for n, v in names.items()), key=lambda x: -float(x[1]))),
        table("Targets", ["target", "goal", "measured", "result"], [
            ("window painted", "≤ 1.2 s", f"{loaded['median'] / 1000:.2f} s", verdict(loaded["median"] <= 1200)),
            ("PSS of the whole app", "≤ 350 MB", f"{pss['median']:.0f} MB", verdict(pss["median"] <= 350)),
        ]),
    ])
    emit(args, {"runs": runs, "shown_ms": shown, "loaded_ms": loaded, "cpu_s": cpu, "pss_mb": pss}, text)


if __name__ == "__main__":
    main()
