"""The library's DuckDB file on disk, without opening it as a database: its header (storage and library
versions, truncation), the errors for a file that cannot be opened or written, and the files set aside or
copied before an upgrade (docs/data.md, "Recovery")."""

from __future__ import annotations

import contextlib
import errno
import logging
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from backend.core.files import is_storage_failure

log = logging.getLogger("backend.db.store")  # the store's own log: what happens to the file is its story


_MAGIC_OFFSET = 8


_HEADER_BYTES = 116


class StoreOpenError(Exception):
    """The database file cannot be opened. ``reason`` is newer_version | corrupt | locked | io | disk_full."""

    def __init__(self, message: str, *, reason: str, path: Path):
        super().__init__(message)
        self.reason = reason
        self.path = path

    @property
    def is_storage_failure(self) -> bool:
        return self.reason in ("io", "disk_full")


@dataclass(frozen=True)
class FileHeader:
    storage_version: int
    library_version: str | None


def read_header(path: Path) -> FileHeader | None:
    """Read the DuckDB main header without opening the database. None when the file does not look like DuckDB."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(_HEADER_BYTES)
    except OSError:
        return None
    if len(data) < 20 or data[_MAGIC_OFFSET : _MAGIC_OFFSET + 4] != b"DUCK":
        return None
    (storage_version,) = struct.unpack("<Q", data[12:20])
    library = data[52:84].split(b"\0", 1)[0].decode("ascii", "replace") or None
    return FileHeader(storage_version, library)


def is_truncated(path: Path) -> bool:
    """Whether the file is shorter than its active database header says (a cut file may still open, with the
    cut-off blocks failing only when read). DuckDB 2.x: two database headers at 4 KiB and 8 KiB, each
    ``checksum, iteration, meta_block, free_list, block_count, block_alloc_size``; blocks start at 12 KiB."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(3 * 4096)
        size = path.stat().st_size
    except OSError:
        return False
    if len(data) < 3 * 4096:
        return True
    headers = [struct.unpack_from("<QQqqQQ", data, offset) for offset in (4096, 8192)]
    _, _, _, _, blocks, block_size = max(headers, key=lambda h: h[1])  # the newer iteration is the active one
    if not (4096 <= block_size <= 1 << 24 and block_size & (block_size - 1) == 0 and blocks < 1 << 40):
        return False  # not a layout this check knows: let DuckDB decide
    return size < 3 * 4096 + blocks * block_size


_own_storage_version: int | None = None


def library_storage_version() -> int:
    """The storage version this DuckDB library writes (found once by creating a scratch database)."""
    global _own_storage_version
    if _own_storage_version is None:
        with tempfile.TemporaryDirectory() as tmp:
            probe = Path(tmp) / "probe.duckdb"
            duckdb.connect(str(probe)).close()
            header = read_header(probe)
            _own_storage_version = header.storage_version if header else 0
    return _own_storage_version


def _version_tuple(text: str | None) -> tuple[int, ...]:
    if not text:
        return ()
    parts = []
    for piece in text.lstrip("v").split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def wal_path(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


def check_version(path: Path, backups_dir: Path) -> None:
    header = read_header(path)
    if header is None or not header.library_version:
        return
    ours = duckdb.__version__
    theirs = _version_tuple(header.library_version)
    if theirs > _version_tuple(ours) and header.storage_version > library_storage_version():
        raise StoreOpenError(
            f"The library file {path} was written by a newer version of Atelier (DuckDB "
            f"{header.library_version}). Update Atelier to open it; the file was not changed.",
            reason="newer_version",
            path=path,
        )
    if theirs < _version_tuple(ours):
        try:
            backup_before_opening(path, backups_dir, f"duckdb-{header.library_version}")
        except OSError as exc:
            if not is_storage_failure(exc):
                raise
            # No backup, no upgrade: the file stays as it is until there is room for the copy.
            raise cannot_write(backups_dir / path.name, exc, need=file_bytes(path) + file_bytes(wal_path(path)),
                                why="to back up the library before this version of Atelier opens it") from None


_MB = 1_000_000


# Room asked for on top of the journal: the checkpoint's metadata, the log file, runtime.json.
_HEADROOM = 8 * 2**20


def file_bytes(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def cannot_write(path: Path, exc: BaseException, *, need: int | None = None,
                  why: str | None = None) -> StoreOpenError:
    """The error for a database the disk will not let us write: full (with how much room is needed), or
    read-only / not permitted. ``need`` defaults to the journal that opening has to fold into the file."""
    text = str(exc).lower()
    folder = path.parent
    if isinstance(exc, OSError):
        full = exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
    else:
        refused = "read-only" in text or "permission" in text
        full = not refused and ("no space" in text or "quota" in text or isinstance(exc, duckdb.FatalException))
    if full:
        try:
            free = shutil.disk_usage(folder).free
        except OSError:
            free = 0
        if need is None:
            need = file_bytes(wal_path(path))
        more = max(need + _HEADROOM - free, _HEADROOM)
        return StoreOpenError(
            f"The disk holding the Atelier library ({folder}) is full: Atelier needs about "
            f"{-(-more // _MB)} MB more free space there {why or f'to open {path.name}'} ({free // _MB} MB free "
            "now). Free some space and start Atelier again; nothing saved was lost.",
            reason="disk_full",
            path=path,
        )
    return StoreOpenError(
        f"Atelier cannot write its library {path}: the folder {folder} is read-only or not writable by this "
        f"user ({exc}). Make it writable, or choose another data folder with ATELIER_DATA_DIR or --data-dir.",
        reason="io",
        path=path,
    )


def move_wal_aside(path: Path) -> Path:
    wal = wal_path(path)
    target = wal.with_name(f"{path.name}.journal-{stamp()}.wal")
    wal.rename(target)
    log.error("the journal %s could not be read back; kept as %s", wal, target)
    return target


def stamp() -> str:
    """A file-name timestamp with microseconds, so two recoveries in one second never collide."""
    now = time.time()
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + f"-{int(now % 1 * 1e6):06d}"


def move_aside(path: Path, why: str) -> Path:
    target = path.with_name(f"{path.name}.{why}-{stamp()}")
    path.rename(target)
    wal = path.with_name(path.name + ".wal")
    if wal.exists():
        wal.rename(target.with_name(target.name + ".wal"))
    log.error("database file %s could not be read; kept as %s and a new one was started", path, target)
    return target


def backup_before_opening(path: Path, backups_dir: Path, label: str) -> Path:
    backups_dir.mkdir(parents=True, exist_ok=True)
    target = backups_dir / f"{path.stem}-{stamp()}-{label}{path.suffix}"
    wal = path.with_name(path.name + ".wal")
    wal_target = target.with_name(target.name + ".wal")
    try:
        shutil.copy2(path, target)
        if wal.exists():
            shutil.copy2(wal, wal_target)
    except OSError:
        for partial in (target, wal_target):  # never leave a half copy that looks like a backup
            with contextlib.suppress(OSError):
                partial.unlink()
        raise
    log.info("backed up %s to %s before opening it with DuckDB %s", path, target, duckdb.__version__)
    return target
