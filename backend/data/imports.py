"""Imports: merge an export zip (JSONL or Parquet) from another machine into this library.

Everything is checked before anything is written to the database: the manifest, every record (fields, types,
sizes), and every media file against its sha256. Then one transaction adds the generations this library does
not have (by id), with the conversations, batches and templates they refer to (``related``) when this library
lacks them; nothing is duplicated and nothing already here is overwritten. Items that were still waiting
to be sent come in ``cancelled``: sending them from a second machine could bill them twice. See docs/data.md.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from backend.core.errors import AtelierError
from backend.core.vocabulary import PENDING, Kind, Status
from backend.data import related
from backend.data.exports import FORMAT_VERSION, MANIFEST, media_name
from backend.db import search as search_index
from backend.media import MediaError, MediaStore

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
MAX_LINE = 64 * 2**20
MAX_TEXT = 16 * 2**20
GENERATION_COLUMNS = (
    "id", "kind", "status", "model", "prompt", "system", "params", "input_asset_ids", "stream", "title", "tags",
    "favorite", "output_text", "reasoning_text", "prompt_tokens", "completion_tokens", "cost_usd", "upstream_id",
    "upstream_model", "job_id", "polling_url", "attempts", "error", "next_attempt_at", "created_at", "started_at",
    "finished_at", "updated_at", "conversation_id", "parent_id", "template_id", "variables", "batch_id",
)
ASSET_COLUMNS = ("id", "generation_id", "role", "kind", "mime", "bytes", "sha256", "width", "height", "duration_s",
                 "thumb_sha256", "position", "created_at")
ATTEMPT_COLUMNS = ("generation_id", "number", "started_at", "finished_at", "outcome", "http_status", "error_code",
                   "error_message")
IMPORTED_PENDING = {"code": "imported_unsent",
                    "message": "Imported from another computer before it was sent; retry it to send it from here."}


class ImportProblem(AtelierError):
    status = 422
    code = "invalid_import"


@dataclass
class Parsed:
    generations: list[dict[str, Any]] = field(default_factory=list)
    assets: list[dict[str, Any]] = field(default_factory=list)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    media: dict[str, str] = field(default_factory=dict)  # name in the zip → sha256
    related: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # table → checked rows


def read_export(path: Path, *, max_media_bytes: int) -> Parsed:
    """Open and check an export zip; raises :class:`ImportProblem` naming what is wrong."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise ImportProblem("This file is not an Atelier export (it is not a zip file).") from None
    with zf:
        names = set(zf.namelist())
        if MANIFEST not in names:
            raise ImportProblem("This zip is not an Atelier export: it has no manifest.json.")
        manifest = _json(zf.read(MANIFEST), "manifest.json")
        fmt = manifest.get("format") if isinstance(manifest, dict) else None
        if fmt == "markdown":
            raise ImportProblem("Markdown exports are for reading; import a JSONL or Parquet export instead.")
        if fmt not in ("jsonl", "parquet"):
            raise ImportProblem("This export's format is not one Atelier can import (JSONL or Parquet).")
        if not isinstance(manifest.get("format_version"), int) or manifest["format_version"] > FORMAT_VERSION:
            raise ImportProblem("This export was made by a newer Atelier; update Atelier to import it.")
        parsed = _read_jsonl(zf) if fmt == "jsonl" else _read_parquet(zf)
        for info in zf.infolist():
            if info.filename.startswith("media/") and info.file_size > max_media_bytes:
                raise ImportProblem(f"The media file {info.filename} is larger than this library accepts.")
        for asset in parsed.assets:
            parsed.media[media_name(asset)] = asset["sha256"]
        return parsed


def _json(data: bytes, where: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ImportProblem(f"{where} is not valid JSON.") from None


def _read_jsonl(zf: zipfile.ZipFile) -> Parsed:
    if "generations.jsonl" not in zf.namelist():
        raise ImportProblem("This JSONL export has no generations.jsonl.")
    parsed = Parsed()
    with zf.open("generations.jsonl") as fh:
        for number, line in enumerate(_lines(fh), start=1):
            if not line.strip():
                continue
            record = _json(line, f"Line {number} of generations.jsonl")
            if not isinstance(record, dict):
                raise ImportProblem(f"Line {number} of generations.jsonl is not a record.")
            where = f"line {number} of generations.jsonl"
            generation = _generation_from_record(record, where)
            parsed.generations.append(generation)
            for role, key in (("output", "assets"), ("input", "input_assets")):
                for position, asset in enumerate(_list(record.get(key, []), key, where)):
                    parsed.assets.append(_asset_from_record(asset, generation, role, position, where))
            for attempt in _list(record.get("attempt_log", []), "attempt_log", where):
                parsed.attempts.append(_attempt(attempt, generation["id"], where))
    for table in related.TABLES:  # an export made before they were exported has none
        rows: list[dict[str, Any]] = []
        if f"{table}.jsonl" in zf.namelist():
            with zf.open(f"{table}.jsonl") as fh:
                for number, line in enumerate(_lines(fh), start=1):
                    if line.strip():
                        rows.append(_related_row(table, _json(line, f"Line {number} of {table}.jsonl"),
                                                 f"line {number} of {table}.jsonl"))
        parsed.related[table] = rows
    return parsed


def _lines(fh: Any) -> Any:
    while True:
        line = fh.readline(MAX_LINE + 1)
        if not line:
            return
        if len(line) > MAX_LINE and not line.endswith(b"\n"):
            raise ImportProblem("generations.jsonl has a line longer than 64 MiB.")
        yield line


def _read_parquet(zf: zipfile.ZipFile) -> Parsed:
    parsed = Parsed()
    with tempfile.TemporaryDirectory(prefix="atelier-import-") as scratch:
        con = duckdb.connect()
        try:
            tables: dict[str, list[dict[str, Any]]] = {}
            for table in ("generations", "assets", "attempts", *related.TABLES):
                name = f"{table}.parquet"
                if name not in zf.namelist():
                    if table in related.TABLES:  # an export made before they were exported has none
                        tables[table] = []
                        continue
                    raise ImportProblem(f"This Parquet export has no {name}.")
                target = Path(scratch) / name
                with zf.open(name) as src, open(target, "wb") as dst:
                    while chunk := src.read(1 << 20):
                        dst.write(chunk)
                try:
                    cur = con.execute("SELECT * FROM read_parquet(?)", [str(target)])
                    columns = [c[0] for c in cur.description]
                    tables[table] = [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]
                except duckdb.Error:
                    raise ImportProblem(f"{name} in this export cannot be read.") from None
        finally:
            con.close()
    for number, row in enumerate(tables["generations"], start=1):
        parsed.generations.append(_generation_row(row, f"row {number} of generations.parquet"))
    known = {g["id"]: g for g in parsed.generations}
    for number, row in enumerate(tables["assets"], start=1):
        where = f"row {number} of assets.parquet"
        parsed.assets.append(_asset_row(row, where))
    for number, row in enumerate(tables["attempts"], start=1):
        where = f"row {number} of attempts.parquet"
        if row.get("generation_id") in known:
            parsed.attempts.append(_attempt(row, row["generation_id"], where))
    for table in related.TABLES:
        parsed.related[table] = [_related_row(table, row, f"row {number} of {table}.parquet")
                                 for number, row in enumerate(tables[table], start=1)]
    return parsed


def _fail(where: str, name: str, what: str) -> ImportProblem:
    return ImportProblem(f"The export is damaged: {name} in {where} {what}.", field=name)


def _text(value: Any, name: str, where: str, *, optional: bool = True, limit: int = MAX_TEXT) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise _fail(where, name, "is not text of an acceptable length")
    return value


def _int(value: Any, name: str, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(where, name, "is not a whole number")
    return value


def _time(value: Any, name: str, where: str, *, optional: bool = True) -> datetime | None:
    if value is None and optional:
        return None
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise _fail(where, name, "is not a time") from None


def _list(value: Any, name: str, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(where, name, "is not a list")
    return value


def _id(value: Any, name: str, where: str) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise _fail(where, name, "is not an id")
    return value


def _generation_from_record(record: dict[str, Any], where: str) -> dict[str, Any]:
    usage = record.get("usage") or {}
    if not isinstance(usage, dict):
        raise _fail(where, "usage", "is not an object")
    row = {name: record.get(name) for name in GENERATION_COLUMNS}
    row.update(
        prompt_tokens=usage.get("prompt_tokens"), completion_tokens=usage.get("completion_tokens"),
        cost_usd=usage.get("cost_usd"), params=json.dumps(record.get("params") or {}),
        input_asset_ids=json.dumps(record.get("input_asset_ids") or []),
        error=json.dumps(record["error"]) if record.get("error") else None,
        variables=json.dumps(record["variables"]) if record.get("variables") is not None else None,
        updated_at=record.get("finished_at") or record.get("created_at"),
    )
    return _generation_row(row, where)


def _generation_row(row: dict[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {"id": _id(row.get("id"), "id", where)}
    if row.get("kind") not in set(Kind):
        raise _fail(where, "kind", "is not text, image or video")
    if row.get("status") not in set(Status):
        raise _fail(where, "status", "is not a status")
    out["kind"], out["status"] = str(row["kind"]), str(row["status"])
    out["model"] = _text(row.get("model"), "model", where, optional=False, limit=200)
    out["prompt"] = _text(row.get("prompt"), "prompt", where, optional=False)
    for name in ("system", "title", "output_text", "reasoning_text", "upstream_id", "upstream_model", "job_id",
                 "polling_url"):
        out[name] = _text(row.get(name), name, where)
    for name in ("params", "input_asset_ids", "error", "variables"):
        out[name] = _json_text(row.get(name), name, where, list if name == "input_asset_ids" else dict)
    out["params"] = out["params"] or "{}"
    out["input_asset_ids"] = out["input_asset_ids"] or "[]"
    for name in ("prompt_tokens", "completion_tokens", "attempts"):
        out[name] = _int(row.get(name), name, where)
    out["attempts"] = out["attempts"] or 0
    cost = row.get("cost_usd")
    if cost is not None and (isinstance(cost, bool) or not isinstance(cost, int | float) or cost < 0):
        raise _fail(where, "cost_usd", "is not an amount")
    out["cost_usd"] = cost
    tags = _list(row.get("tags") if row.get("tags") is not None else [], "tags", where)
    out["tags"] = [_text(tag, "tags", where, optional=False, limit=64) for tag in tags][:32]
    out["stream"], out["favorite"] = bool(row.get("stream")), bool(row.get("favorite"))
    for name in ("next_attempt_at", "started_at", "finished_at"):
        out[name] = _time(row.get(name), name, where)
    out["created_at"] = _time(row.get("created_at"), "created_at", where, optional=False)
    out["updated_at"] = _time(row.get("updated_at"), "updated_at", where) or out["created_at"]
    # A turn keeps its place in its conversation, an item its batch, a rendered prompt its template.
    for name in ("conversation_id", "parent_id", "template_id", "batch_id"):
        out[name] = None if row.get(name) is None else _id(row.get(name), name, where)
    if out["status"] in PENDING:
        out.update(status=str(Status.CANCELLED), next_attempt_at=None, error=json.dumps(IMPORTED_PENDING))
    return out


def _json_text(value: Any, name: str, where: str, expected: type) -> str | None:
    """A JSON column: stored as text; a JSONL export may carry it as the object itself."""
    if isinstance(value, expected) and not isinstance(value, str):
        value = json.dumps(value)
    raw = _text(value, name, where)
    if raw is not None and not isinstance(_json(raw.encode(), f"{name} in {where}"), expected):
        raise _fail(where, name, "has the wrong shape")
    return raw


def _related_row(table: str, row: Any, where: str) -> dict[str, Any]:
    """A conversation, batch or template row, checked column by column (``related.TABLES``)."""
    if not isinstance(row, dict):
        raise ImportProblem(f"{where[0].upper()}{where[1:]} is not a record.")
    out: dict[str, Any] = {"id": _id(row.get("id"), "id", where)}
    for name in related.TABLES[table][1][1:]:
        value = row.get(name)
        if name in ("created_at", "updated_at"):
            out[name] = _time(value, name, where, optional=False)
        elif name == "kind":
            if value not in set(Kind):
                raise _fail(where, "kind", "is not text, image or video")
            out[name] = str(value)
        elif name == "state":
            if value not in ("active", "paused", "cancelled"):
                raise _fail(where, "state", "is not a batch state")
            out[name] = value
        elif name == "template_id":
            out[name] = None if value is None else _id(value, name, where)
        elif name == "params":
            out[name] = _json_text(value if value is not None else {}, name, where, dict)
        elif name in ("tags", "models"):
            items = _list(list(value) if value is not None else [], name, where)
            out[name] = [_text(item, name, where, optional=False, limit=200) for item in items][:32]
        elif name in ("rows_count", "repeats", "total"):
            out[name] = _int(value, name, where) or 0
        else:  # title, name, prompt, system, model
            out[name] = _text(value, name, where, optional=not (table == "templates" and name in ("name", "prompt")))
    return out


def _asset_from_record(asset: Any, generation: dict[str, Any], role: str, position: int,
                       where: str) -> dict[str, Any]:
    if not isinstance(asset, dict):
        raise _fail(where, "assets", "is not a list of assets")
    return _asset_row({**asset, "generation_id": generation["id"] if role == "output" else None, "role": role,
                       "position": position, "created_at": generation["created_at"]}, where)


def _asset_row(row: dict[str, Any], where: str) -> dict[str, Any]:
    sha = row.get("sha256")
    if not isinstance(sha, str) or not _SHA.match(sha):
        raise _fail(where, "sha256", "is not a sha256 digest")
    if row.get("role") not in ("output", "input"):
        raise _fail(where, "role", "is not output or input")
    generation_id = row.get("generation_id")
    return {
        "id": _id(row.get("id"), "asset id", where),
        "generation_id": _id(generation_id, "generation_id", where) if generation_id is not None else None,
        "role": row["role"], "kind": _text(row.get("kind"), "kind", where, optional=False, limit=16),
        "mime": _text(row.get("mime"), "mime", where, optional=False, limit=100),
        "bytes": _int(row.get("bytes"), "bytes", where), "sha256": sha,
        "position": _int(row.get("position"), "position", where) or 0,
        "created_at": _time(row.get("created_at"), "created_at", where, optional=False),
    }


def _attempt(row: Any, generation_id: str, where: str) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise _fail(where, "attempt_log", "is not a list of attempts")
    return {
        "generation_id": generation_id, "number": _int(row.get("number"), "number", where) or 0,
        "started_at": _time(row.get("started_at"), "started_at", where, optional=False),
        "finished_at": _time(row.get("finished_at"), "finished_at", where),
        "outcome": _text(row.get("outcome"), "outcome", where, limit=32),
        "http_status": _int(row.get("http_status"), "http_status", where),
        "error_code": _text(row.get("error_code"), "error_code", where, limit=100),
        "error_message": _text(row.get("error_message"), "error_message", where, limit=10_000),
    }


def store_media(path: Path, parsed: Parsed, media: MediaStore) -> dict[str, Any]:
    """Copy every media file the import needs into the media store, each checked against its sha256.

    Returns ``sha256 → MediaInfo``. Files written here and not yet referenced are removed again when a later
    file fails, so a refused import leaves the media folder as it was.
    """
    infos: dict[str, Any] = {}
    written: list[str] = []
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            for name, sha in sorted(parsed.media.items()):
                if sha in infos:
                    continue
                if name not in names:
                    if media.exists(sha):
                        infos[sha] = None
                        continue
                    raise ImportProblem(f"The export is missing the media file {name}.")
                existed = media.exists(sha)
                digest = hashlib.sha256()
                with zf.open(name) as src, media.open_writer() as writer:
                    while chunk := src.read(1 << 20):
                        digest.update(chunk)
                        writer.write(chunk)
                    if digest.hexdigest() != sha:  # leaving the block unconfirmed discards the file
                        raise ImportProblem(
                            f"The media file {name} does not match its checksum; the export is damaged.")
                    infos[sha] = writer.commit()
                if not existed:
                    written.append(sha)
    except (ImportProblem, MediaError, zipfile.BadZipFile, OSError):
        for sha in written:
            media.delete_if_unreferenced(sha, False)
        raise
    return infos


def _merge_related(cur: Any, parsed: Parsed, added: list[dict[str, Any]]) -> None:
    """Add the conversations, batches and templates the added generations refer to and this library lacks."""
    for table, (reference, columns) in related.TABLES.items():
        wanted = {g[reference] for g in added if g[reference] is not None}
        for row in parsed.related.get(table, []):
            if row["id"] in wanted:
                wanted.discard(row["id"])
                cur.execute(f"INSERT INTO {table} ({', '.join(columns)}) "  # noqa: S608 (names are ours)
                            f"VALUES ({', '.join('?' for _ in columns)}) ON CONFLICT DO NOTHING",
                            [row[c] for c in columns])


def merge(cur: Any, parsed: Parsed, infos: dict[str, Any]) -> dict[str, int]:
    """Inside one transaction: add what this library does not have (by id). Returns added/skipped counts."""
    ids = [g["id"] for g in parsed.generations]
    cur.execute("SELECT id FROM generations WHERE list_contains(?::VARCHAR[], id)", [ids])
    present = {row[0] for row in cur.fetchall()}
    asset_ids = [a["id"] for a in parsed.assets]
    cur.execute("SELECT id FROM assets WHERE list_contains(?::VARCHAR[], id)", [asset_ids])
    present_assets = {row[0] for row in cur.fetchall()}
    added = [g for g in dict((g["id"], g) for g in parsed.generations).values() if g["id"] not in present]
    added_ids = {g["id"] for g in added}
    for g in added:
        cur.execute(f"INSERT INTO generations ({', '.join(GENERATION_COLUMNS)}) "  # noqa: S608
                    f"VALUES ({', '.join('?' for _ in GENERATION_COLUMNS)})", [g[c] for c in GENERATION_COLUMNS])
    _merge_related(cur, parsed, added)
    # Conversations the imported turns belong to and this library lacks, when the export did not carry them
    # (made before conversations were exported): untitled, so they show their first prompt.
    cur.execute("INSERT INTO conversations (id, title, created_at, updated_at) SELECT conversation_id, NULL, "
                "min(created_at), max(created_at) FROM generations WHERE list_contains(?::VARCHAR[], id) "
                "AND conversation_id IS NOT NULL AND conversation_id NOT IN (SELECT id FROM conversations) "
                "GROUP BY conversation_id", [list(added_ids)])
    for a in parsed.assets:
        if a["id"] in present_assets or (a["generation_id"] is not None and a["generation_id"] not in added_ids):
            continue
        present_assets.add(a["id"])
        info = infos.get(a["sha256"])
        values = {**a, "bytes": info.bytes if info else a["bytes"], "width": info.width if info else None,
                  "height": info.height if info else None, "duration_s": info.duration_s if info else None,
                  "thumb_sha256": info.thumb_sha256 if info else None}
        cur.execute(f"INSERT INTO assets ({', '.join(ASSET_COLUMNS)}) "  # noqa: S608
                    f"VALUES ({', '.join('?' for _ in ASSET_COLUMNS)})", [values[c] for c in ASSET_COLUMNS])
    for t in parsed.attempts:
        if t["generation_id"] in added_ids:
            cur.execute(f"INSERT INTO attempts ({', '.join(ATTEMPT_COLUMNS)}) VALUES "  # noqa: S608
                        f"({', '.join('?' for _ in ATTEMPT_COLUMNS)}) ON CONFLICT DO NOTHING",
                        [t[c] for c in ATTEMPT_COLUMNS])
    search_index.index(cur, [g["id"] for g in added])
    return {"added": len(added), "skipped": len(parsed.generations) - len(added)}
