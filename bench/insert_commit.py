"""The database part of the first token: how long ``POST /generations`` waits for its row to be committed.

In one process, on a temp DuckDB file: ``--concurrency`` (default 100) inserts of a streamed text generation
with its first attempt start at once, as a burst of requests would; each one's latency (call → committed) is
recorded. Two modes, interleaved per round: ``group`` (the app's path, ``generations.insert``: group commit)
and ``serial`` (one transaction and one journal sync per insert, as before group commit). Then the same for a
single insert on an idle database.

    .venv/bin/python bench/insert_commit.py [--runs 10] [--concurrency 100] [--json [PATH]]

This isolates what group commit changes from the CPU the HTTP servers, the client and the fake share with it
(which dominates ``bench/stream_overhead.py`` on a busy two-core machine).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import base_parser, emit, ms, summarize, table, temp_dir  # noqa: E402

from backend.db import generations as gens  # noqa: E402
from backend.db.group_commit import group_for  # noqa: E402
from backend.db.store import Store  # noqa: E402
from backend.db.time import new_id, now  # noqa: E402


async def grouped(store: Store, i: int) -> None:
    await gens.insert(store, kind="text", model="openai/gpt-4o-mini", prompt=f"burst {i}", system=None, params={},
                      input_asset_ids=[], stream=True, tags=[], start_now=True)


async def serial(store: Store, i: int) -> None:
    """The insert as it was before group commit: its own transaction."""
    gen_id, ts = new_id(), now()

    def write(cur: Any) -> None:
        cur.execute(
            "INSERT INTO generations (id, kind, status, model, prompt, system, params, input_asset_ids, stream, "
            "title, tags, attempts, created_at, updated_at, started_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [gen_id, "text", "running", "openai/gpt-4o-mini", f"burst {i}", None, json.dumps({}), json.dumps([]),
             True, None, [], 1, ts, ts, ts])
        cur.execute("INSERT INTO attempts (generation_id, number, started_at) VALUES (?, 1, ?)", [gen_id, ts])

    await store.transaction(write)


async def burst(store: Store, fn: Any, n: int) -> list[float]:
    async def one(i: int) -> float:
        t0 = time.perf_counter()
        await fn(store, i)
        return time.perf_counter() - t0

    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def run(runs: int, concurrency: int) -> dict[str, Any]:
    folder = temp_dir("insert")
    store = Store.open(folder / "atelier.duckdb")
    out: dict[str, Any] = {"group": [], "serial": [], "group_single": [], "serial_single": []}
    try:
        for _ in range(2):  # warm-up
            await burst(store, grouped, 10)
            await burst(store, serial, 10)
        for r in range(runs):
            for mode, fn in (("group", grouped), ("serial", serial))[:: 1 if r % 2 == 0 else -1]:
                out[mode] += await burst(store, fn, concurrency)
            for _ in range(5):
                out["group_single"] += await burst(store, grouped, 1)
                out["serial_single"] += await burst(store, serial, 1)
        group = group_for(store)
        out["commits"] = {"commits": group.commits, "writes": group.writes, "largest": group.largest}
    finally:
        store.close()
        shutil.rmtree(folder, ignore_errors=True)
    return out


def main() -> None:
    parser = base_parser(__doc__ or "", runs=10)
    parser.add_argument("--concurrency", type=int, default=100)
    args = parser.parse_args()
    out = asyncio.run(run(args.runs, args.concurrency))
    rows = []
    summary = {}
    for mode in ("group", "serial", "group_single", "serial_single"):
        s = summarize([ms(x) for x in out[mode]])
        summary[mode] = s
        rows.append((mode, s["n"], f"{s['median']:.2f}", f"{s['p95']:.2f}", f"{s['max']:.2f}"))
    text = "\n".join([
        table(f"Insert → committed (ms); bursts of {args.concurrency}, and single inserts on an idle database",
              ["mode", "n", "p50", "p95", "max"], rows),
        f"group commits: {out['commits']}",
    ])
    emit(args, {"summary_ms": summary, "commits": out["commits"]}, text)


if __name__ == "__main__":
    main()
