"""The end of an attempt, written in one transaction: the attempt closed, the usage added, the generation moved
to its next status, and its record read back for the listeners, in one round trip to the database instead of
six in a row (docs/performance.md, "Issue 14")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from backend.core.vocabulary import Status
from backend.db import assets as assets_db
from backend.db import attempts as attempts_db
from backend.db import generations as gens
from backend.db.store import Store

#: The usage columns, as a ``Usage`` (backend/openrouter/results.py) names them.
USAGE_COLUMNS = ("prompt_tokens", "completion_tokens", "cost_usd")


def usage_added(usage: Any) -> dict[str, Any]:
    """What ``usage`` adds to the generation's usage columns: every attempt OpenRouter billed (a failure that
    reported usage, then the retry that succeeded) counts in what the generation cost. A value OpenRouter did
    not report leaves its column as it was."""
    if usage is None:
        return {}
    return {name: getattr(usage, name) for name in USAGE_COLUMNS if getattr(usage, name) is not None}


async def conclude(store: Store, gen_id: str, *, status: str, from_statuses: Sequence[str] = (Status.RUNNING,),
                   attempt: dict[str, Any] | None = None, usage: Any = None, outputs: bool = True,
                   **changes: Any) -> dict[str, Any] | None:
    """In one transaction: close the attempt (``attempt``: ``number``, ``outcome`` and optionally
    ``http_status``, ``error_code``, ``error_message``, as :func:`backend.db.attempts.end` takes them), add
    ``usage`` to the generation's totals and move it to ``status`` with ``changes``, only from
    ``from_statuses`` (a user's cancel wins).

    Returns the generation's API record as it is now (without the attempt log), or None when it had left
    ``from_statuses``: the attempt is closed all the same, and the caller reads the record. The write lock is
    held only for the writes (many streams end while new requests wait to commit): the output assets are read
    after it, and only with ``outputs`` (an answer that saved no file has none).
    """

    def run(cur: Any) -> dict[str, Any] | None:
        if attempt is not None:
            attempts_db.end_in(cur, generation_id=gen_id, **attempt)
        return gens.move(cur, gen_id, status=status, from_statuses=from_statuses, add=usage_added(usage),
                         **changes)

    row = await store.transaction(run)
    if row is None:
        return None
    await gens.with_parent_status(store, [row])  # a read only for a queued turn
    assets = (await assets_db.outputs_for(store, generation_ids=[gen_id])).get(gen_id, []) if outputs else []
    return gens.to_record(row, assets)
