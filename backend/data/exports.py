"""Exports: the library (or a filter, a selection, a collection) as a zip in open formats.

- ``jsonl``: ``generations.jsonl`` (one API record per line), ``conversations.jsonl``, ``batches.jsonl`` and
  ``templates.jsonl`` (the rows those records refer to, see ``related``) and the media files;
- ``parquet``: ``generations.parquet``, ``assets.parquet``, ``attempts.parquet`` and the same three related
  tables (DuckDB's own ``COPY``) and the media files;
- ``markdown``: one ``.md`` per generation (one per conversation for threads of several turns) with its media
  beside it, and an ``index.md``.

Every zip has a ``manifest.json`` (format, counts, the sha256 of each media file). The zip is written under a
temporary name and renamed when complete: a full disk leaves nothing half-written. It never contains the key:
it is built only from the database and the media folder, which never hold it. See docs/data.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backend import __version__
from backend.core.files import fsync_dir
from backend.data import related
from backend.data.selection import iter_records, select_ids
from backend.db.time import new_id
from backend.media.store import MediaStore

FORMATS = ("markdown", "jsonl", "parquet")
MANIFEST = "manifest.json"
FORMAT_VERSION = 1
_EXTENSIONS = {
    "image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif", "video/mp4": "mp4",
    "video/webm": "webm", "video/quicktime": "mov", "audio/mpeg": "mp3", "audio/wav": "wav", "audio/ogg": "ogg",
    "application/pdf": "pdf",
}
_NAME = re.compile(r"^atelier-[0-9]{8}-[0-9]{6}-(markdown|jsonl|parquet)-([0-9a-f]{32})\.zip$")


@dataclass(frozen=True)
class ExportInfo:
    id: str
    file: str
    bytes: int
    items: int
    format: str
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def media_name(asset: dict[str, Any]) -> str:
    """Where an asset's file sits inside an export: ``media/<sha256>.<ext>``."""
    return f"media/{asset['sha256']}.{_EXTENSIONS.get(asset['mime'], 'bin')}"


def write_export(cur: Any, *, media: MediaStore, exports_dir: Path, fmt: str,
                 selection: dict[str, Any]) -> ExportInfo:
    """Write the export zip (blocking: run it in a worker thread with its own cursor)."""
    export_id = new_id()
    now = datetime.now(UTC)
    final = exports_dir / f"atelier-{now:%Y%m%d-%H%M%S}-{fmt}-{export_id}.zip"
    exports_dir.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.part")
    cur.execute("BEGIN TRANSACTION")  # one snapshot for the ids, the rows and the parquet files
    try:
        ids = select_ids(cur, selection)
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
            media_files = _WRITERS[fmt](cur, zf, ids, exports_dir)
            _add_media(zf, media, media_files)
            manifest = {"app": "Atelier", "version": __version__, "format": fmt, "format_version": FORMAT_VERSION,
                        "created_at": now.isoformat().replace("+00:00", "Z"), "items": len(ids),
                        "media": {name: sha for name, sha in sorted(media_files.items())}}
            zf.writestr(MANIFEST, json.dumps(manifest, indent=2))
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        fsync_dir(exports_dir)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    finally:
        cur.execute("ROLLBACK")
    return ExportInfo(export_id, final.name, final.stat().st_size, len(ids), fmt, manifest["created_at"])


def _add_media(zf: zipfile.ZipFile, media: MediaStore, files: dict[str, str]) -> None:
    for name, sha in sorted(files.items()):
        path = media.path_for(sha)
        if path.is_file():
            # Images and videos are compressed already: store them as they are.
            zf.write(path, name, compress_type=zipfile.ZIP_STORED)


def _media_of(record: dict[str, Any], files: dict[str, str]) -> None:
    for asset in [*record["assets"], *record.get("input_assets", [])]:
        files[media_name(asset)] = asset["sha256"]


def _export_ids(cur: Any, ids: list[str]) -> None:
    """The temporary table the related rows (and the Parquet tables) are chosen by."""
    cur.execute("CREATE OR REPLACE TEMP TABLE export_ids AS SELECT unnest(?::VARCHAR[]) AS id", [ids])


def _jsonl(cur: Any, zf: zipfile.ZipFile, ids: list[str], _: Path) -> dict[str, str]:
    files: dict[str, str] = {}
    with zf.open("generations.jsonl", "w", force_zip64=True) as out:
        for record in iter_records(cur, ids):
            _media_of(record, files)
            out.write(json.dumps(record, ensure_ascii=False).encode() + b"\n")
    _export_ids(cur, ids)
    for table in related.TABLES:
        with zf.open(f"{table}.jsonl", "w") as out:
            for row in related.iter_rows(cur, table):
                out.write(json.dumps(row, ensure_ascii=False).encode() + b"\n")
    cur.execute("DROP TABLE export_ids")
    return files


def _parquet(cur: Any, zf: zipfile.ZipFile, ids: list[str], exports_dir: Path) -> dict[str, str]:
    scratch = exports_dir / f".parquet-{new_id()}"
    scratch.mkdir()
    try:
        _export_ids(cur, ids)
        queries = {
            "generations": "SELECT g.* FROM generations g JOIN export_ids e ON g.id = e.id",
            "assets": "SELECT a.* FROM assets a WHERE a.generation_id IN (SELECT id FROM export_ids) "
                      "OR a.id IN (SELECT unnest(CAST(g.input_asset_ids AS VARCHAR[])) FROM generations g "
                      "JOIN export_ids e ON g.id = e.id)",
            "attempts": "SELECT t.* FROM attempts t JOIN export_ids e ON t.generation_id = e.id",
            **{table: related.query(table) for table in related.TABLES},
        }
        for table, query in queries.items():
            path = scratch / f"{table}.parquet"
            # The path is ours (a fresh folder in the exports dir), quoted for SQL; nothing from a request.
            literal = str(path).replace("'", "''")
            cur.execute(f"COPY ({query}) TO '{literal}' (FORMAT parquet)")  # noqa: S608
            zf.write(path, f"{table}.parquet")
        cur.execute("SELECT sha256, mime FROM assets WHERE generation_id IN (SELECT id FROM export_ids) "
                    "OR id IN (SELECT unnest(CAST(g.input_asset_ids AS VARCHAR[])) FROM generations g "
                    "JOIN export_ids e ON g.id = e.id)")
        files = {media_name({"sha256": sha, "mime": mime}): sha for sha, mime in cur.fetchall()}
        cur.execute("DROP TABLE export_ids")
        return files
    finally:
        for child in scratch.iterdir():
            child.unlink()
        scratch.rmdir()


def _slug(text: str, limit: int = 40) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:limit].rstrip("-") or "untitled"


def _title(record: dict[str, Any]) -> str:
    first = (record.get("title") or record["prompt"] or "").strip().splitlines()
    return (first[0] if first else "Untitled")[:120]


def _markdown(cur: Any, zf: zipfile.ZipFile, ids: list[str], _: Path) -> dict[str, str]:
    files: dict[str, str] = {}
    index = ["# Atelier export", "", f"{len(ids)} items, newest first.", ""]
    records = list(iter_records(cur, ids))
    threads: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        if record.get("conversation_id"):
            threads.setdefault(record["conversation_id"], []).append(record)
    written: set[str] = set()
    for record in records:
        _media_of(record, files)
        day = (record["created_at"] or "")[:10]
        turns = threads.get(record.get("conversation_id") or "", [])
        if len(turns) > 1:  # a thread: one document for the whole conversation
            conversation_id = record["conversation_id"]
            if conversation_id not in written:
                written.add(conversation_id)
                turns.sort(key=lambda r: (r["created_at"] or "", r["id"]))
                name = f"{day}-{_slug(_title(turns[0]))}-{conversation_id[:8]}-conversation.md"
                zf.writestr(name, render_conversation(turns))
                index.append(f"- [{_title(turns[0])}]({name}) — conversation, {len(turns)} turns, {day}")
            continue
        name = f"{day}-{_slug(_title(record))}-{record['id'][:8]}.md"
        zf.writestr(name, render_markdown(record))
        index.append(f"- [{_title(record)}]({name}) — {record['kind']}, {record['model']}, {day}")
    zf.writestr("index.md", "\n".join(index) + "\n")
    return files


def render_markdown(record: dict[str, Any]) -> str:
    """One generation as a Markdown document: facts, prompt, answer, media."""
    usage = record.get("usage") or {}
    cost = usage.get("cost_usd")
    facts = [
        ("Kind", record["kind"]), ("Model", record["model"]), ("Status", record["status"]),
        ("Created", record["created_at"]), ("Cost", f"${cost:.6f}" if isinstance(cost, int | float) else "—"),
        ("Tokens", f"{usage.get('prompt_tokens') or 0} in, {usage.get('completion_tokens') or 0} out"),
        ("Tags", ", ".join(record["tags"]) or "—"), ("Id", record["id"]),
    ]
    lines = [f"# {_title(record)}", ""]
    lines += [f"- **{label}:** {value}" for label, value in facts]
    if record.get("system"):
        lines += ["", "## System prompt", "", record["system"]]
    lines += ["", "## Prompt", "", record["prompt"] or ""]
    for asset in record.get("input_assets", []):
        lines += ["", f"![reference]({media_name(asset)})"]
    if record.get("output_text"):
        lines += ["", "## Answer", "", record["output_text"]]
    for asset in record["assets"]:
        lines += ["", _asset_link(asset)]
    if record.get("error"):
        lines += ["", "## Error", "", record["error"].get("message", "")]
    return "\n".join(lines) + "\n"


def _asset_link(asset: dict[str, Any]) -> str:
    """An output file in Markdown: an image shown inline, anything else (a video) as a link."""
    link = media_name(asset)
    return f"![{asset['kind']}]({link})" if asset["kind"] == "image" else f"[{asset['kind']}]({link})"


def render_conversation(turns: list[dict[str, Any]]) -> str:
    """A conversation (its turns oldest first) as one Markdown document; a branch says which turn it answers."""
    costs = [(t.get("usage") or {}).get("cost_usd") or 0 for t in turns]
    lines = [f"# {_title(turns[0])}", "", f"- **Conversation:** {turns[0]['conversation_id']}",
             f"- **Turns:** {len(turns)}", f"- **Cost:** ${sum(costs):.6f}"]
    number = {t["id"]: i for i, t in enumerate(turns, 1)}
    for i, turn in enumerate(turns, 1):
        lines += ["", f"## Turn {i} — {turn['model']}", ""]
        parent = turn.get("parent_id")
        if parent in number and number[parent] != i - 1:
            lines += [f"*Another branch: answers turn {number[parent]}.*", ""]
        elif parent not in number and i > 1:  # a regenerated or edited first turn
            lines += ["*Another branch: a new first turn.*", ""]
        if turn.get("system") and (i == 1 or turn["system"] != turns[i - 2].get("system")):
            lines += ["**System:** " + turn["system"], ""]
        lines += ["**You:**", "", turn["prompt"] or ""]
        for asset in turn.get("input_assets", []):
            lines += ["", f"![reference]({media_name(asset)})"]
        if turn.get("output_text"):
            lines += ["", "**Answer:**", "", turn["output_text"]]
        for asset in turn["assets"]:
            lines += ["", _asset_link(asset)]
        if turn.get("error"):
            lines += ["", "*Error:* " + turn["error"].get("message", "")]
    return "\n".join(lines) + "\n"


_WRITERS = {"jsonl": _jsonl, "parquet": _parquet, "markdown": _markdown}


def list_exports(exports_dir: Path) -> list[dict[str, Any]]:
    """Finished exports, newest first."""
    out = []
    if exports_dir.is_dir():
        for path in exports_dir.iterdir():
            match = _NAME.match(path.name)
            if match and path.is_file():
                stat = path.stat()
                created = datetime.fromtimestamp(stat.st_mtime, UTC).isoformat().replace("+00:00", "Z")
                out.append({"id": match.group(2), "file": path.name, "bytes": stat.st_size,
                            "format": match.group(1), "created_at": created})
    return sorted(out, key=lambda item: item["file"], reverse=True)


def find_export(exports_dir: Path, export_id: str) -> Path | None:
    """The zip of an export by id (ids only: no path from a request reaches the file system)."""
    if not re.fullmatch(r"[0-9a-f]{32}", export_id):
        return None
    for item in list_exports(exports_dir):
        if item["id"] == export_id:
            return exports_dir / item["file"]
    return None
