"""What the headless app costs when nothing happens: CPU time and context switches per second.

The app is started headless against the fake OpenRouter (online, a key set), left alone for ``--settle``
seconds (start-up work such as the catalogue refresh ends), then every thread of the process is read from
``/proc`` before and after ``--seconds`` of idling: user + system CPU time and voluntary + involuntary
context switches. Linux only.

    .venv/bin/python bench/idle.py [--runs 3] [--settle 8] [--seconds 30] [--json [PATH]]

What wakes an idle app is listed in docs/performance.md ("Idle").
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from _common import app_env, base_parser, emit, log, start_app, start_fake, stop_app, summarize, table, temp_dir


def _threads(pid: int) -> tuple[int, int, int]:
    """CPU clock ticks (user + system), context switches and thread count over every thread of ``pid``."""
    ticks = switches = count = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            status = (task / "status").read_text().splitlines()
        except OSError:  # the thread ended between the listing and the read
            continue
        ticks += int(fields[11]) + int(fields[12])
        switches += sum(int(line.split()[1]) for line in status if "ctxt_switches" in line)
        count += 1
    return ticks, switches, count


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0], runs=3)
    parser.add_argument("--settle", type=float, default=8.0, help="seconds after start before measuring")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds measured")
    args = parser.parse_args()
    hz = os.sysconf("SC_CLK_TCK")
    fake = start_fake()
    cpu: list[float] = []
    wakes: list[float] = []
    threads = 0
    for run in range(args.runs):
        data_dir = temp_dir("atelier-idle-")
        app = start_app(data_dir, app_env(data_dir, base_url=fake.base_url))
        try:
            time.sleep(args.settle)
            before, t0 = _threads(app.pid), time.monotonic()
            time.sleep(args.seconds)
            after, elapsed = _threads(app.pid), time.monotonic() - t0
        finally:
            stop_app(app)
            shutil.rmtree(data_dir, ignore_errors=True)
        cpu.append(100 * (after[0] - before[0]) / hz / elapsed)
        wakes.append((after[1] - before[1]) / elapsed)
        threads = after[2]
        log(f"run {run + 1}: {cpu[-1]:.2f} % of a core, {wakes[-1]:.1f} context switches/s, {threads} threads")
    c, w = summarize(cpu), summarize(wakes)
    text = table(f"Idle headless app, {args.runs} runs of {args.seconds:.0f} s after {args.settle:.0f} s",
                 ["metric", "median", "max"],
                 [["CPU (% of one core)", c["median"], c["max"]], ["context switches / s", w["median"], w["max"]],
                  ["threads", float(threads), float(threads)]])
    emit(args, {"cpu_percent": cpu, "context_switches_per_s": wakes, "threads": threads}, text)


if __name__ == "__main__":
    main()
