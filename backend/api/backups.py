"""``/backups``: list, make now, restore (see docs/data.md)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from backend.api.deps import OutboxDep, PreferencesDep, SettingsDep, StoreDep
from backend.data import backups

router = APIRouter(tags=["backups"])

class Backup(BaseModel):
    id: str
    created_at: str
    bytes: int
    items: int
    app_version: str


class BackupList(BaseModel):
    items: list[Backup]
    next_cursor: str | None = None


class Restored(BaseModel):
    restored: str
    items: int
    kept_aside: str
    outbox_paused: bool


@router.get("/backups", response_model=BackupList)
async def list_backups(settings: SettingsDep) -> dict[str, Any]:
    """Backups, newest first."""
    return {"items": await asyncio.to_thread(backups.list_backups, settings.backups_dir), "next_cursor": None}


@router.post("/backups", status_code=201, response_model=Backup)
async def make_backup(store: StoreDep, settings: SettingsDep) -> dict[str, Any]:
    """Back up the library now (the oldest backups beyond ``BACKUP_KEEP`` are removed)."""
    info = await store.read(lambda cur: backups.make_backup(cur, backups_dir=settings.backups_dir,
                                                            keep=settings.backup_keep))
    return info.to_dict()


@router.post("/backups/{backup_id}/restore", response_model=Restored)
async def restore_backup(backup_id: str, store: StoreDep, settings: SettingsDep, outbox: OutboxDep,
                         preferences: PreferencesDep) -> dict[str, Any]:
    """Verify the backup, build a new library file from it, set the current file aside and carry on with the
    restored library — no restart. The outbox is paused afterwards: what was waiting in the backup may have been
    sent since, so the user decides when to resume."""
    folder = backups.find(settings.backups_dir, backup_id)
    done = await backups.restore(store, folder=folder, db_path=settings.db_path)
    preferences.forget_cached()
    await outbox.set_paused(True)
    return {**done, "outbox_paused": True}
