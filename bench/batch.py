"""Batches: time to create a 1,000-item batch (one POST), drain throughput, and Studio TTFT while it drains.

The app runs headless against the fake OpenRouter (a child process). Three measurements:

1. ``POST /api/v1/batches`` with ``--rows`` rows (default 1,000) × 1 model: the time until the 201 answer, which
   comes after every item has been written (one transaction). Target: under 300 ms. A 1-row batch goes first
   (the first batch of a fresh process warms DuckDB's and Jinja's code paths; its time is shown apart).
2. Drain: from that answer until nothing of the batch is queued or running; items per second, and the fake's
   completion count (exactly one per item).
3. Studio TTFT: a streamed ``POST /api/v1/generations`` (text) timed to its first ``delta`` event, ``--samples``
   times with the outbox idle, then the same while a second batch drains. Target: median while draining under
   2× idle.

    .venv/bin/python bench/batch.py [--rows 1000] [--samples 15] [--token-delay 0.005] [--json [PATH]]
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
from typing import Any

from _common import (
    PROCESSES,
    TEXT_MODEL,
    app_env,
    base_parser,
    emit,
    log,
    ms,
    start_app,
    start_fake,
    stop_app,
    summarize,
    table,
    temp_dir,
    verdict,
)

CREATE_TARGET_MS = 300.0
TTFT_RATIO_TARGET = 2.0


def ttft(api: Any, prompt: str) -> float:
    """Seconds from sending a streamed text generation to its first delta."""
    t0 = time.perf_counter()
    first = None
    body = {"kind": "text", "model": TEXT_MODEL, "prompt": prompt, "stream": True}
    with api.stream("POST", "/generations", json=body) as response:
        if response.status_code != 200:
            raise RuntimeError(f"studio request answered {response.status_code}: {response.read()[:200]!r}")
        event = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif (line.startswith("data: ") and event == "delta" and first is None
                  and json.loads(line[6:]).get("text")):
                first = time.perf_counter() - t0
    if first is None:
        raise RuntimeError("the studio request streamed no text")
    return first


def create(api: Any, rows: int, label: str) -> tuple[dict[str, Any], float]:
    body = {"kind": "text", "models": [TEXT_MODEL], "name": label,
            "prompt": "Write a two-line caption for {{ subject }}, item {{ n }}.",
            "rows": [{"subject": "a linocut of a heron at dawn", "n": i} for i in range(rows)]}
    t0 = time.perf_counter()
    response = api.post("/batches", json=body)
    elapsed = time.perf_counter() - t0
    if response.status_code != 201:
        raise RuntimeError(f"POST /batches answered {response.status_code}: {response.text[:300]}")
    return response.json(), elapsed


def wait_finished(api: Any, batch_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        batch = api.get(f"/batches/{batch_id}", params={"limit": 1}).json()
        if batch["status"] in ("finished", "cancelled"):
            return batch
        if time.monotonic() > deadline:
            raise RuntimeError(f"the batch did not finish within {timeout:g} s: {batch['counts']}")
        time.sleep(0.05)


def run(args: Any) -> dict[str, Any]:
    fake = start_fake(token_delay=args.token_delay)
    data_dir = temp_dir("batch")
    app = start_app(data_dir, app_env(data_dir, base_url=fake.base_url, ATELIER_PROBE_SECONDS="0.5"))
    try:
        with app.api_client() as api:
            deadline = time.monotonic() + 30
            while not api.get("/status").json()["online"]:
                if time.monotonic() > deadline:
                    raise RuntimeError("the app never reached the fake")
                time.sleep(0.05)
            ttft(api, "warm-up")
            idle = [ttft(api, f"Idle {i}") for i in range(args.samples)]

            # The first batch of a fresh process pays for warming DuckDB's and Jinja's code paths: measured apart.
            warm, cold_s = create(api, 1, "bench warm-up")
            wait_finished(api, warm["id"], args.timeout)
            before = fake.stats()["completions"]
            batch, create_s = create(api, args.rows, "bench drain")
            log(f"created a {batch['total']}-item batch in {ms(create_s):.0f} ms")
            t0 = time.perf_counter()
            done = wait_finished(api, batch["id"], args.timeout)
            drain_s = time.perf_counter() - t0
            completions = fake.stats()["completions"] - before

            second, create2_s = create(api, args.rows, "bench ttft")
            busy = []
            for i in range(args.samples):
                busy.append(ttft(api, f"Busy {i}"))
                time.sleep(0.05)
            still = api.get(f"/batches/{second['id']}", params={"limit": 1}).json()
            api.post(f"/batches/{second['id']}/cancel")
    finally:
        stop_app(app)
        PROCESSES.stop(fake.proc)
        shutil.rmtree(data_dir, ignore_errors=True)
    return {
        "rows": args.rows, "cold_create_1_row_ms": ms(cold_s), "create_ms": ms(create_s),
        "create2_ms": ms(create2_s), "drain_s": drain_s,
        "throughput_per_s": batch["total"] / drain_s, "succeeded": done["counts"]["succeeded"],
        "fake_completions": completions, "idle_ttft_ms": summarize([ms(v) for v in idle]),
        "busy_ttft_ms": summarize([ms(v) for v in busy]),
        "ttft_ratio": statistics.median(busy) / statistics.median(idle),
        "batch_pending_during_busy": still["counts"]["queued"] + still["counts"]["running"],
    }


def main() -> None:
    parser = base_parser(__doc__.split("\n")[0], runs=1)
    parser.add_argument("--rows", type=int, default=1000, help="rows of the batch (1 model each; default 1000)")
    parser.add_argument("--samples", type=int, default=15, help="studio requests timed idle and while draining")
    parser.add_argument("--token-delay", type=float, default=0.005, help="fake's per-token delay (s)")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up on a drain after this long (s)")
    args = parser.parse_args()
    r = run(args)
    create_ok = r["create_ms"] < CREATE_TARGET_MS
    ttft_ok = r["ttft_ratio"] < TTFT_RATIO_TARGET
    once = r["fake_completions"] == r["rows"] == r["succeeded"]
    rows = [
        ["items in the batch", r["rows"]],
        ["first POST /batches of the process, 1 row (ms)", r["cold_create_1_row_ms"]],
        ["POST /batches → 201 (ms)", r["create_ms"]],
        ["second create, right after the drain (ms)", r["create2_ms"]],
        ["drain: all finished (s)", r["drain_s"]],
        ["drain throughput (items/s)", r["throughput_per_s"]],
        ["studio TTFT idle, median / p95 (ms)", f"{r['idle_ttft_ms']['median']:.1f} / {r['idle_ttft_ms']['p95']:.1f}"],
        ["studio TTFT while draining, median / p95 (ms)",
         f"{r['busy_ttft_ms']['median']:.1f} / {r['busy_ttft_ms']['p95']:.1f}"],
        ["TTFT ratio (draining / idle)", r["ttft_ratio"]],
        ["batch items still pending after the busy samples", r["batch_pending_during_busy"]],
    ]
    text = "\n\n".join([
        table("Batches", ["item", "value"], rows),
        table("Checks", ["check", "result"], [
            [f"create under {CREATE_TARGET_MS:.0f} ms", verdict(create_ok)],
            [f"studio TTFT while draining under {TTFT_RATIO_TARGET:g}× idle", verdict(ttft_ok)],
            ["exactly one completion per item, all succeeded", verdict(once)],
        ]),
    ])
    emit(args, {"benchmark": "batch", **r, "create_ok": create_ok, "ttft_ok": ttft_ok, "exactly_once": once}, text)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        raise SystemExit(130) from None
