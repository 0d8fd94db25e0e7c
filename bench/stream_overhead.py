"""What the app adds to a streamed text generation: time to first token (TTFT) and total time.

Three paths to the same fake OpenRouter, measured in the same run, interleaved so they see the same machine:

* ``direct``  — an httpx streaming ``POST /chat/completions`` straight to the fake (the floor);
* ``backend`` — ``POST /api/v1/generations`` with ``"stream": true`` on the FastAPI backend (launch token);
* ``ui``      — ``POST /studio/stream`` on the Flask UI with the logged-in cookie: UI → backend → fake, the
  path the Studio page uses.

TTFT is the time from sending the request until the first non-empty content token has arrived; total is until
the stream has ended. Then ``--concurrency`` streams (default 100) go through the UI path at once, and every
one must end with a ``done`` event carrying the whole answer.

    .venv/bin/python bench/stream_overhead.py [--runs 30] [--token-delay 0.005] [--concurrency 100] [--json [PATH]]

Target (issue 3): under 10 ms added to TTFT at the median (ui versus direct).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from dataclasses import dataclass
from typing import Any

import httpx
from _common import (
    FAKE_KEY,
    TEXT_MODEL,
    App,
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

TARGET_ADDED_TTFT_MS = 10.0
# About fifty words: the fake answers "Echo: <prompt>", one token per word, so ~51 tokens stream back.
PROMPT = (
    "Write a short and friendly paragraph for the studio newsletter about the new colour palette: warm ochre, "
    "deep teal, soft clay and a bright accent of marigold. Mention that every swatch was mixed by hand, that the "
    "palette suits both print and screen, and invite readers to share what they make with it this spring."
)


@dataclass
class StreamResult:
    """One measured stream."""

    ttft: float | None
    total: float
    text: str
    error: str | None = None


async def stream_openai(client: httpx.AsyncClient, fake: Fake) -> StreamResult:
    """The direct call: OpenAI-style SSE chunks from the fake."""
    body = {"model": TEXT_MODEL, "messages": [{"role": "user", "content": PROMPT}], "stream": True}
    headers = {"Authorization": f"Bearer {fake.key}", "Accept": "text/event-stream"}
    t0 = time.perf_counter()
    ttft = None
    parts: list[str] = []
    async with client.stream("POST", f"{fake.base_url}/chat/completions", json=body, headers=headers) as response:
        if response.status_code != 200:
            return StreamResult(None, time.perf_counter() - t0, "", f"HTTP {response.status_code}")
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            for choice in chunk.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    if ttft is None:
                        ttft = time.perf_counter() - t0
                    parts.append(piece)
    return StreamResult(ttft, time.perf_counter() - t0, "".join(parts))


async def stream_atelier(client: httpx.AsyncClient, url: str, body: dict[str, Any],
                         headers: dict[str, str] | None = None) -> StreamResult:
    """A stream in Atelier's event format (``generation``, ``delta``…, then ``done`` or ``error``)."""
    t0 = time.perf_counter()
    ttft = None
    parts: list[str] = []
    event = None
    done = False
    error = None
    async with client.stream("POST", url, json=body, headers=headers or {}) as response:
        if response.status_code != 200:
            await response.aread()
            return StreamResult(None, time.perf_counter() - t0, "", f"HTTP {response.status_code}: "
                                                                     f"{response.text[:200]}")
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                if event == "delta":
                    piece = json.loads(line[5:]).get("text") or ""
                    if piece and ttft is None:
                        ttft = time.perf_counter() - t0
                    parts.append(piece)
                elif event == "done":
                    done = True
                elif event == "error":
                    error = "error event: " + line[5:].strip()[:200]
            elif not line:
                event = None
    if not done and error is None:
        error = "the stream ended without a done event"
    return StreamResult(ttft, time.perf_counter() - t0, "".join(parts), error)


def _expected_text() -> str:
    return f"Echo: {PROMPT}"


async def sequential(app: App, fake: Fake, runs: int, warmup: int) -> dict[str, list[StreamResult]]:
    """``runs`` streams on each path, interleaved (rotating order), after ``warmup`` untimed rounds."""
    cookies = app.session_cookies()
    api_headers = {"Authorization": f"Bearer {app.token}", "Accept": "text/event-stream"}
    ui_body = {"prompt": PROMPT, "model": TEXT_MODEL}
    api_body = {"kind": "text", "model": TEXT_MODEL, "prompt": PROMPT, "stream": True}
    results: dict[str, list[StreamResult]] = {"direct": [], "backend": [], "ui": []}
    async with httpx.AsyncClient(timeout=60, trust_env=False) as direct, \
            httpx.AsyncClient(timeout=60, trust_env=False) as api, \
            httpx.AsyncClient(timeout=60, trust_env=False, cookies=cookies) as ui:
        paths = {
            "direct": lambda: stream_openai(direct, fake),
            "backend": lambda: stream_atelier(api, f"{app.api_url}/api/v1/generations", api_body, api_headers),
            "ui": lambda: stream_atelier(ui, f"{app.ui_url}/studio/stream", ui_body),
        }
        order = list(paths)
        for i in range(warmup + runs):
            for name in order[i % 3:] + order[:i % 3]:  # rotate so no path always goes first
                result = await paths[name]()
                if result.error is None and result.text != _expected_text():
                    result.error = "the streamed text differs from the answer"
                if result.error:
                    raise RuntimeError(f"{name} stream failed: {result.error}")
                if i >= warmup:
                    results[name].append(result)
            if i >= warmup and (i - warmup + 1) % 10 == 0:
                log(f"sequential: {i - warmup + 1}/{runs} rounds")
    return results


async def concurrent(app: App, n: int) -> tuple[list[StreamResult], float]:
    """``n`` UI streams at once; returns the results and the wall time for all of them."""
    cookies = app.session_cookies()
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    async with httpx.AsyncClient(timeout=120, trust_env=False, cookies=cookies, limits=limits) as ui:
        body = {"prompt": PROMPT, "model": TEXT_MODEL}

        async def one() -> StreamResult:
            try:
                result = await stream_atelier(ui, f"{app.ui_url}/studio/stream", body)
            except httpx.HTTPError as exc:
                return StreamResult(None, 0.0, "", f"{type(exc).__name__}: {exc}")
            if result.error is None and result.text != _expected_text():
                result.error = "the streamed text differs from the answer"
            return result

        t0 = time.perf_counter()
        results = await asyncio.gather(*(one() for _ in range(n)))
        wall = time.perf_counter() - t0
    return list(results), wall


def main() -> None:
    parser = base_parser(__doc__.split("\n")[0], runs=30)
    parser.add_argument("--token-delay", type=float, default=0.005, help="fake's delay before each token (s)")
    parser.add_argument("--concurrency", type=int, default=100, help="simultaneous UI streams (default 100)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first (default 3)")
    args = parser.parse_args()

    fake = start_fake(token_delay=args.token_delay, key=FAKE_KEY)
    data_dir = temp_dir("stream")
    app = start_app(data_dir, app_env(data_dir, base_url=fake.base_url))
    try:
        log(f"app pid {app.pid}, UI {app.ui_url}, API {app.api_url}, fake {fake.base_url}")
        seq = asyncio.run(sequential(app, fake, args.runs, args.warmup))
        log(f"concurrent: {args.concurrency} UI streams")
        conc, wall = asyncio.run(concurrent(app, args.concurrency))
        rss_after = rss_mb(app.pid)
        completions = fake.stats()["completions"]
    finally:
        stop_app(app)
        shutil.rmtree(data_dir, ignore_errors=True)

    summary: dict[str, Any] = {}
    rows = []
    for name, label in (("direct", "direct httpx → fake"), ("backend", "backend API → fake"),
                        ("ui", "UI /studio/stream → backend → fake")):
        ttft = summarize([ms(r.ttft) for r in seq[name] if r.ttft is not None])
        total = summarize([ms(r.total) for r in seq[name]])
        summary[name] = {"ttft_ms": ttft, "total_ms": total}
        rows.append([label, ttft["median"], ttft["p95"], total["median"], total["p95"]])

    # Paired differences: each round ran the three paths back to back, so subtract within the round.
    def added(path: str, key: str) -> dict[str, float]:
        pairs = zip(seq[path], seq["direct"], strict=True)
        return summarize([ms(getattr(a, key) - getattr(b, key)) for a, b in pairs])

    added_rows = []
    for path in ("backend", "ui"):
        ttft_add, total_add = added(path, "ttft"), added(path, "total")
        summary[path]["added_ttft_ms"] = ttft_add
        summary[path]["added_total_ms"] = total_add
        ratio_ttft = summary[path]["ttft_ms"]["median"] / summary["direct"]["ttft_ms"]["median"]
        ratio_total = summary[path]["total_ms"]["median"] / summary["direct"]["total_ms"]["median"]
        summary[path]["ratio_ttft"] = ratio_ttft
        summary[path]["ratio_total"] = ratio_total
        added_rows.append([path, ttft_add["median"], ttft_add["p95"], ratio_ttft, total_add["median"], ratio_total])

    errors = [r.error for r in conc if r.error]
    conc_ttft = summarize([ms(r.ttft) for r in conc if r.ttft is not None])
    conc_total = summarize([ms(r.total) for r in conc if not r.error])
    concurrent_summary = {
        "streams": args.concurrency, "errors": len(errors), "error_samples": errors[:5], "wall_ms": ms(wall),
        "ttft_ms": conc_ttft, "total_ms": conc_total, "rss_after_mb": rss_after,
        "fake_completions_total": completions,
    }
    added_ui = summary["ui"]["added_ttft_ms"]["median"]
    text = "\n\n".join([
        table(f"Streamed text, {args.runs} rounds, fake token delay {ms(args.token_delay):g} ms, "
              f"~{len(PROMPT.split())}-word prompt (ms)",
              ["path", "TTFT p50", "TTFT p95", "total p50", "total p95"], rows),
        table("Added by the app, paired per round (ms; ratio of medians)",
              ["path", "+TTFT p50", "+TTFT p95", "TTFT ratio", "+total p50", "total ratio"], added_rows),
        table(f"{args.concurrency} concurrent UI streams",
              ["metric", "value"],
              [["errors", len(errors)], ["wall time (ms)", ms(wall)],
               ["TTFT p50 (ms)", conc_ttft.get("median")], ["TTFT p95 (ms)", conc_ttft.get("p95")],
               ["total p50 (ms)", conc_total.get("median")], ["total p95 (ms)", conc_total.get("p95")],
               ["app RSS afterwards (MB)", rss_after]]),
        table("Targets", ["target", "goal", "measured", "result"], [
            ["TTFT added by UI path, median", f"< {TARGET_ADDED_TTFT_MS:g} ms", f"{added_ui:.1f} ms",
             verdict(added_ui < TARGET_ADDED_TTFT_MS)],
            [f"{args.concurrency} concurrent streams", "0 errors", str(len(errors)), verdict(not errors)],
        ]),
    ])
    if errors:
        text += "\n\nFirst errors:\n" + "\n".join(f"  {e}" for e in errors[:5])
    emit(args, {"benchmark": "stream_overhead", "runs": args.runs, "token_delay_s": args.token_delay,
                "prompt_words": len(PROMPT.split()), "sequential": summary, "concurrent": concurrent_summary,
                "targets": {"added_ttft_ms": added_ui, "added_ttft_met": added_ui < TARGET_ADDED_TTFT_MS,
                            "concurrent_errors": len(errors)}}, text)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        raise SystemExit(130) from None
