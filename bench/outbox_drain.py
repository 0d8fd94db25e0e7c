"""Outbox drain: queue text generations while OpenRouter is unreachable, bring it back, time the drain.

The fake OpenRouter is switched offline (its API port closes; the control port stays up), the app starts and
sees it offline, and ``--items`` (default 500) deferred text generations are posted to the backend
(``POST /api/v1/generations`` with ``"defer": true``, 202 each). Then the fake comes back online and the clock
runs until the outbox holds nothing queued or running. Afterwards: every generation must have succeeded with
the expected text, and the fake must have seen exactly ``--items`` completions (exactly-once delivery).

    .venv/bin/python bench/outbox_drain.py [--items 500] [--runs 1] [--probe-seconds 0.5] [--json [PATH]]

The app runs with its default outbox concurrency unless ``--concurrency`` is given, and with
``ATELIER_PROBE_SECONDS`` set to ``--probe-seconds`` (default 0.5; the product default is 10 s, which would
only add a constant wait before the drain starts).
"""

from __future__ import annotations

import shutil
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
    rss_mb,
    start_app,
    start_fake,
    stop_app,
    summarize,
    table,
    temp_dir,
    verdict,
)


def count_by_status(api: Any) -> dict[str, int]:
    """Every generation's status, paging through ``GET /generations``."""
    counts: dict[str, int] = {}
    cursor = None
    texts_ok = 0
    while True:
        params = {"limit": "200", **({"cursor": cursor} if cursor else {})}
        page = api.get("/generations", params=params).json()
        for item in page["items"]:
            counts[item["status"]] = counts.get(item["status"], 0) + 1
            if item["status"] == "succeeded" and item.get("output_text") == f"Echo: {item['prompt']}":
                texts_ok += 1
        cursor = page.get("next_cursor")
        if not cursor:
            break
    counts["_text_ok"] = texts_ok
    return counts


def one_run(items: int, *, probe_seconds: float, concurrency: int | None, token_delay: float,
            timeout: float) -> dict[str, Any]:
    fake = start_fake(token_delay=token_delay)
    fake.offline()
    data_dir = temp_dir("outbox")
    extra = {"ATELIER_PROBE_SECONDS": str(probe_seconds)}
    if concurrency:
        extra["ATELIER_OUTBOX_CONCURRENCY"] = str(concurrency)
    app = start_app(data_dir, app_env(data_dir, base_url=fake.base_url, **extra))
    try:
        with app.api_client() as api:
            deadline = time.monotonic() + 30
            while api.get("/status").json()["online"]:  # wait until the app has noticed it is offline
                if time.monotonic() > deadline:
                    raise RuntimeError("the app never noticed that OpenRouter is offline")
                time.sleep(0.05)
            t0 = time.perf_counter()
            for i in range(items):
                response = api.post("/generations", json={
                    "kind": "text", "model": TEXT_MODEL, "defer": True,
                    "prompt": f"Item {i}: a two-line caption for a linocut of a heron at dawn.",
                })
                if response.status_code != 202:
                    raise RuntimeError(f"queueing item {i} answered {response.status_code}: {response.text[:200]}")
            enqueue_s = time.perf_counter() - t0
            status = api.get("/status").json()
            if status["queue"]["queued"] != items or fake.stats()["completions"] != 0:
                raise RuntimeError(f"expected {items} queued and nothing sent while offline, got {status}")
            log(f"{items} generations queued in {enqueue_s:.1f} s; bringing the fake online")

            fake.online()
            t1 = time.perf_counter()
            first_done = None
            deadline = time.monotonic() + timeout
            while True:
                queue = api.get("/status").json()["queue"]
                left = queue["queued"] + queue["running"]
                if first_done is None and left < items:
                    first_done = time.perf_counter() - t1
                if left == 0:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the outbox did not drain within {timeout:g} s ({left} left)")
                time.sleep(0.02)
            drain_s = time.perf_counter() - t1
            rss = rss_mb(app.pid)
            counts = count_by_status(api)
            stats = fake.stats()
    finally:
        stop_app(app)
        PROCESSES.stop(fake.proc)
        shutil.rmtree(data_dir, ignore_errors=True)
    chat = stats["by_path"].get("/chat/completions", {})
    return {
        "items": items, "enqueue_s": enqueue_s, "drain_s": drain_s, "first_done_s": first_done,
        "throughput_per_s": items / drain_s, "drain_after_first_s": drain_s - (first_done or 0.0),
        "succeeded": counts.get("succeeded", 0), "text_ok": counts["_text_ok"],
        "other_statuses": {k: v for k, v in counts.items() if k not in ("succeeded", "_text_ok")},
        "fake_completions": stats["completions"], "fake_chat_200": chat.get("200", 0),
        "fake_chat_requests": sum(chat.values()), "rss_after_mb": rss,
    }


def main() -> None:
    parser = base_parser(__doc__.split("\n")[0], runs=1)
    parser.add_argument("--items", type=int, default=500, help="deferred generations (default 500)")
    parser.add_argument("--probe-seconds", type=float, default=0.5, help="ATELIER_PROBE_SECONDS for the app")
    parser.add_argument("--concurrency", type=int, help="ATELIER_OUTBOX_CONCURRENCY (default: the app's)")
    parser.add_argument("--token-delay", type=float, default=0.0, help="fake's per-token delay (s)")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up on a drain after this long (s)")
    args = parser.parse_args()

    runs = []
    for i in range(args.runs):
        result = one_run(args.items, probe_seconds=args.probe_seconds, concurrency=args.concurrency,
                         token_delay=args.token_delay, timeout=args.timeout)
        log(f"run {i + 1}/{args.runs}: drained {args.items} in {result['drain_s']:.2f} s")
        runs.append(result)

    drain = summarize([r["drain_s"] for r in runs])
    throughput = summarize([r["throughput_per_s"] for r in runs])
    last = runs[-1]
    exactly_once = all(r["fake_completions"] == r["items"] == r["succeeded"] == r["text_ok"]
                       and r["fake_chat_requests"] == r["items"] for r in runs)
    rows = [
        ["generations queued while offline", last["items"]],
        ["time to queue them (s)", last["enqueue_s"]],
        ["online → first one finished (s)", last["first_done_s"]],
        ["online → all finished, median over runs (s)", drain["median"]],
        ["throughput, median (generations/s)", throughput["median"]],
        ["succeeded (with the expected text)", f"{last['succeeded']} ({last['text_ok']})"],
        ["other statuses", ", ".join(f"{k}: {v}" for k, v in last["other_statuses"].items()) or "none"],
        ["completions the fake served", last["fake_completions"]],
        ["chat requests the fake received", last["fake_chat_requests"]],
        ["app RSS afterwards (MB)", last["rss_after_mb"]],
    ]
    text = "\n\n".join([
        table(f"Outbox drain ({args.runs} run(s), probe every {args.probe_seconds:g} s, concurrency "
              f"{args.concurrency or 'default'})", ["item", "value"], rows),
        table("Checks", ["check", "result"], [["exactly one completion per generation, all succeeded",
                                               verdict(exactly_once)]]),
    ])
    emit(args, {"benchmark": "outbox_drain", "runs": runs, "drain_s": drain, "throughput_per_s": throughput,
                "probe_seconds": args.probe_seconds, "concurrency": args.concurrency,
                "exactly_once": exactly_once, "drain_ms_median": ms(drain["median"])}, text)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        raise SystemExit(130) from None
