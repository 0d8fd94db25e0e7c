"""Start-up time and idle memory of ``python -m desktop --no-window``.

For each run the clock starts just before the process is created and stops when the UI's ``/login`` answers
(a 302 that sets the session cookie: the UI is served). Also recorded: when the app printed its login URL
(both servers up, ``runtime.json`` written), when the Studio page (``/``, with the cookie) first rendered,
RSS right after start and after ``--idle-seconds`` of idling, and how long SIGTERM takes to exit.

Two modes: ``fresh`` (a new empty data dir each run: migrations run, the model catalogue is fetched) and
``warm`` (the same data dir every run, prepared by one untimed launch). The fake OpenRouter stands in for
openrouter.ai so the catalogue refresh at start stays on loopback.

    .venv/bin/python bench/startup.py [--runs 10] [--idle-seconds 5] [--idle-samples 3] [--json [PATH]]

Targets (issue 2): under 1 s to a served UI, under 150 MB idle RSS, on a 2-core machine.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import httpx
from _common import (
    Fake,
    app_env,
    base_parser,
    emit,
    log,
    ms,
    rss_mb,
    start_app,
    start_fake,
    stop_app,
    summarize,
    table,
    temp_dir,
    verdict,
)

TARGET_SERVED_MS = 1000.0
TARGET_IDLE_RSS_MB = 150.0


def one_run(fake: Fake, data_dir: Path, *, idle_seconds: float) -> dict[str, Any]:
    """Launch, wait for a served ``/login``, render the Studio once, idle, read RSS, stop."""
    app = start_app(data_dir, app_env(data_dir, base_url=fake.base_url))
    try:
        printed = app.ready - app.started
        with httpx.Client(base_url=app.ui_url, timeout=30, trust_env=False) as client:
            while True:  # the URL is printed after both servers listen, so this normally answers at once
                try:
                    response = client.get("/login", params={"token": app.token})
                    break
                except httpx.TransportError:
                    time.sleep(0.002)
            served = time.perf_counter() - app.started
            if response.status_code != 302:
                raise RuntimeError(f"/login answered {response.status_code}")
            studio = client.get("/")
            studio_at = time.perf_counter() - app.started
            if studio.status_code != 200:
                raise RuntimeError(f"the Studio page answered {studio.status_code}")
        rss_start = rss_mb(app.pid)
        rss_idle = None
        if idle_seconds > 0:
            time.sleep(idle_seconds)
            rss_idle = rss_mb(app.pid)
    finally:
        rc, stop_s = stop_app(app)
    if rc != 0:
        raise RuntimeError(f"the app exited with status {rc} after SIGTERM")
    return {
        "printed_url_ms": ms(printed),
        "login_served_ms": ms(served),
        "studio_rendered_ms": ms(studio_at),
        "rss_after_start_mb": rss_start,
        "rss_idle_mb": rss_idle,
        "sigterm_exit_ms": ms(stop_s),
    }


def run_mode(fake: Fake, mode: str, runs: int, idle_seconds: float, idle_samples: int) -> list[dict[str, Any]]:
    results = []
    warm_dir = None
    if mode == "warm":
        warm_dir = temp_dir("startup-warm")
        log("warm: preparing the data dir with one untimed launch")
        one_run(fake, warm_dir, idle_seconds=0)
    try:
        for i in range(runs):
            data_dir = warm_dir or temp_dir("startup-fresh")
            idle = idle_seconds if i < idle_samples else 0
            try:
                result = one_run(fake, data_dir, idle_seconds=idle)
            finally:
                if warm_dir is None:
                    shutil.rmtree(data_dir, ignore_errors=True)
            log(f"{mode} run {i + 1}/{runs}: /login served in {result['login_served_ms']:.0f} ms, "
                f"RSS {result['rss_after_start_mb']:.1f} MB")
            results.append(result)
    finally:
        if warm_dir is not None:
            shutil.rmtree(warm_dir, ignore_errors=True)
    return results


def main() -> None:
    parser = base_parser(__doc__.split("\n")[0], runs=10)
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="idle time before the second RSS reading")
    parser.add_argument("--idle-samples", type=int, default=3,
                        help="runs per mode that also wait --idle-seconds for the idle RSS reading (default 3)")
    args = parser.parse_args()

    fake = start_fake()
    modes: dict[str, list[dict[str, Any]]] = {}
    for mode in ("fresh", "warm"):
        modes[mode] = run_mode(fake, mode, args.runs, args.idle_seconds, args.idle_samples)

    metrics = [
        ("printed_url_ms", "login URL printed (ms)"),
        ("login_served_ms", "UI /login served (ms)"),
        ("studio_rendered_ms", "Studio page rendered (ms)"),
        ("sigterm_exit_ms", "SIGTERM to exit (ms)"),
        ("rss_after_start_mb", "RSS after start (MB)"),
        ("rss_idle_mb", f"RSS after {args.idle_seconds:g} s idle (MB)"),
    ]
    summary: dict[str, dict[str, Any]] = {}
    rows = []
    for mode, results in modes.items():
        summary[mode] = {}
        for key, label in metrics:
            values = [r[key] for r in results if r[key] is not None]
            stats = summarize(values)
            summary[mode][key] = stats
            rows.append([f"{mode}: {label}", stats.get("n"), stats.get("median"), stats.get("p90"),
                         stats.get("min"), stats.get("max")])

    worst_served = max(summary[m]["login_served_ms"]["median"] for m in modes)
    idle_values = [r["rss_idle_mb"] for m in modes.values() for r in m if r["rss_idle_mb"] is not None]
    worst_rss = max(idle_values) if idle_values else float("nan")
    targets = [
        ["UI served, median (worst mode)", f"< {TARGET_SERVED_MS:.0f} ms", f"{worst_served:.0f} ms",
         verdict(worst_served < TARGET_SERVED_MS)],
        ["idle RSS, max over samples", f"< {TARGET_IDLE_RSS_MB:.0f} MB", f"{worst_rss:.1f} MB",
         verdict(worst_rss < TARGET_IDLE_RSS_MB)],
    ]
    text = "\n\n".join([
        table(f"Start-up of `python -m desktop --no-window` ({args.runs} runs per mode)",
              ["metric", "n", "median", "p90", "min", "max"], rows),
        table("Targets", ["target", "goal", "measured", "result"], targets),
    ])
    emit(args, {"benchmark": "startup", "runs": args.runs, "summary": summary, "raw": modes,
                "targets": {"served_ms": worst_served, "idle_rss_mb": worst_rss,
                            "served_met": worst_served < TARGET_SERVED_MS,
                            "rss_met": worst_rss < TARGET_IDLE_RSS_MB}}, text)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        raise SystemExit(130) from None
