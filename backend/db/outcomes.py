"""The end of an attempt, written in one transaction: the attempt closed, the usage added, the generation moved
to its next status, and its record read back for the listeners, in one round trip to the database instead of
six in a row (docs/performance.md, "Issue 14")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from backend.db import assets as assets_db
from backend.db import attempts as attempts_db
from backend.db import generations as gens
from backend.db.store import Store

#: The usage columns, as a ``Usage`` (backend/openrouter/results.py) names them.
USAGE_COLUMNS = ("prompt_tokens", "completion_tokens", "cost_usd")


def usage_added(before: dict[str, Any] | None, usage: Any) -> dict[str, Any]:
    """The generation's usage columns with ``usage`` added: every attempt OpenRouter billed (a failure that
    reported usage, then the retry that succeeded) counts in what the generation cost."""
    if usage is None:
        return {}
    before = before or {}
    totals = {}
    for name in USAGE_COLUMNS:
        value = getattr(usage, name)
        totals[name] = before.get(name) if value is None else (
            value if before.get(name) is None else before[name] + value)
    return totals


async def conclude(store: Store, gen_id: str, *, status: str, from_statuses: Sequence[str] = ("running",),
                   attempt: dict[str, Any] | None = None, usage: Any = None,
                   **changes: Any) -> dict[str, Any] | None:
    """In one transaction: close the attempt (``attempt``: ``number``, ``outcome`` and optionally
    ``http_status``, ``error_code``, ``error_message``, as :func:`backend.db.attempts.end` takes them), add
    ``usage`` to the generation's totals and move it to ``status`` with ``changes``, only from
    ``from_statuses`` (a user's cancel wins).

    Returns the generation's API record as it is now (without the attempt log), or None when it had left
    ``from_statuses``: the attempt is closed all the same, and the caller reads the record.
    """

    def run(cur: Any) -> dict[str, Any] | None:
        if attempt is not None:
            attempts_db.end_in(cur, generation_id=gen_id, **attempt)
        if usage is not None:
            cur.execute(f"SELECT {', '.join(USAGE_COLUMNS)} FROM generations WHERE id = ?", [gen_id])  # noqa: S608
            found = cur.fetchone()
            changes.update(usage_added(dict(zip(USAGE_COLUMNS, found, strict=True)) if found else None, usage))
        row = gens.move(cur, gen_id, status=status, from_statuses=from_statuses, **changes)
        if row is None:
            return None
        row["parent_status"] = None
        if row["status"] == "queued" and row.get("parent_id"):
            cur.execute("SELECT status FROM generations WHERE id = ?", [row["parent_id"]])
            parent = cur.fetchone()
            row["parent_status"] = parent[0] if parent else None
        assets = assets_db.outputs_in(cur, generation_ids=[gen_id]).get(gen_id, [])
        return gens.to_record(row, assets)

    return await store.transaction(run)
