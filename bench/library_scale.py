"""The Library at 100,000 generations: list, page, search, filters, usage, the UI page, and idle memory.

The fixture is made before the app starts: the database is created by the backend's own migrations, then
``--items`` (default 100,000) text generations are added with one bulk ``INSERT … SELECT`` in DuckDB: prompts of
~200 characters and outputs of ~1,650 (words drawn Zipf-like from ~6,000, so common words are everywhere and rare
ones are rare), one unique ``ref-<n>x`` string per output, five models, tags on some (``keeper`` on 2 %), titles on
a third, spread over ~350 days, and a collection of 500 items. Every item is a turn of one of ``--items / 50``
conversations (2,000 at 100,000 items: 50 consecutive turns each, each turn answering the one before; a quarter
renamed). The search index is then filled by the same SQL as migration ``0006_search`` (where that migration
exists).

Then the app starts on that data dir and each request is timed ``--runs`` times: ``GET /api/v1/generations``
(first page of 60, page 50 via its cursor, a common word, a rare string, a tag, a collection), ``/usage`` by day
and by model, ``GET /api/v1/conversations`` (first page of 50, page 10 via its cursor), and the UI Library page
and a search there. Idle RSS is read a few seconds after start-up, with the 100k library and with an empty one.

    .venv/bin/python bench/library_scale.py [--runs 30] [--items 100000] [--data-dir DIR] [--json [PATH]]

``--data-dir`` keeps the fixture in DIR and reuses it on the next run. Targets (issue 11): every API call
≤ 20 ms p50, the UI Library page ≤ 40 ms p50, idle RSS within 10 MB of an empty library.
"""

from __future__ import annotations

import itertools
import json
import shutil
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
from _common import (
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

TARGET_API_MS = 20.0
TARGET_PAGE_MS = 40.0
TARGET_RSS_MB = 10.0
FIXTURE_MARK = "bench-scale.json"
MODELS = ["openai/gpt-4o-mini", "anthropic/claude-3.5-sonnet", "google/gemini-2.5-flash",
          "meta-llama/llama-3.1-70b-instruct", "mistralai/mistral-large"]
_COMMON_TEXT = ("the a of and to in is it that for on with as this be by are from or an at which light color river "
                "story poem summary explain code function python data model answer question design garden winter "
                "summer mountain ocean city night morning coffee music letter friend history science theory market "
                "recipe bread travel journey dragon castle robot planet star forest memory dream window silence "
                "orange velvet quiet ancient modern simple complex gentle bright shadow paper stone glass iron "
                "silver golden thread needle")
COMMON = _COMMON_TEXT.split()
SYLLABLES = "ka lo mi ren tor vel san di quo pha ber lin mor tes gra".split()  # noqa: SIM905
WORDS = COMMON + ["".join(p) for p in itertools.product(SYLLABLES, repeat=3)][:6000]
IDLE_SECONDS = 4.0
TURNS = 50  # turns per conversation in the fixture


def _zipf_words(seed: str, count: int) -> str:
    """SQL for ``count`` words drawn log-uniformly from ``$words`` (index 1 most likely), seeded by ``seed``."""
    return (f"array_to_string(list_transform(range({count}), lambda j: $words[least($n, 1 + floor(exp("
            f"(hash({seed} + j) % 1000000) / 1000000.0 * ln($n)))::INT)]), ' ')")


def build_fixture(data_dir: Path, items: int) -> dict[str, Any]:
    import duckdb

    from backend.db.migrations import MIGRATIONS
    from backend.db.store import Store, migrate

    data_dir.mkdir(parents=True, exist_ok=True)
    db_path = data_dir / "atelier.duckdb"
    Store.open(db_path, backups_dir=data_dir / "backups").close()
    t0 = time.perf_counter()
    con = duckdb.connect(str(db_path))
    try:
        con.execute("BEGIN")
        con.execute(f"""
            INSERT INTO generations (id, kind, status, model, prompt, params, input_asset_ids, stream, title, tags,
                output_text, prompt_tokens, completion_tokens, cost_usd, upstream_id, upstream_model, attempts,
                created_at, started_at, finished_at, updated_at, conversation_id, parent_id)
            SELECT md5(i::VARCHAR), 'text', 'succeeded', $models[1 + i % 5],
                'Write about ' || {_zipf_words('i * 7919', 30)}, '{{}}', '[]', true,
                CASE WHEN i % 3 = 0 THEN 'Draft ' || i END,
                CASE WHEN i % 50 = 0 THEN ['keeper'] WHEN i % 7 = 0 THEN ['draft', 'poem'] ELSE [] END,
                {_zipf_words('i * 104729', 260)} || ' ref-' || i || 'x',
                40 + i % 60, 300 + i % 400, 0.0001 * (1 + i % 9), 'gen-bench-' || i, $models[1 + i % 5], 1,
                TIMESTAMPTZ '2025-12-01 00:00:00+00' + i * INTERVAL 5 MINUTE,
                TIMESTAMPTZ '2025-12-01 00:00:00+00' + i * INTERVAL 5 MINUTE,
                TIMESTAMPTZ '2025-12-01 00:00:09+00' + i * INTERVAL 5 MINUTE,
                TIMESTAMPTZ '2025-12-01 00:00:09+00' + i * INTERVAL 5 MINUTE,
                md5('conversation' || (i // $turns)), CASE WHEN i % $turns > 0 THEN md5((i - 1)::VARCHAR) END
            FROM range($items) t(i)""", {"models": MODELS, "words": WORDS, "n": len(WORDS), "items": items,
                                                "turns": TURNS})
        con.execute("INSERT INTO conversations SELECT conversation_id, CASE WHEN hash(conversation_id) % 4 = 0 "
                    "THEN 'Thread ' || left(conversation_id, 6) END, min(created_at), min(created_at) "
                    "FROM generations GROUP BY conversation_id")
        con.execute("INSERT INTO collections VALUES ('benchcollection', 'Bench picks', now(), now())")
        con.execute("INSERT INTO collection_items SELECT 'benchcollection', md5(i::VARCHAR), now() "
                    "FROM range(0, $items, greatest($items // 500, 1)) t(i)", {"items": items})
        con.execute("COMMIT")
        rows_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        if any(name == "0006_search" for name, _ in MIGRATIONS):
            con.execute("DROP TABLE search_terms")
            con.execute("DELETE FROM schema_migrations WHERE name = '0006_search'")
            migrate(con)
        index_s = time.perf_counter() - t1
        con.execute("CHECKPOINT")
    finally:
        con.close()
    info = {"items": items, "conversations": -(-items // TURNS), "rows_seconds": rows_s, "index_seconds": index_s,
            "file_mb": db_path.stat().st_size / 2**20}
    (data_dir / FIXTURE_MARK).write_text(json.dumps(info))
    return info


def timed(client: httpx.Client, url: str, params: dict[str, str], runs: int) -> tuple[dict[str, float], httpx.Response]:
    times, response = [], None
    for n in range(runs + 2):
        t0 = time.perf_counter()
        response = client.get(url, params=params)
        elapsed = time.perf_counter() - t0
        if response.status_code != 200:
            raise RuntimeError(f"GET {url} {params} answered {response.status_code}: {response.text[:200]}")
        if n >= 2:  # two warm-up requests
            times.append(ms(elapsed))
    assert response is not None
    return summarize(times), response


def idle_rss(data_dir: Path, base_url: str) -> float:
    app = start_app(data_dir, app_env(data_dir, base_url=base_url))
    try:
        time.sleep(IDLE_SECONDS)
        return rss_mb(app.pid) or float("nan")
    finally:
        stop_app(app)


def main() -> None:
    parser = base_parser(__doc__.split("\n")[0], runs=30)
    parser.add_argument("--items", type=int, default=100_000, help="generations in the fixture (default 100000)")
    parser.add_argument("--data-dir", type=Path, help="keep (and reuse) the fixture in this directory")
    args = parser.parse_args()

    data_dir = args.data_dir or temp_dir("scale")
    empty_dir = temp_dir("scale-empty")
    mark = data_dir / FIXTURE_MARK
    fixture = json.loads(mark.read_text()) if mark.is_file() else None
    if fixture is not None and "conversations" not in fixture:  # made before the fixture had conversations
        shutil.rmtree(data_dir)
        fixture = None
    results: dict[str, dict[str, float]] = {}
    try:
        if fixture is None:
            log(f"fixture: {args.items} generations into {data_dir}")
            fixture = build_fixture(data_dir, args.items)
        fake = start_fake()
        rss_empty = idle_rss(empty_dir, fake.base_url)
        app = start_app(data_dir, app_env(data_dir, base_url=fake.base_url))
        try:
            time.sleep(IDLE_SECONDS)
            rss_full = rss_mb(app.pid) or float("nan")
            with app.api_client() as api, closing(app.ui_client()) as ui:
                page = api.get("/generations", params={"limit": "60"}).json()
                cursor = page["next_cursor"]
                for _ in range(48):
                    cursor = api.get("/generations", params={"limit": "60", "cursor": cursor}).json()["next_cursor"]
                conv_cursor = api.get("/conversations", params={"limit": "50"}).json()["next_cursor"]
                for _ in range(8):
                    conv_cursor = api.get("/conversations",
                                          params={"limit": "50", "cursor": conv_cursor}).json()["next_cursor"]
                calls = {
                    "GET /generations?limit=60 (first page)": ("/generations", {"limit": "60"}),
                    "GET /generations page 50 (cursor)": ("/generations", {"limit": "60", "cursor": cursor}),
                    "GET /generations?q=light (common word)": ("/generations", {"limit": "60", "q": "light"}),
                    "GET /generations?q=ref-77777x (rare string)": ("/generations",
                                                                    {"limit": "60", "q": "ref-77777x"}),
                    "GET /generations?q=zzzqqq (no match)": ("/generations", {"limit": "60", "q": "zzzqqq"}),
                    "GET /generations?tag=keeper": ("/generations", {"limit": "60", "tag": "keeper"}),
                    "GET /generations?collection_id=": ("/generations",
                                                        {"limit": "60", "collection_id": "benchcollection"}),
                    "GET /usage?group_by=day": ("/usage", {"group_by": "day"}),
                    "GET /usage?group_by=model": ("/usage", {"group_by": "model"}),
                    "GET /conversations?limit=50 (first page)": ("/conversations", {"limit": "50"}),
                    "GET /conversations page 10 (cursor)": ("/conversations",
                                                            {"limit": "50", "cursor": conv_cursor}),
                }
                counts = {}
                for name, (url, params) in calls.items():
                    results[name], response = timed(api, url, params, args.runs)
                    body = response.json()
                    counts[name] = len(body.get("items", body.get("rows", [])))
                for name, params in (("UI GET /library", {}), ("UI GET /library?q=light", {"q": "light"})):
                    results[name], _ = timed(ui, "/library", params, args.runs)
            rss_after = rss_mb(app.pid) or float("nan")
        finally:
            stop_app(app)
    finally:
        if args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)
        shutil.rmtree(empty_dir, ignore_errors=True)

    api_p50 = max(v["median"] for k, v in results.items() if not k.startswith("UI"))
    page_p50 = results["UI GET /library"]["median"]
    rows = [[name, s["median"], s["p95"], s["min"], s["max"], counts.get(name, "")] for name, s in results.items()]
    text = "\n\n".join([
        table("Fixture", ["item", "value"], [[k, v] for k, v in fixture.items()]),
        table(f"{fixture['items']:,} generations, {args.runs} requests each (ms)",
              ["request", "p50", "p95", "min", "max", "items"], rows),
        table("Idle RSS (MiB)", ["state", "RSS"], [["empty library", rss_empty], ["100k library", rss_full],
                                                  ["100k library after the requests", rss_after]]),
        table("Targets", ["target", "goal", "measured", "result"], [
            ["slowest API call, p50", f"≤ {TARGET_API_MS:g} ms", f"{api_p50:.1f} ms",
             verdict(api_p50 <= TARGET_API_MS)],
            ["UI Library page, p50", f"≤ {TARGET_PAGE_MS:g} ms", f"{page_p50:.1f} ms",
             verdict(page_p50 <= TARGET_PAGE_MS)],
            ["idle RSS vs empty", f"≤ +{TARGET_RSS_MB:g} MB", f"{rss_full - rss_empty:+.1f} MB",
             verdict(rss_full - rss_empty <= TARGET_RSS_MB)],
        ]),
    ])
    emit(args, {"benchmark": "library_scale", "runs": args.runs, "fixture": fixture, "ms": results,
                "rss_mb": {"empty": rss_empty, "full": rss_full, "after_requests": rss_after}}, text)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        raise SystemExit(130) from None
