"""Backups: consistent snapshots of the library database, kept in ``<data>/backups/``; and restoring one.

A snapshot is a folder ``<backups>/<stamp>/`` holding one Parquet file per table (DuckDB's own ``COPY``, all
taken in one read transaction) and a ``manifest.json`` with each file's row count and sha256, the migrations the
database had, and the media files the snapshot refers to. Media files are content-addressed and never
rewritten, so they are not copied; instead, deleting a generation keeps any file a kept backup still refers to
(:func:`media_in_backups`).

Restoring never runs SQL from the backup (DuckDB's ``IMPORT DATABASE`` would run the backup's ``schema.sql``):
a new database file is created with Atelier's own migrations, each table is filled from its Parquet file with
Atelier's own statements, the counts are checked, and only then is the current file set aside and the new one
put in its place. See docs/data.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from backend import __version__
from backend.core.errors import AtelierError, NotFound
from backend.core.files import fsync_dir
from backend.db import search as search_index
from backend.db.migrations import MIGRATIONS, migrate

MANIFEST = "manifest.json"
_ID = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9]{6}$")
# Tables Atelier owns, in the order a restore fills them (schema_migrations comes from the migrations).
TABLES = ("preferences", "generations", "attempts", "assets", "model_cache", "meta", "templates", "collections",
          "collection_items", "batches", "conversations")


class BackupProblem(AtelierError):
    status = 422
    code = "invalid_backup"


@dataclass(frozen=True)
class BackupInfo:
    id: str
    created_at: str
    bytes: int
    items: int
    app_version: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def looks_like_id(value: str) -> bool:
    return bool(_ID.match(value))


def new_id() -> str:
    """A new backup id (a UTC time stamp with microseconds)."""
    return _stamp()


def _stamp() -> str:
    now = time.time()
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)) + f"-{int(now % 1 * 1e6):06d}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _quoted(path: Path) -> str:
    # Paths are ours (a folder we just created under the data dir), quoted as an SQL string literal.
    return "'" + str(path).replace("'", "''") + "'"


def _tables_present(cur: Any) -> list[str]:
    cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'")
    present = {row[0] for row in cur.fetchall()}
    return [table for table in TABLES if table in present]


def make_backup(cur: Any, *, backups_dir: Path, keep: int) -> BackupInfo:
    """Snapshot every table into a new backup folder (blocking: a worker thread with its own cursor), then keep
    only the newest ``keep`` backups."""
    backups_dir.mkdir(parents=True, exist_ok=True)
    backup_id = _stamp()
    tmp = backups_dir / f".{backup_id}.part"
    tmp.mkdir()
    cur.execute("BEGIN TRANSACTION")  # one snapshot for every table
    try:
        tables: dict[str, dict[str, Any]] = {}
        for table in _tables_present(cur):
            target = tmp / f"{table}.parquet"
            cur.execute(f"COPY (SELECT * FROM {table}) TO {_quoted(target)} (FORMAT parquet)")  # noqa: S608
            cur.execute(f"SELECT count(*) FROM {table}")  # noqa: S608
            tables[table] = {"rows": cur.fetchone()[0], "sha256": _sha256(target), "bytes": target.stat().st_size}
        cur.execute("SELECT name FROM schema_migrations ORDER BY name")
        migrations = [row[0] for row in cur.fetchall()]
        cur.execute("SELECT DISTINCT sha FROM (SELECT sha256 AS sha FROM assets UNION ALL "
                    "SELECT thumb_sha256 FROM assets) WHERE sha IS NOT NULL ORDER BY sha")
        media = [row[0] for row in cur.fetchall()]
        created = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        manifest = {"app": "Atelier", "version": __version__, "id": backup_id, "created_at": created,
                    "migrations": migrations, "tables": tables, "media": media,
                    "items": tables.get("generations", {}).get("rows", 0)}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        for child in tmp.iterdir():
            with open(child, "rb") as fh:
                os.fsync(fh.fileno())
        fsync_dir(tmp)
        final = backups_dir / backup_id
        os.replace(tmp, final)
        fsync_dir(backups_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        cur.execute("ROLLBACK")
    prune(backups_dir, keep)
    _media_cache.clear()
    return _info(final, manifest)


def _info(folder: Path, manifest: dict[str, Any]) -> BackupInfo:
    size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    return BackupInfo(folder.name, manifest.get("created_at", ""), size, int(manifest.get("items", 0)),
                      str(manifest.get("version", "")))


def _manifest(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _folders(backups_dir: Path) -> list[Path]:
    if not backups_dir.is_dir():
        return []
    return sorted((p for p in backups_dir.iterdir() if p.is_dir() and _ID.match(p.name)), key=lambda p: p.name,
                  reverse=True)


def list_backups(backups_dir: Path) -> list[dict[str, Any]]:
    """Backups, newest first (folders without a readable manifest are left out)."""
    out = []
    for folder in _folders(backups_dir):
        manifest = _manifest(folder)
        if manifest is not None:
            out.append(_info(folder, manifest).to_dict())
    return out


def newest_age_seconds(backups_dir: Path) -> float | None:
    """Seconds since the newest backup was made, or None when there is none."""
    folders = _folders(backups_dir)
    if not folders:
        return None
    return max(0.0, time.time() - folders[0].stat().st_mtime)


def prune(backups_dir: Path, keep: int) -> list[str]:
    """Remove all but the newest ``keep`` backups; returns the ids removed."""
    removed = []
    for folder in _folders(backups_dir)[max(keep, 1):]:
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder.name)
    if removed:
        _media_cache.clear()
    return removed


_media_cache: dict[tuple[str, ...], frozenset[str]] = {}


def media_in_backups(backups_dir: Path) -> frozenset[str]:
    """The media files (sha256) any kept backup refers to: deleting a generation must keep these."""
    folders = tuple(f.name for f in _folders(backups_dir))
    cached = _media_cache.get(folders)
    if cached is None:
        shas: set[str] = set()
        for name in folders:
            manifest = _manifest(backups_dir / name) or {}
            shas.update(sha for sha in manifest.get("media", []) if isinstance(sha, str))
        cached = _media_cache[folders] = frozenset(shas)
    return cached


def find(backups_dir: Path, backup_id: str) -> Path:
    if not _ID.match(backup_id) or not (backups_dir / backup_id).is_dir():
        raise NotFound(f"There is no backup {backup_id[:64]}.")
    return backups_dir / backup_id


def verify(folder: Path) -> dict[str, Any]:
    """Check a backup before anything is replaced: its manifest, each file's sha256 and row count, and that it
    was made by this Atelier or an older one. Raises :class:`BackupProblem` naming what is wrong."""
    manifest = _manifest(folder)
    if manifest is None or not isinstance(manifest.get("tables"), dict):
        raise BackupProblem(f"The backup {folder.name} has no readable manifest; it cannot be restored.")
    known = {name for name, _ in MIGRATIONS}
    unknown = [m for m in manifest.get("migrations", []) if m not in known]
    if unknown:
        raise BackupProblem(f"The backup {folder.name} was made by a newer Atelier; update Atelier to restore it.")
    if "generations" not in manifest["tables"]:
        raise BackupProblem(f"The backup {folder.name} has no generations table; it cannot be restored.")
    con = duckdb.connect()
    try:
        for table, entry in manifest["tables"].items():
            if table not in TABLES:
                raise BackupProblem(f"The backup {folder.name} holds an unknown table {table!r}.")
            path = folder / f"{table}.parquet"
            if not path.is_file() or _sha256(path) != entry.get("sha256"):
                raise BackupProblem(f"The backup {folder.name} is damaged: {path.name} does not match its checksum.")
            try:
                rows = con.execute("SELECT count(*) FROM read_parquet(?)", [str(path)]).fetchone()[0]
            except duckdb.Error:
                raise BackupProblem(f"The backup {folder.name} is damaged: {path.name} cannot be read.") from None
            if rows != entry.get("rows"):
                raise BackupProblem(f"The backup {folder.name} is damaged: {path.name} has {rows} rows, "
                                    f"not {entry.get('rows')}.")
    finally:
        con.close()
    return manifest


def build_database(folder: Path, manifest: dict[str, Any], target: Path) -> int:
    """Create ``target`` from a verified backup: Atelier's schema, then every table's rows. Returns the number
    of generations. Nothing from the backup is run as SQL."""
    for stale in (target, target.with_name(target.name + ".wal")):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    con = duckdb.connect(str(target))
    try:
        migrate(con)
        con.execute("BEGIN TRANSACTION")
        for table in TABLES:
            if table not in manifest["tables"]:
                continue
            path = str(folder / f"{table}.parquet")
            ours = [r[0] for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
                [table]).fetchall()]
            theirs = {r[0] for r in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [path]).fetchall()}
            columns = ", ".join(f'"{c}"' for c in ours if c in theirs)
            con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM read_parquet(?)", [path])  # noqa: S608
            count = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
            if count != manifest["tables"][table]["rows"]:
                raise BackupProblem(f"The backup {folder.name} could not be restored: {table} has {count} rows.")
        search_index.rebuild(con)  # the index is derived from the rows, so backups do not carry it
        con.execute("COMMIT")
        con.execute("CHECKPOINT")
        return con.execute("SELECT count(*) FROM generations").fetchone()[0]
    except duckdb.Error as exc:
        raise BackupProblem(f"The backup {folder.name} could not be restored ({exc}).") from None
    finally:
        con.close()


RESTORED_RUNNING = {"code": "restored_unknown",
                    "message": "This was being sent when the backup was made; Atelier cannot tell whether it reached "
                               "the model. Retry it if you still want it."}


def resolve(backups_dir: Path, what: str) -> Path:
    """A backup folder from an id (``20260101-120000-000000``) or a path to a backup folder."""
    path = Path(what).expanduser()
    if path.is_dir() and (path / MANIFEST).is_file():
        return path
    return find(backups_dir, what)


async def restore(store: Any, *, folder: Path, db_path: Path) -> dict[str, Any]:
    """Verify the backup in ``folder``, build a new library file from it, set the current file aside and carry on
    with the restored one. What was being sent when the backup was made is marked interrupted (it may have been
    sent since). Returns ``{"restored", "items", "kept_aside"}``; the caller pauses the outbox."""
    manifest = await asyncio.to_thread(verify, folder)
    target = db_path.with_name(f".{db_path.name}.restoring")
    try:
        items = await asyncio.to_thread(build_database, folder, manifest, target)
        aside = await store.replace_file(target, aside_label="before-restore")
    finally:
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
    await store.execute(
        "UPDATE generations SET status = 'interrupted', error = ?, next_attempt_at = NULL, updated_at = now() "
        "WHERE status = 'running'", [json.dumps(RESTORED_RUNNING)])
    return {"restored": folder.name, "items": items, "kept_aside": aside.name}
