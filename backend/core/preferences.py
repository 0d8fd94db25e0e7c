"""User preferences (``GET/PUT /api/v1/settings``), stored in DuckDB and layered over machine policy.

Order of precedence for a value: policy ``locked`` > the user's stored choice > policy default > built-in default.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from backend.core.errors import AtelierError, LockedByPolicy
from backend.db.store import Store


@dataclass(frozen=True)
class Preference:
    name: str
    default: Any
    help: str
    check: Callable[[Any], bool]
    expected: str


def _model_id(value: Any) -> bool:
    return value is None or (isinstance(value, str) and 0 < len(value) <= 200 and " " not in value)


def _nonneg_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool) and value >= 0)


PREFERENCES: dict[str, Preference] = {
    p.name: p
    for p in [
        Preference("theme", "system", "Colour theme.", lambda v: v in ("system", "light", "dark"),
                   "one of system, light, dark"),
        Preference("default_model_text", "openai/gpt-4o-mini", "Model preselected for text.", _model_id,
                   "a model id such as openai/gpt-4o-mini"),
        Preference("default_model_image", "google/gemini-2.5-flash-image", "Model preselected for images.",
                   _model_id, "a model id"),
        Preference("default_model_video", "google/veo-3.1", "Model preselected for video.", _model_id, "a model id"),
        Preference("default_temperature", 0.7, "Temperature preselected in the Studio.",
                   lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 2,
                   "a number from 0 to 2"),
        Preference("default_max_tokens", 2048, "Max tokens preselected in the Studio (an explicit cap avoids "
                   "spurious 'insufficient credits' errors).",
                   lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 1_000_000,
                   "a whole number from 1 to 1000000"),
        Preference("retry_unknown_text", True, "Retry text and image requests whose delivery is unknown "
                   "(OpenRouter has no idempotency key, so this may bill twice).",
                   lambda v: isinstance(v, bool), "true or false"),
        Preference("budget_monthly_usd", None, "Monthly spending limit in USD (none = no limit).",
                   _nonneg_or_none, "a number ≥ 0 or null"),
    ]
}


class PolicyLike(Protocol):
    def get(self, name: str) -> Any: ...


def _now() -> datetime:
    return datetime.now(UTC)


class Preferences:
    """Reads and writes user preferences, enforcing machine policy locks."""

    def __init__(self, store: Store, policy: PolicyLike | None = None, *, defaults: dict[str, Any] | None = None):
        """``defaults`` replace built-in defaults (``ATELIER_RETRY_UNKNOWN_TEXT`` sets the one of that name)."""
        self.store = store
        self.policy = policy
        self.defaults = {name: pref.default for name, pref in PREFERENCES.items()} | (defaults or {})
        self._cache: dict[str, Any] | None = None

    def _policy_value(self, name: str) -> tuple[bool, Any, bool]:
        """(present, value, locked) from machine policy."""
        if self.policy is None:
            return False, None, False
        entry = self.policy.get(name)
        if entry is None:
            return False, None, False
        return True, entry.value, bool(entry.locked)

    def locked(self) -> list[str]:
        return [name for name in PREFERENCES if self._policy_value(name)[2]]

    async def values(self) -> dict[str, Any]:
        # Only this process writes preferences, so a copy in memory stays right until update() changes them.
        if self._cache is None:
            self._cache = await self._read()
        return dict(self._cache)

    async def _read(self) -> dict[str, Any]:
        rows = await self.store.fetchall("SELECT key, value FROM preferences")
        stored = {row["key"]: json.loads(row["value"]) for row in rows}
        out: dict[str, Any] = {}
        for name in PREFERENCES:
            present, value, locked = self._policy_value(name)
            if locked:
                out[name] = value
            elif name in stored:
                out[name] = stored[name]
            elif present:
                out[name] = value
            else:
                out[name] = self.defaults[name]
        return out

    def forget_cached(self) -> None:
        """Read the preferences from the database again next time (after a restore replaced it)."""
        self._cache = None

    async def get(self, name: str) -> Any:
        return (await self.values())[name]

    async def update(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Validate every change first, then store all of them in one transaction."""
        locked = set(self.locked())
        for name, value in changes.items():
            pref = PREFERENCES.get(name)
            if pref is None:
                raise AtelierError(
                    f"Unknown setting '{name}'. Known settings: {', '.join(PREFERENCES)}.", code="unknown_setting",
                    status=422,
                )
            if name in locked:
                raise LockedByPolicy(
                    f"'{name}' is set by your organisation's policy and cannot be changed here.", setting=name
                )
            if not pref.check(value):
                raise AtelierError(f"'{name}' must be {pref.expected}.", code="invalid_setting", status=422,
                                   setting=name)
        now = _now()

        def write(cur: Any) -> None:
            for name, value in changes.items():
                cur.execute(
                    "INSERT OR REPLACE INTO preferences (key, value, updated_at) VALUES (?, ?, ?)",
                    [name, json.dumps(value), now],
                )

        if changes:
            try:
                await self.store.transaction(write)
            finally:
                self._cache = None
        return await self.values()
