"""Spending as people read it: cost per period as bars (empty periods included), cost per model, and the
month's budget gauge. Pure functions over ``/usage`` answers; the templates draw the SVG."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

#: The period selector: (group_by, how many periods, label).
PERIODS: dict[str, tuple[str, int, str]] = {
    "30d": ("day", 30, "30 days"),
    "12w": ("week", 12, "12 weeks"),
    "12m": ("month", 12, "12 months"),
}
WARN_AT = 0.8


@dataclass(frozen=True)
class Bar:
    key: str
    label: str
    cost: float
    count: int
    share: float  # 0..1 of the tallest bar


def _month_start(day: date, back: int) -> date:
    month = day.month - 1 - back
    return date(day.year + month // 12, month % 12 + 1, 1)


def period_keys(group_by: str, count: int, today: date) -> list[tuple[str, str]]:
    """The last ``count`` periods, oldest first, as (key as /usage writes it, short label)."""
    if group_by == "day":
        days = [today - timedelta(days=n) for n in range(count - 1, -1, -1)]
        return [(d.isoformat(), f"{d.day} {d:%b}") for d in days]
    if group_by == "week":
        monday = today - timedelta(days=today.weekday())
        weeks = [monday - timedelta(weeks=n) for n in range(count - 1, -1, -1)]
        return [(w.isoformat(), f"{w.day} {w:%b}") for w in weeks]
    months = [_month_start(today, n) for n in range(count - 1, -1, -1)]
    return [(f"{m:%Y-%m}", f"{m:%b}" if m.month != 1 else f"{m:%b %Y}") for m in months]


def bars(rows: list[dict[str, Any]], group_by: str, count: int, today: date) -> list[Bar]:
    """One bar per period (zero where nothing was spent), scaled to the tallest."""
    by_key = {str(row.get("key")): row for row in rows}
    keys = period_keys(group_by, count, today)
    costs = [float(by_key.get(key, {}).get("cost_usd") or 0) for key, _ in keys]
    peak = max(costs, default=0) or 1.0
    return [Bar(key, label, cost, int(by_key.get(key, {}).get("count") or 0), cost / peak)
            for (key, label), cost in zip(keys, costs, strict=True)]


def model_bars(rows: list[dict[str, Any]], limit: int = 8) -> list[Bar]:
    """The models that cost most (the rest summed as "Other"), scaled to the first."""
    ordered = sorted(rows, key=lambda r: float(r.get("cost_usd") or 0), reverse=True)
    top, rest = ordered[:limit], ordered[limit:]
    items = [(str(r.get("key")), float(r.get("cost_usd") or 0), int(r.get("count") or 0)) for r in top]
    if rest:
        items.append(("Other models", sum(float(r.get("cost_usd") or 0) for r in rest),
                      sum(int(r.get("count") or 0) for r in rest)))
    peak = max((cost for _, cost, _ in items), default=0) or 1.0
    return [Bar(key, key, cost, count, cost / peak) for key, cost, count in items]


@dataclass(frozen=True)
class Budget:
    spent: float
    limit: float
    share: float  # may exceed 1

    @property
    def state(self) -> str:
        """``ok``, ``warn`` (from 80 %) or ``over``."""
        if self.share >= 1:
            return "over"
        return "warn" if self.share >= WARN_AT else "ok"


def budget(month_rows: list[dict[str, Any]], limit: Any, today: date) -> Budget | None:
    """This month's spending against the monthly budget; None without a budget."""
    if limit is None or float(limit) <= 0:
        return None
    key = f"{today:%Y-%m}"
    spent = sum(float(r.get("cost_usd") or 0) for r in month_rows if str(r.get("key")) == key)
    return Budget(spent, float(limit), spent / float(limit))
