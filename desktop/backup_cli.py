"""``atelier backup`` and ``atelier restore <dir-or-id>``: for IT and scripts (see docs/data.md).

When an Atelier is running on the data directory (a live ``runtime.json``), it is asked through its API
(``POST /api/v1/backups``, ``POST /api/v1/backups/{id}/restore``): only it may open the database. Otherwise the
library is opened here and ``backend/data/backups.py`` does the same work. A backup folder given by path that is
not in the data directory's ``backups/`` is copied there first (after it is verified), so both paths restore
from the same place.

Exit status: 0 done, 1 the backup or restore failed (the message says why), 2 the library could not be opened.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path
from typing import Any, TextIO

import httpx

from backend.core.errors import AtelierError
from backend.data import backups

from . import instance


def _say(out: TextIO, json_output: bool, payload: dict[str, Any], text: str) -> None:
    print(json.dumps(payload) if json_output else text, file=out)


def _fail(err: TextIO, message: str, code: int = 1) -> int:
    print(f"atelier: {message}", file=err)
    return code


def _api(info: dict[str, Any], method: str, path: str) -> httpx.Response:
    return httpx.request(method, f"{info['api_url']}/api/v1{path}", timeout=600.0, trust_env=False,
                         headers={"Authorization": f"Bearer {info['token']}"})


def _api_error(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"the running Atelier answered HTTP {response.status_code}"


def _open_store(settings: Any) -> Any:
    from backend.db.store import Store

    return Store.open(Path(settings.db_path), backups_dir=Path(settings.backups_dir))


def run_backup(settings: Any, *, json_output: bool = False, out: TextIO | None = None,
               err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    running = instance.find_live_instance(Path(settings.runtime_path))
    if running:
        try:
            response = _api(running, "POST", "/backups")
        except httpx.HTTPError as exc:
            return _fail(err, f"the running Atelier did not answer ({exc}).")
        if response.status_code != 201:
            return _fail(err, _api_error(response))
        made, via = response.json(), "the running Atelier"
    else:
        try:
            store = _open_store(settings)
        except Exception as exc:  # noqa: BLE001 - any reason the library cannot be opened is reported as is
            return _fail(err, f"the library could not be opened: {exc}", 2)
        try:
            info = asyncio.run(store.read(lambda cur: backups.make_backup(
                cur, backups_dir=Path(settings.backups_dir), keep=settings.backup_keep)))
        except (AtelierError, OSError) as exc:
            return _fail(err, f"the backup failed: {exc}")
        finally:
            store.close()
        made, via = info.to_dict(), "the library file"
    folder = Path(settings.backups_dir) / made["id"]
    _say(out, json_output, {**made, "path": str(folder), "via": "api" if running else "file"},
         f"Backup {made['id']} made from {via}: {made['items']} items, {made['bytes']:,} bytes, in {folder}")
    return 0


def _into_backups_dir(folder: Path, backups_dir: Path) -> str:
    """The id of ``folder`` inside ``backups_dir``, copying it there (verified) when it lives elsewhere."""
    if folder.resolve().parent == backups_dir.resolve():
        return folder.name
    backups.verify(folder)
    manifest = json.loads((folder / backups.MANIFEST).read_text())
    backup_id = str(manifest.get("id", ""))
    if not backups.looks_like_id(backup_id) or (backups_dir / backup_id).exists():
        backup_id = backups.new_id()
    backups_dir.mkdir(parents=True, exist_ok=True)
    partial = backups_dir / f".{backup_id}.part"
    shutil.copytree(folder, partial)
    partial.rename(backups_dir / backup_id)
    return backup_id


def run_restore(settings: Any, what: str, *, json_output: bool = False, out: TextIO | None = None,
                err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    backups_dir = Path(settings.backups_dir)
    try:
        folder = backups.resolve(backups_dir, what)
        backup_id = _into_backups_dir(folder, backups_dir)
    except (AtelierError, OSError) as exc:
        return _fail(err, f"cannot restore {what}: {exc}")
    folder = backups_dir / backup_id
    running = instance.find_live_instance(Path(settings.runtime_path))
    if running:
        try:
            response = _api(running, "POST", f"/backups/{backup_id}/restore")
        except httpx.HTTPError as exc:
            return _fail(err, f"the running Atelier did not answer ({exc}).")
        if response.status_code != 200:
            return _fail(err, _api_error(response))
        done = response.json()
    else:
        try:
            store = _open_store(settings)
        except Exception as exc:  # noqa: BLE001 - reported as is; restoring over a damaged file is still allowed
            return _fail(err, f"the library could not be opened: {exc}", 2)
        try:
            from backend.db import meta

            async def go() -> dict[str, Any]:
                result = await backups.restore(store, folder=folder, db_path=Path(settings.db_path))
                await meta.put(store, key="outbox_paused", value="true")  # as the API does: the user resumes
                return {**result, "outbox_paused": True}

            done = asyncio.run(go())
        except (AtelierError, OSError) as exc:
            return _fail(err, f"the restore failed: {exc}")
        finally:
            store.close()
    _say(out, json_output, {**done, "via": "api" if running else "file"},
         f"Restored backup {done['restored']} ({done['items']} items). The previous library is kept as "
         f"{done['kept_aside']}. Sending is paused: resume it in Atelier when you are ready.")
    return 0
