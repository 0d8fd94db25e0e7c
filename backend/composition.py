"""The composition root: builds the long-lived services and hangs them on ``app.state``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable

import httpx
from fastapi import FastAPI

from backend.data import backups
from backend.data.uploads import UploadSessions
from backend.keys.credentials import Credentials
from backend.keys.keystore import KeyStore
from backend.keys.oauth import OAuthFlows
from backend.media import MediaStore
from backend.net.netconfig import build_ssl_context, effective_network, resolve_proxy
from backend.openrouter import OpenRouterClient
from backend.outbox.connectivity import Connectivity
from backend.outbox.netchange import NetworkChanges
from backend.outbox.worker import Outbox
from backend.services.admission import Admission
from backend.services.batches import Batches
from backend.services.catalogue import Catalogue
from backend.services.cost_lookups import CostLookups
from backend.services.library import Library

log = logging.getLogger(__name__)


def _policy_value(policy, name: str, default):
    if policy is None:
        return default
    entry = policy.get(name)
    return default if entry is None else entry.value


def _openrouter_client(settings, net, transport: httpx.AsyncBaseTransport | None) -> OpenRouterClient:
    """The OpenRouter client; over ``transport`` when one is set on ``app.state.openrouter_transport`` (tests,
    benchmarks), else over the network with the proxy and CA settings of the settings and policy."""
    network: dict = {"transport": transport} if transport is not None else {
        "proxy": resolve_proxy(net.base_url, policy_proxy=net.proxy, env=os.environ),
        "ssl_context": build_ssl_context(net.ca_bundles),
    }
    return OpenRouterClient(
        net.base_url,
        connect_timeout=settings.connect_timeout_seconds,
        read_timeout=settings.request_timeout_seconds,
        stream_idle_timeout=settings.stream_idle_timeout_seconds,
        max_answer_bytes=settings.max_answer_bytes,
        max_media_bytes=settings.max_media_bytes,
        **network,
    )


async def install_services(app: FastAPI) -> Callable[[], Awaitable[None]]:
    """Start the services; return the coroutine function that stops them."""
    state = app.state
    settings = state.settings
    policy = state.policy
    net = effective_network(settings, policy)
    # Tests hand a fake transport (httpx.MockTransport) in through create_app; the app itself never does.
    client = _openrouter_client(settings, net, getattr(state, "openrouter_transport", None))
    policy_key = None
    if policy is not None:
        from backend.core.policy import read_policy_key

        policy_key = read_policy_key(policy)
    keystore = KeyStore(settings.data_dir, backend=settings.keyring_backend, policy_key=policy_key)
    user_key_allowed = policy.user_key_allowed if policy is not None else True
    state.client = client
    state.keys = Credentials(keystore, state.store, client, user_key_allowed=user_key_allowed)
    state.oauth = OAuthFlows()
    state.media = MediaStore(settings.media_dir, max_bytes=settings.max_media_bytes)
    await asyncio.to_thread(state.media.cleanup_temp)
    state.uploads = await asyncio.to_thread(UploadSessions, settings.data_dir / "imports",
                                            max_bytes=settings.import_max_bytes)
    state.catalogue = Catalogue(state.store, client, refresh_hours=settings.models_refresh_hours, policy=policy)
    state.connectivity = Connectivity()
    state.outbox = Outbox(
        store=state.store, settings=settings, client=client, keys=state.keys, media=state.media,
        preferences=state.preferences, catalogue=state.catalogue, connectivity=state.connectivity, policy=policy,
        concurrency=_policy_value(policy, "outbox_concurrency", settings.outbox_concurrency),
        rng=getattr(state, "outbox_rng", None),
    )
    state.admission = Admission(store=state.store, settings=settings, policy=policy, preferences=state.preferences,
                                keys=state.keys, outbox=state.outbox, catalogue=state.catalogue)
    state.library = Library(store=state.store, media=state.media, outbox=state.outbox,
                            backups_dir=settings.backups_dir)
    state.batches = Batches(store=state.store, settings=settings, policy=policy, preferences=state.preferences,
                            outbox=state.outbox)
    # Stopped streams get their real cost from OpenRouter's stats later, beside the outbox (never inside it).
    state.cost_lookups = CostLookups(store=state.store, client=client, keys=state.keys,
                                     connectivity=state.connectivity, delays=settings.cost_lookup_delays,
                                     probe_seconds=settings.probe_seconds)
    state.outbox.on_attempt_end(state.cost_lookups.wake)
    state.connectivity.on_recheck(state.cost_lookups.wake)
    await state.outbox.start()
    state.cost_lookups.start()
    # The OS saying the network is back probes OpenRouter at once, as user activity does (docs/outbox.md).
    state.network_changes = NetworkChanges(state.connectivity.recheck)
    state.network_changes.start()
    tasks = [asyncio.create_task(_refresh_loop(app), name="catalogue-refresh"),
             asyncio.create_task(_backup_loop(app), name="daily-backup")]

    async def shutdown() -> None:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await state.network_changes.stop()
        await state.cost_lookups.stop()
        await state.outbox.stop()
        await client.aclose()
        await asyncio.to_thread(state.uploads.close)

    return shutdown


async def _refresh_loop(app: FastAPI) -> None:
    """Refresh the model catalogue and the key's details at start and daily, whenever OpenRouter answers."""
    state = app.state
    while True:
        try:
            if state.connectivity.online or await state.client.probe():
                if await state.catalogue.needs_refresh():
                    await state.catalogue.refresh_all(await state.keys.get())
                await state.keys.refresh_info()
                await asyncio.sleep(state.settings.models_refresh_hours * 3600 / 24)
                continue
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("catalogue refresh failed")
        await asyncio.sleep(state.settings.probe_seconds)


async def _backup_loop(app: FastAPI) -> None:
    """Back up the library once per ``backup_interval_hours`` while the app runs (not at start: start-up stays
    quick), keeping the newest ``backup_keep``. A failed backup is logged and tried again at the next check."""
    state = app.state
    interval = state.settings.backup_interval_hours * 3600
    await asyncio.sleep(min(300.0, interval))
    while True:
        try:
            age = await asyncio.to_thread(backups.newest_age_seconds, state.settings.backups_dir)
            has_items = await state.store.fetchone("SELECT 1 AS one FROM generations LIMIT 1")
            if has_items and (age is None or age >= interval):
                info = await state.store.read(lambda cur: backups.make_backup(
                    cur, backups_dir=state.settings.backups_dir, keep=state.settings.backup_keep))
                log.info("daily backup %s made (%d items)", info.id, info.items)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("automatic backup failed")
        await asyncio.sleep(min(3600.0, interval))
