"""``/usage``: what was spent, from OpenRouter's own ``usage.cost`` (never estimates)."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BeforeValidator

from backend.api.deps import StoreDep

router = APIRouter(tags=["usage"])

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_date(value: Any) -> Any:
    """Only ``YYYY-MM-DD``: pydantic would otherwise read ``0`` or ``1700000000`` as Unix timestamps."""
    if isinstance(value, str) and not _ISO_DATE.fullmatch(value):
        raise ValueError("a date is written YYYY-MM-DD")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date)]

_KEYS = {
    "day": "strftime(created_at, '%Y-%m-%d')",
    "week": "strftime(date_trunc('week', created_at), '%Y-%m-%d')",  # the Monday that starts the week
    "month": "strftime(created_at, '%Y-%m')",
    "model": "coalesce(upstream_model, model)",
    "kind": "kind",
    "batch_id": "batch_id",  # null for generations that belong to no batch
}
_PERIODS = ("day", "week", "month")


@router.get("/usage")
async def usage(store: StoreDep, group_by: Literal["day", "week", "month", "model", "kind", "batch_id"] = "day",
                from_: Annotated[IsoDate | None, Query(alias="from")] = None,
                to: Annotated[IsoDate | None, Query()] = None) -> dict[str, Any]:
    """Totals per day, week (keyed by its Monday), month (``YYYY-MM``), model, kind or batch (``batch_id``, null
    for generations outside a batch) for finished generations,
    optionally between ``from`` and ``to`` (inclusive dates). Periods come newest first."""
    return await _usage(store, group_by, from_, to)


async def _usage(store: Any, group_by: str, start: date | None, end: date | None) -> dict[str, Any]:
    where = ["status IN ('succeeded', 'interrupted', 'failed', 'cancelled')"]
    params: list[Any] = []
    if start:
        where.append("created_at >= ?")
        params.append(datetime.combine(start, time.min))
    if end:
        where.append("created_at < ?")
        params.append(datetime.combine(end + timedelta(days=1), time.min))
    key = _KEYS[group_by]
    rows = await store.fetchall(
        f"SELECT {key} AS key, count(*) AS count, coalesce(sum(cost_usd), 0) AS cost_usd, "  # noqa: S608
        f"coalesce(sum(prompt_tokens), 0) AS prompt_tokens, coalesce(sum(completion_tokens), 0) AS completion_tokens "
        f"FROM generations WHERE {' AND '.join(where)} GROUP BY 1 ORDER BY 1 {'DESC' if group_by in _PERIODS else ''}",
        params,
    )
    for row in rows:
        row["cost_usd"] = round(float(row["cost_usd"]), 10)
        row["prompt_tokens"] = int(row["prompt_tokens"])
        row["completion_tokens"] = int(row["completion_tokens"])
    return {"rows": rows, "total_cost_usd": round(sum(r["cost_usd"] for r in rows), 10)}
