"""The API key as the rest of the backend sees it: async, cached in memory, validated against OpenRouter.

What OpenRouter said about the key (label, remaining limit, verified) is kept in the ``meta`` table; the key
itself only ever lives in the key store (keychain or private file), never in DuckDB.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from backend.core.errors import AtelierError, LockedByPolicy, StorageError
from backend.db.store import Store
from backend.keys.keystore import KeyStore, KeyStoreError, key_hint
from backend.openrouter import OpenRouterClient, UpstreamError

log = logging.getLogger(__name__)


class _Held:
    """Keeps the key out of reprs and tracebacks."""

    __slots__ = ("value",)

    def __init__(self, value: str | None) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<key>"


class Credentials:
    def __init__(self, keystore: KeyStore, store: Store, client: OpenRouterClient, *, user_key_allowed: bool = True):
        self.keystore = keystore
        self.store = store
        self.client = client
        self.user_key_allowed = user_key_allowed
        self._cached: _Held | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> str | None:
        """The key in effect (cached), or None."""
        if self._cached is None:
            try:
                value = await asyncio.to_thread(self.keystore.get)
            except KeyStoreError as exc:
                log.warning("the key could not be read: %s", exc.message)
                return None
            self._cached = _Held(value)
        return self._cached.value

    async def status(self):
        return await asyncio.to_thread(self.keystore.status)

    async def _info(self) -> dict[str, Any]:
        row = await self.store.fetchone("SELECT value FROM meta WHERE key = 'key_info'")
        return json.loads(row["value"]) if row else {}

    async def _save_info(self, info: dict[str, Any]) -> None:
        await self.store.execute("INSERT OR REPLACE INTO meta VALUES ('key_info', ?)", [json.dumps(info)])

    async def describe(self) -> dict[str, Any]:
        status = await self.status()
        info = await self._info()
        if info.get("hint") != status.hint:
            info = {}  # the key changed outside the app (env, policy, keychain): what we knew is stale
        return {
            "configured": status.configured,
            "source": status.source,
            "hint": status.hint,
            "verified": bool(info.get("verified", False)),
            "label": info.get("label"),
            "limit": info.get("limit"),
            "limit_remaining": info.get("limit_remaining"),
            "is_free_tier": info.get("is_free_tier"),
            "storage_note": status.storage_note,
            "user_key_allowed": self.user_key_allowed,
        }

    async def set(self, api_key: str) -> dict[str, Any]:
        """Validate with ``GET /key`` when OpenRouter answers; store it either way unless it is rejected."""
        if not self.user_key_allowed:
            raise LockedByPolicy("Your organisation provides the OpenRouter key; it cannot be changed here.",
                                 setting="api_key")
        api_key = (api_key or "").strip()
        if not api_key:
            raise AtelierError("Paste your OpenRouter API key (it starts with sk-or-).", code="invalid_key")
        verified = False
        info: dict[str, Any] = {}
        try:
            data = await self.client.get_key_info(api_key)
            verified = True
            info = {k: data.get(k) for k in ("label", "limit", "limit_remaining", "is_free_tier")}
        except UpstreamError as exc:
            if exc.code == "invalid_key" or exc.upstream_status == 401:
                raise AtelierError(
                    "OpenRouter rejected this key (revoked or mistyped). Copy it again from "
                    "https://openrouter.ai/keys.", code="invalid_key", upstream_status=401) from None
            if exc.disposition == "reject":
                raise AtelierError(exc.message, code="invalid_key", upstream_status=exc.upstream_status) from None
            log.info("OpenRouter unreachable while checking the key; stored unverified")
        async with self._lock:
            try:
                status = await asyncio.to_thread(self.keystore.set, api_key)
            except KeyStoreError as exc:
                if exc.code in ("disk_full", "permission", "io_error"):
                    raise StorageError(exc.message) from None
                status_code = 403 if exc.code == "read_only" else 400
                raise AtelierError(exc.message, code=exc.code, status=status_code) from None
            except ValueError as exc:
                raise AtelierError(str(exc), code="invalid_key") from None
            self._cached = None
            await self._save_info({**info, "verified": verified, "hint": status.hint or key_hint(api_key)})
        return await self.describe()

    async def refresh_info(self) -> None:
        """Re-read label/limit from OpenRouter (at start-up when online)."""
        key = await self.get()
        if not key:
            return
        try:
            data = await self.client.get_key_info(key)
        except UpstreamError as exc:
            if exc.code == "invalid_key":
                info = await self._info()
                await self._save_info({**info, "verified": False, "revoked": True})
            return
        status = await self.status()
        await self._save_info({**{k: data.get(k) for k in ("label", "limit", "limit_remaining", "is_free_tier")},
                               "verified": True, "hint": status.hint})

    async def delete(self) -> dict[str, Any]:
        async with self._lock:
            try:
                await asyncio.to_thread(self.keystore.delete)
            except KeyStoreError as exc:
                raise AtelierError(exc.message, code=exc.code) from None
            self._cached = None
            await self.store.execute("DELETE FROM meta WHERE key = 'key_info'")
        return await self.describe()
