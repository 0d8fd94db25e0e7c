"""Asset rows: the files a generation produced and the reference images a user uploaded.

Rows are inserted here and only here; so is reference counting: media files are content addressed and may be
shared by several rows, so a file is removable only when no row refers to it any more (:func:`delete_for`
returns those).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from backend.db.store import Store
from backend.db.time import new_id, now


class FileInfo(Protocol):
    """What the media store tells about a stored file."""

    kind: str
    mime: str
    bytes: int
    sha256: str
    width: int | None
    height: int | None
    duration_s: float | None
    thumb_sha256: str | None


def _insert(cur: Any, *, generation_id: str | None, role: str, info: FileInfo, position: int) -> str:
    asset_id = new_id()
    cur.execute(
        "INSERT INTO assets (id, generation_id, role, kind, mime, bytes, sha256, width, height, duration_s, "
        "thumb_sha256, position, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [asset_id, generation_id, role, info.kind, info.mime, info.bytes, info.sha256, info.width, info.height,
         info.duration_s, info.thumb_sha256, position, now()],
    )
    return asset_id


async def add_outputs(store: Store, *, generation_id: str, infos: Sequence[FileInfo]) -> list[str]:
    """Record the output files of a generation (one transaction); returns their asset ids in order."""

    def write(cur: Any) -> list[str]:
        return [_insert(cur, generation_id=generation_id, role="output", info=info, position=position)
                for position, info in enumerate(infos)]

    return await store.transaction(write)


async def add_upload(store: Store, *, info: FileInfo) -> dict[str, Any]:
    """Record an uploaded reference image (no generation yet); returns its API record."""
    asset_id = await store.transaction(
        lambda cur: _insert(cur, generation_id=None, role="input", info=info, position=0))
    row = await get(store, asset_id=asset_id)
    assert row is not None
    return record(row)


async def get(store: Store, *, asset_id: str) -> dict[str, Any] | None:
    return await store.fetchone(
        "SELECT id, generation_id, kind, mime, bytes, sha256, width, height, duration_s, thumb_sha256 "
        "FROM assets WHERE id = ?", [asset_id])


async def kinds(store: Store, *, asset_ids: Sequence[str]) -> dict[str, str]:
    """The kind of each existing asset among ``asset_ids`` (missing ones are left out)."""
    if not asset_ids:
        return {}
    placeholders = ", ".join("?" for _ in asset_ids)
    rows = await store.fetchall(f"SELECT id, kind FROM assets WHERE id IN ({placeholders})", list(asset_ids))  # noqa: S608
    return {r["id"]: r["kind"] for r in rows}


async def files(store: Store, *, asset_ids: Sequence[str]) -> list[dict[str, Any]]:
    """``{"id", "mime", "sha256"}`` of the given assets, in the order asked (missing ones are skipped)."""
    if not asset_ids:
        return []
    placeholders = ", ".join("?" for _ in asset_ids)
    rows = await store.fetchall(
        f"SELECT id, mime, sha256 FROM assets WHERE id IN ({placeholders})", list(asset_ids)  # noqa: S608
    )
    by_id = {r["id"]: r for r in rows}
    return [by_id[a] for a in asset_ids if a in by_id]


async def outputs_for(store: Store, *, generation_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """The API records of the output assets of each generation, in order."""
    if not generation_ids:
        return {}
    return await store.read(lambda cur: outputs_in(cur, generation_ids=generation_ids))


def outputs_in(cur: Any, *, generation_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """:func:`outputs_for` on a cursor the caller holds (inside a transaction, for instance)."""
    if not generation_ids:
        return {}
    placeholders = ", ".join("?" for _ in generation_ids)
    cur.execute(
        f"SELECT id, generation_id, kind, mime, bytes, sha256, width, height, duration_s, thumb_sha256 "  # noqa: S608
        f"FROM assets WHERE role = 'output' AND generation_id IN ({placeholders}) ORDER BY position, created_at",
        list(generation_ids),
    )
    names = [d[0] for d in cur.description or []]
    rows = [dict(zip(names, values, strict=True)) for values in cur.fetchall()]
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(row["generation_id"], []).append(record(row))
    return out


def record(row: dict[str, Any]) -> dict[str, Any]:
    """The API shape of an asset."""
    out = {
        "id": row["id"], "kind": row["kind"], "mime": row["mime"], "bytes": row["bytes"], "sha256": row["sha256"],
        "width": row.get("width"), "height": row.get("height"), "duration_s": row.get("duration_s"),
        "url": f"/api/v1/assets/{row['id']}",
    }
    out["thumb_url"] = f"/api/v1/assets/{row['id']}?thumb=1" if row.get("thumb_sha256") else None
    return out


def delete_for(cur: Any, *, generation_ids: Sequence[str]) -> list[str]:
    """Inside a transaction: delete the generations' asset rows; return the files (sha256) no row refers to now."""
    ids = list(generation_ids)
    cur.execute("SELECT sha256, thumb_sha256 FROM assets WHERE list_contains(?::VARCHAR[], generation_id)", [ids])
    shas = sorted({sha for row in cur.fetchall() for sha in row if sha})
    cur.execute("DELETE FROM assets WHERE list_contains(?::VARCHAR[], generation_id)", [ids])
    if not shas:
        return []
    cur.execute("SELECT DISTINCT unnest([sha256, thumb_sha256]) FROM assets "
                "WHERE list_contains(?::VARCHAR[], sha256) OR list_contains(?::VARCHAR[], thumb_sha256)", [shas, shas])
    still = {row[0] for row in cur.fetchall()}
    return [sha for sha in shas if sha not in still]
