"""Spending charts and the budget gauge: period bars with empty periods, model shares, the 80 % warning."""

from __future__ import annotations

from datetime import date

from frontend import spending

TODAY = date(2026, 11, 29)  # a Sunday


def test_day_bars_cover_every_day_oldest_first_with_zeros() -> None:
    rows = [{"key": "2026-11-29", "cost_usd": 2.0, "count": 4}, {"key": "2026-11-20", "cost_usd": 1.0, "count": 1},
            {"key": "2025-01-01", "cost_usd": 50.0, "count": 9}]  # outside the window: not drawn
    bars = spending.bars(rows, "day", 30, TODAY)
    assert len(bars) == 30 and bars[0].key == "2026-10-31" and bars[-1].key == "2026-11-29"
    assert bars[-1].cost == 2.0 and bars[-1].share == 1.0 and bars[-1].count == 4
    assert next(b for b in bars if b.key == "2026-11-20").share == 0.5
    assert sum(1 for b in bars if b.cost == 0) == 28


def test_weeks_start_on_monday_and_months_cross_the_year() -> None:
    weeks = spending.period_keys("week", 12, TODAY)
    assert weeks[-1][0] == "2026-11-23" and len(weeks) == 12
    assert all(date.fromisoformat(key).weekday() == 0 for key, _ in weeks)
    months = spending.period_keys("month", 12, date(2026, 3, 15))
    assert [key for key, _ in months][:3] == ["2025-04", "2025-05", "2025-06"] and months[-1][0] == "2026-03"
    assert months[-3] == ("2026-01", "Jan 2026")


def test_nothing_spent_gives_flat_bars_not_a_division_by_zero() -> None:
    assert all(b.share == 0 for b in spending.bars([], "month", 12, TODAY))


def test_model_bars_keep_the_costliest_and_sum_the_rest() -> None:
    rows = [{"key": f"m/{i}", "cost_usd": float(i), "count": 1} for i in range(1, 11)]
    bars = spending.model_bars(rows, limit=3)
    assert [b.label for b in bars] == ["m/10", "m/9", "m/8", "Other models"]
    assert bars[-1].cost == sum(range(1, 8)) and bars[-1].count == 7
    assert bars[-1].share == 1.0  # the rest together is the largest


def test_budget_gauge_warns_from_80_percent() -> None:
    month = [{"key": "2026-11", "cost_usd": 3.10}, {"key": "2026-10", "cost_usd": 99.0}]
    gauge = spending.budget(month, 10.0, TODAY)
    assert (gauge.spent, gauge.limit, gauge.state) == (3.10, 10.0, "ok")
    assert spending.budget([{"key": "2026-11", "cost_usd": 8.0}], 10, TODAY).state == "warn"
    assert spending.budget([{"key": "2026-11", "cost_usd": 10.0}], 10, TODAY).state == "over"
    assert spending.budget(month, None, TODAY) is None and spending.budget(month, 0, TODAY) is None
