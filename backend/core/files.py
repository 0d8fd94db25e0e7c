"""Small building blocks for writes that survive a crash (full writes, durable renames), and the one rule
that tells a storage failure (disk full, read-only, no permission) from a bug."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written (it may write fewer)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX only; Windows cannot open directories)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


# errno values that mean "the disk refused the write": full (or over quota), or not allowed (read-only, no
# permission). Error messages tell the two apart, since the fix differs.
FULL_ERRNOS = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})
DENIED_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
STORAGE_ERRNOS = FULL_ERRNOS | DENIED_ERRNOS
# How DuckDB words a failed write to disk (its exceptions carry no errno).
_DUCKDB_DISK_SIGNS = ("no space left on device", "could not write file", "read-only file system",
                      "permission denied", "disk quota exceeded", "could not write", "failed to write")


def is_storage_failure(exc: BaseException) -> bool:
    """True when ``exc`` is a write refused by the disk, from the file system, DuckDB or the media store.

    This is the one place that decides it: the API answers such failures with 507 ``storage_error`` and the
    outbox never leaves an item ``running`` because of one.
    """
    if isinstance(exc, OSError):
        return exc.errno in STORAGE_ERRNOS
    if getattr(exc, "is_storage_failure", False):
        return True
    import duckdb  # imported late: the desktop shell uses this module before DuckDB is needed

    if isinstance(exc, duckdb.IOException):
        return True
    if isinstance(exc, duckdb.Error):
        text = str(exc).lower()
        if isinstance(exc, duckdb.TransactionException) and any(
            word in text for word in ("space", "write", "permission", "read-only")
        ):
            return True  # a commit whose journal write failed
        return any(sign in text for sign in _DUCKDB_DISK_SIGNS)
    return False
