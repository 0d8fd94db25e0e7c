"""After a restart: what was ``running`` when the app last stopped (or crashed) is decided before the outbox
sends anything (docs/outbox.md, "Restart and shutdown")."""

from __future__ import annotations

from backend.core.errors import error_dict
from backend.core.vocabulary import Kind, Status
from backend.db import attempts as attempts_db
from backend.db import generations as gens
from backend.db.store import Store
from backend.outbox.attempt import MAX_UNKNOWN_DELIVERIES, AttemptRules


async def resume_after_restart(store: Store, rules: AttemptRules, *, max_attempts: int) -> None:
    """Whatever was ``running`` when the app last stopped (or crashed) is decided here. An attempt the
    crash cut off is closed as ``unknown`` and counts toward ``max_attempts``."""
    await attempts_db.close_unfinished(store)
    rows = await gens.running_rows(store)
    retry_unknown = await rules.retry_unknown()
    for row in rows:
        gen_id = row["id"]
        if row["kind"] == Kind.VIDEO:
            if row["job_id"]:
                continue  # followed again by the loop
            seen = f" (OpenRouter generation {row['upstream_id']})" if row["upstream_id"] else ""
            await rules.finish(gen_id, Status.INTERRUPTED, error=error_dict(
                "delivery_unknown",
                f"Atelier stopped while this video was being submitted{seen}, so it is unknown whether "
                "OpenRouter started it. Retry it if it does not appear in your OpenRouter activity."))
        elif row["output_text"]:
            await rules.finish(gen_id, Status.INTERRUPTED, error=error_dict(
                "interrupted", "Atelier stopped while this answer was streaming; the text received so far "
                "is kept. Retry to generate it again."))
        elif (retry_unknown
              and await attempts_db.unknown_deliveries(store, generation_id=gen_id) < MAX_UNKNOWN_DELIVERIES
              and await attempts_db.counted(store, generation_id=gen_id) < max_attempts):
            await gens.transition(store, gen_id, status=Status.QUEUED, next_attempt_at=None)
        else:
            await rules.finish(gen_id, Status.INTERRUPTED, error=error_dict(
                "delivery_unknown", "Atelier stopped while this request was being sent; it may or may not "
                "have reached the model. Retry it if you still want it."))
