"""Back online: time from OpenRouter answering again to the first queued item reaching it (default settings).

The app runs with its default settings (``PROBE_SECONDS`` 10 s, no override). Each round: the fake OpenRouter
goes offline (its API port closes), a text generation is posted (it fails to connect: 502, queued, the app is
now offline), the outage lasts a given time, the fake comes back, and the clock runs until the fake receives
that generation's ``POST /chat/completions`` (its request counter, polled every 10 ms on its control port).
Nothing else happens meanwhile: no window focus, no other request (user activity would probe at once).

    .venv/bin/python bench/reconnect.py [--runs 14] [--outages 1,2,3,5,8,13,20] [--json [PATH]]

The outages cycle through ``--outages`` (seconds), so short and long ones are both measured; the result
depends on the outage length (the probe backoff), which the per-outage table shows.
Target (issue 14): ≤ 2 s at the median.
"""

from __future__ import annotations

import shutil
import time
from typing import Any

from _common import (
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

TARGET_S = 2.0


def chat_requests(fake: Any) -> int:
    by_path = fake.stats()["by_path"]
    return sum(by_path.get("/chat/completions", {}).values())


def one_round(fake: Any, api: Any, outage: float, index: int) -> dict[str, Any]:
    fake.offline()
    response = api.post("/generations", json={"kind": "text", "model": TEXT_MODEL,
                                              "prompt": f"Round {index}: a haiku about a kettle."})
    if response.status_code != 502:
        raise RuntimeError(f"expected 502 while offline, got {response.status_code}: {response.text[:200]}")
    gen_id = response.json()["generation"]["id"]
    code = response.json()["error"]["code"]
    before = chat_requests(fake)
    time.sleep(outage)
    t0 = time.perf_counter()
    fake.online()
    deadline = t0 + 60
    while chat_requests(fake) == before:
        if time.perf_counter() > deadline:
            raise RuntimeError("the queued item never reached the fake")
        time.sleep(0.01)
    reached = time.perf_counter() - t0
    while api.get(f"/generations/{gen_id}").json()["status"] != "succeeded":
        if time.perf_counter() > deadline:
            raise RuntimeError("the queued item never succeeded")
        time.sleep(0.02)
    return {"outage_s": outage, "reached_s": reached, "error": code}


def main() -> None:
    parser = base_parser(__doc__ or "", runs=14)
    parser.add_argument("--outages", default="1,2,3,5,8,13,20", help="outage lengths to cycle through (s)")
    args = parser.parse_args()
    outages = [float(x) for x in args.outages.split(",") if x.strip()]
    fake = start_fake()
    data_dir = temp_dir("reconnect")
    app = start_app(data_dir, app_env(data_dir, base_url=fake.base_url))
    rounds: list[dict[str, Any]] = []
    try:
        with app.api_client() as api:
            deadline = time.monotonic() + 30
            while not api.get("/status").json()["online"]:
                if time.monotonic() > deadline:
                    raise RuntimeError("the app never saw the fake online")
                time.sleep(0.05)
            for i in range(args.runs):
                outage = outages[i % len(outages)]
                result = one_round(fake, api, outage, i)
                log(f"round {i + 1}/{args.runs}: outage {outage:g} s → reached after {result['reached_s']:.2f} s "
                    f"(502 {result['error']})")
                rounds.append(result)
    finally:
        stop_app(app)
        shutil.rmtree(data_dir, ignore_errors=True)
    reached = [r["reached_s"] for r in rounds]
    overall = summarize([ms(x) for x in reached])
    per_outage = []
    for outage in outages:
        these = [ms(r["reached_s"]) for r in rounds if r["outage_s"] == outage]
        if these:
            s = summarize(these)
            per_outage.append((f"{outage:g}", len(these), f"{s['median']:.0f}", f"{s['min']:.0f}", f"{s['max']:.0f}"))
    text = "\n".join([
        table("OpenRouter answers again → first queued item reaches it (ms), by outage length",
              ["outage (s)", "n", "p50", "min", "max"], per_outage),
        table("All rounds (ms)", ["rounds", "p50", "p90", "min", "max"],
              [(len(reached), f"{overall['median']:.0f}", f"{overall['p90']:.0f}", f"{overall['min']:.0f}",
                f"{overall['max']:.0f}")]),
        table("Target", ["target", "goal", "measured", "result"],
              [("first resend after OpenRouter is back, median", f"≤ {TARGET_S:g} s",
                f"{overall['median'] / 1000:.2f} s", verdict(overall["median"] / 1000 <= TARGET_S))]),
    ])
    emit(args, {"rounds": rounds, "summary_ms": overall}, text)


if __name__ == "__main__":
    main()
