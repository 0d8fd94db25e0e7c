"""What a long conversation costs: building turn 50's context, and the time to first token of a reply.

Two parts:

* ``context`` — in-process, on a real DuckDB file: a 50-turn conversation (about 60 words per prompt and 150
  per answer) is stored, then the ``/chat/completions`` body of turn 50 is built ``--runs`` times
  (``RequestBodies.chat``: one indexed read of the thread, the ancestor walk, the window cap). A first turn
  (no history) is timed the same way for comparison.
* ``ttft`` — the real app (``python -m desktop --no-window``) against the fake OpenRouter: streamed first
  turns and streamed replies at depth 50 (each a new sibling of turn 50, so every one sends the same 49 turns
  of history), interleaved; TTFT is from sending the request until the first token arrives.

    .venv/bin/python bench/conversation.py [--runs 30] [--turns 50] [--token-delay 0.005] [--json [PATH]]

Target (issue 9): context assembly under 5 ms at 50 turns.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
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
from stream_overhead import stream_atelier

TARGET_CONTEXT_MS = 5.0
PROMPT_WORDS = 60
ANSWER_WORDS = 150


def _words(n: int, seed: int) -> str:
    vocabulary = ("palette", "ochre", "teal", "clay", "marigold", "brush", "canvas", "light", "shadow", "study",
                  "sketch", "texture", "layer", "glaze", "frame", "studio", "print", "screen", "swatch", "tone")
    return " ".join(vocabulary[(seed * 7 + i * 3) % len(vocabulary)] for i in range(n))


async def _context(turns: int, runs: int) -> dict[str, Any]:
    from backend.core.preferences import Preferences
    from backend.db import generations as gens
    from backend.db.store import Store
    from backend.media.store import MediaStore
    from backend.services.catalogue import Catalogue
    from backend.services.request_body import RequestBodies

    folder = temp_dir("conversation-db")
    store = Store.open(folder / "atelier.duckdb")
    try:
        model = {"id": TEXT_MODEL, "name": TEXT_MODEL, "input_modalities": ["text", "image"],
                 "output_modalities": ["text"], "pricing": {}, "context_length": 128000}
        await store.execute("INSERT INTO model_cache VALUES ('text', ?, ?, now())", [TEXT_MODEL, json.dumps(model)])
        bodies = RequestBodies(store=store, media=MediaStore(folder / "media"), preferences=Preferences(store),
                               catalogue=Catalogue(store, None))  # type: ignore[arg-type]
        parent = conversation = None
        for i in range(turns - 1):
            row = await gens.insert(store, kind="text", model=TEXT_MODEL, prompt=_words(PROMPT_WORDS, i),
                                    system="You are a helpful studio assistant." if i == 0 else None, params={},
                                    input_asset_ids=[], stream=True, tags=[], conversation_id=conversation or row_id(),
                                    parent_id=parent, new_conversation=conversation is None)
            conversation = row["conversation_id"]
            await gens.update(store, row["id"], status="succeeded", output_text=_words(ANSWER_WORDS, i + 1000))
            parent = row["id"]
        last = await gens.insert(store, kind="text", model=TEXT_MODEL, prompt=_words(PROMPT_WORDS, turns),
                                 system=None, params={}, input_asset_ids=[], stream=True, tags=[],
                                 conversation_id=conversation, parent_id=parent)
        first = await gens.insert(store, kind="text", model=TEXT_MODEL, prompt=_words(PROMPT_WORDS, 1), system=None,
                                  params={}, input_asset_ids=[], stream=True, tags=[], conversation_id=row_id(),
                                  new_conversation=True)
        body = await bodies.chat(last)
        assert len(body["messages"]) == 1 + 2 * (turns - 1) + 1, len(body["messages"])
        out: dict[str, Any] = {"messages": len(body["messages"]),
                               "body_kib": len(json.dumps(body)) / 1024}
        for name, row in (("turn_1", first), (f"turn_{turns}", last)):
            for _ in range(5):  # warm caches (preferences, prepared statements)
                await bodies.chat(row)
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                await bodies.chat(row)
                times.append(ms(time.perf_counter() - t0))
            out[name] = summarize(times)
        return out
    finally:
        store.close()
        shutil.rmtree(folder, ignore_errors=True)


def row_id() -> str:
    from backend.db.time import new_id

    return new_id()


async def _ttft(app: Any, turns: int, runs: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {app.token}", "Accept": "text/event-stream"}
    url = f"{app.api_url}/api/v1/generations"
    async with httpx.AsyncClient(timeout=120, trust_env=False, headers=headers) as client:
        parent = None
        for i in range(turns - 1):  # the thread the replies answer (not streamed, not timed)
            body = {"kind": "text", "model": TEXT_MODEL, "prompt": _words(PROMPT_WORDS, i)}
            if parent:
                body["parent_id"] = parent
            r = await client.post(url, json=body)
            r.raise_for_status()
            parent = r.json()["id"]
        log(f"ttft: a {turns - 1}-turn thread is stored")
        first, reply = [], []
        for i in range(runs + 3):
            for name in (("first", "reply") if i % 2 else ("reply", "first")):
                body = {"kind": "text", "model": TEXT_MODEL, "prompt": _words(PROMPT_WORDS, 500 + i), "stream": True}
                if name == "reply":
                    body["parent_id"] = parent
                result = await stream_atelier(client, url, body, headers)
                if result.error:
                    raise RuntimeError(f"{name} stream failed: {result.error}")
                if i >= 3 and result.ttft is not None:
                    (first if name == "first" else reply).append(ms(result.ttft))
    return {"first_turn_ttft_ms": summarize(first), f"reply_at_{turns}_ttft_ms": summarize(reply)}


def main() -> None:
    parser = base_parser(__doc__.split("\n")[0], runs=30)
    parser.add_argument("--turns", type=int, default=50, help="the turn whose context is built (default 50)")
    parser.add_argument("--token-delay", type=float, default=0.005, help="fake's delay before each token (s)")
    args = parser.parse_args()

    log(f"context: building a {args.turns}-turn conversation")
    context = asyncio.run(_context(args.turns, max(args.runs, 100)))
    fake = start_fake(token_delay=args.token_delay)
    data_dir: Path = temp_dir("conversation")
    app = start_app(data_dir, app_env(data_dir, base_url=fake.base_url))
    try:
        ttft = asyncio.run(_ttft(app, args.turns, args.runs))
    finally:
        stop_app(app)
        shutil.rmtree(data_dir, ignore_errors=True)

    deep = context[f"turn_{args.turns}"]
    first_ttft = ttft["first_turn_ttft_ms"]
    reply_ttft = ttft[f"reply_at_{args.turns}_ttft_ms"]
    text = "\n\n".join([
        table(f"Context assembly (RequestBodies.chat), {context[f'turn_{args.turns}']['n']} runs (ms)",
              ["turn", "p50", "p95", "max"],
              [["turn 1 (no history)", context["turn_1"]["median"], context["turn_1"]["p95"], context["turn_1"]["max"]],
               [f"turn {args.turns} ({context['messages']} messages, {context['body_kib']:.0f} KiB)",
                deep["median"], deep["p95"], deep["max"]]]),
        table(f"Streamed TTFT through the backend, {args.runs} each, fake token delay {ms(args.token_delay):g} ms (ms)",
              ["turn", "p50", "p95"],
              [["first turn", first_ttft["median"], first_ttft["p95"]],
               [f"reply at turn {args.turns}", reply_ttft["median"], reply_ttft["p95"]]]),
        table("Targets", ["target", "goal", "measured", "result"], [
            [f"context assembly at {args.turns} turns, median", f"< {TARGET_CONTEXT_MS:g} ms",
             f"{deep['median']:.2f} ms", verdict(deep["median"] < TARGET_CONTEXT_MS)],
        ]),
    ])
    emit(args, {"benchmark": "conversation", "turns": args.turns, "runs": args.runs, "context": context,
                "ttft": ttft, "token_delay_s": args.token_delay}, text)


if __name__ == "__main__":
    main()
