"""Conversations in DuckDB: a tree of turns (generations with ``conversation_id`` and ``parent_id``).

The conversation row holds only what belongs to the whole thread (title, activity); everything else is read
from its turns. See docs/api.md ("Conversations").
"""

from __future__ import annotations

from typing import Any

from backend.core.errors import NotFound
from backend.db.pages import decode_cursor, encode_cursor, like_pattern
from backend.db.store import Store
from backend.db.time import iso, now

#: A default title is the first prompt cut to this many characters.
TITLE_CHARS = 80

# One row per conversation with at least one turn, with its activity: its newest turn or its last rename,
# whichever is later (a new turn writes nothing to the conversation row). Only two columns of the turns are read.
_ACTIVITY = """
    SELECT c.id, greatest(c.updated_at, a.last_turn) AS activity
    FROM conversations c JOIN (SELECT conversation_id, max(created_at) AS last_turn FROM generations
                               WHERE conversation_id IS NOT NULL GROUP BY conversation_id) a
         ON a.conversation_id = c.id
"""

# The numbers the list shows, for the conversations in ``page`` (a CTE of ids and activities) only: their turns
# are found through the conversation_id index, and the first prompt is read afterwards for untitled ones.
_NUMBERS = """
    SELECT p.id, c.title, c.created_at, p.activity AS updated_at, n.turns, n.cost_usd, n.last_model, n.first_turn
    FROM page p JOIN conversations c ON c.id = p.id
    JOIN (SELECT conversation_id, count(*) AS turns, coalesce(sum(cost_usd), 0) AS cost_usd,
                 arg_max(model, created_at) AS last_model, arg_min(id, created_at) AS first_turn
          FROM generations WHERE conversation_id IN (SELECT id FROM page) GROUP BY conversation_id) n
         ON n.conversation_id = p.id
    ORDER BY p.activity DESC, p.id DESC
"""


def default_title(prompt: str | None) -> str:
    text = " ".join((prompt or "").split())
    return text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1].rstrip() + "…"


def _item(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "title": row["title"] or default_title(row["first_prompt"]) or "Untitled",
        "turns": int(row["turns"]),
        "last_model": row["last_model"],
        "cost_usd": float(row["cost_usd"] or 0),
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


def not_found(conversation_id: str) -> NotFound:
    return NotFound(f"No conversation with id '{conversation_id[:64]}'.")


def _summaries(cur: Any, where: str, params: list[Any], limit: int) -> list[dict[str, Any]]:
    """Inside a read: the list items of the ``limit`` most recently active conversations matching ``where`` (on
    ``s.id`` and ``s.activity``), newest first. The turns are summed for those conversations only."""
    cur.execute(f"WITH page AS MATERIALIZED (SELECT * FROM ({_ACTIVITY}) s WHERE {where} "  # noqa: S608 - constant text
                f"ORDER BY s.activity DESC, s.id DESC LIMIT ?) {_NUMBERS}", [*params, limit])
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    untitled = [r["first_turn"] for r in rows if not r["title"]]
    prompts: dict[str, str] = {}
    if untitled:
        cur.execute("SELECT id, prompt FROM generations WHERE list_contains(?::VARCHAR[], id)", [untitled])
        prompts = dict(cur.fetchall())
    for row in rows:
        row["first_prompt"] = prompts.get(row["first_turn"])
    return rows


async def search(store: Store, *, q: str | None = None, limit: int = 50,
                 cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """By last activity, newest first. ``q`` matches the title and any turn's prompt or answer."""
    where: list[str] = ["true"]
    params: list[Any] = []
    if q:
        pattern = like_pattern(q)
        where.append("(s.id IN (SELECT id FROM conversations WHERE title ILIKE ? ESCAPE '\\') OR s.id IN "
                     "(SELECT conversation_id FROM generations WHERE prompt ILIKE ? ESCAPE '\\' OR "
                     "output_text ILIKE ? ESCAPE '\\'))")
        params += [pattern, pattern, pattern]
    if cursor:
        stamp, conv_id = decode_cursor(cursor)
        where.append("(s.activity < ? OR (s.activity = ? AND s.id < ?))")
        params += [stamp, stamp, conv_id]
    rows = await store.read(lambda cur: _summaries(cur, " AND ".join(where), params, limit + 1))
    next_cursor = encode_cursor(rows[limit - 1], stamp="updated_at") if len(rows) > limit else None
    return [_item(r) for r in rows[:limit]], next_cursor


async def summary(store: Store, conversation_id: str) -> dict[str, Any]:
    rows = await store.read(lambda cur: _summaries(cur, "s.id = ?", [conversation_id], 1))
    if not rows:
        raise not_found(conversation_id)
    return _item(rows[0])


async def exists(store: Store, conversation_id: str) -> bool:
    return await store.fetchone("SELECT 1 AS x FROM conversations WHERE id = ?", [conversation_id]) is not None


async def turn_ids(store: Store, conversation_id: str) -> list[str]:
    """Every turn, oldest first."""
    rows = await store.fetchall(
        "SELECT id FROM generations WHERE conversation_id = ? ORDER BY created_at, id", [conversation_id])
    return [r["id"] for r in rows]


async def latest_turn(store: Store, conversation_id: str) -> str | None:
    row = await store.fetchone(
        "SELECT id FROM generations WHERE conversation_id = ? ORDER BY created_at DESC, id DESC LIMIT 1",
        [conversation_id])
    return row["id"] if row else None


async def rename(store: Store, conversation_id: str, title: str | None) -> None:
    await store.execute("UPDATE conversations SET title = ?, updated_at = ? WHERE id = ?",
                        [title, now(), conversation_id])


async def delete(store: Store, conversation_id: str) -> None:
    await store.execute("DELETE FROM conversations WHERE id = ?", [conversation_id])


async def thread(store: Store, conversation_id: str) -> list[dict[str, Any]]:
    """What building a turn's context needs from every turn of a conversation (one indexed read)."""
    return await store.fetchall(
        "SELECT id, parent_id, kind, status, model, prompt, system, output_text, input_asset_ids "
        "FROM generations WHERE conversation_id = ?", [conversation_id])


def ancestors(turns: list[dict[str, Any]], parent_id: str | None) -> list[dict[str, Any]]:
    """The chain from the root down to ``parent_id`` (siblings and other branches left out)."""
    by_id = {t["id"]: t for t in turns}
    chain: list[dict[str, Any]] = []
    seen: set[str] = set()
    current = parent_id
    while current is not None and current in by_id and current not in seen:
        seen.add(current)
        turn = by_id[current]
        chain.append(turn)
        current = turn["parent_id"]
    chain.reverse()
    return chain
