"""The API key as the rest of the backend sees it: async, cached in memory, validated against OpenRouter.

What OpenRouter said about the key (label, remaining limit, verified) is kept in the ``meta`` table; the key
itself only ever lives in the key store (keychain or private file), never in DuckDB. OpenRouter labels a key
it created after the key's first characters (``sk-or-v1-abc...xyz``): such a label is never kept or shown.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

from backend.core.errors import AtelierError, LockedByPolicy, StorageError
from backend.db.store import Store
from backend.keys.keystore import KeyStore, KeyStoreError, key_hint
from backend.openrouter import OpenRouterClient, UpstreamError

log = logging.getLogger(__name__)

#: The fields of OpenRouter's ``GET /key`` answer worth keeping.
_INFO_FIELDS = ("label", "limit", "limit_remaining", "is_free_tier")
#: How every OpenRouter key starts; a label that starts like a key is a piece of the key.
_KEY_PREFIX = re.compile(r"^\s*sk-", re.IGNORECASE)
#: The part of a key that is the same for every key (``sk-or-v1-``): showing it shows nothing.
_PUBLIC_PART = re.compile(r"^sk-(?:or-)?(?:v\d+-)?", re.IGNORECASE)
#: Shortest run of the key's hidden part that counts as showing it.
_SHOWN_RUN = 3
_MAX_LABEL = 100


def safe_label(label: Any, key: str | None) -> str | None:
    """``label`` when it shows nothing of the key but its last four characters; otherwise None.

    OpenRouter's own labels (``sk-or-v1-abc...xyz``) start like a key; a label the user chose is kept unless
    it repeats any run of characters from the key's hidden part (everything but ``sk-or-v1-`` and the last
    four).
    """
    if not isinstance(label, str) or not label.strip():
        return None
    label = label.strip()[:_MAX_LABEL]
    if _KEY_PREFIX.match(label):
        return None
    if key:
        hidden = _PUBLIC_PART.sub("", key[:-4])
        folded = label.lower()
        runs = {hidden[i:i + _SHOWN_RUN].lower() for i in range(len(hidden) - _SHOWN_RUN + 1)}
        if any(run in folded for run in runs):
            return None
    return label


def _key_info(data: dict[str, Any], key: str | None) -> dict[str, Any]:
    info = {k: data.get(k) for k in _INFO_FIELDS}
    info["label"] = safe_label(info["label"], key)
    return info


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
        info = json.loads(row["value"]) if row else {}
        if info.get("label") is not None and safe_label(info["label"], await self.get()) is None:
            # Written by a version that kept OpenRouter's label as it came: rewrite it without.
            info["label"] = None
            try:
                await self._save_info(info)
            except Exception:  # noqa: BLE001 - a refused write must not fail a read; the label is dropped anyway
                log.warning("the stored key details could not be rewritten without their label")
        return info

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
            "saves_to": await self._saves_to(),
            "user_key_allowed": self.user_key_allowed,
        }

    async def _saves_to(self) -> str:
        """Where a pasted key goes: ``"keyring"`` (the OS keychain) or ``"file"`` (the private fallback file)."""
        name = await asyncio.to_thread(lambda: self.keystore.backend_name)
        return "file" if name == "file" else "keyring"

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
            info = _key_info(data, api_key)
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
        await self._save_info({**_key_info(data, key), "verified": True, "hint": status.hint})

    async def delete(self) -> dict[str, Any]:
        async with self._lock:
            try:
                await asyncio.to_thread(self.keystore.delete)
            except KeyStoreError as exc:
                raise AtelierError(exc.message, code=exc.code) from None
            self._cached = None
            await self.store.execute("DELETE FROM meta WHERE key = 'key_info'")
        return await self.describe()
