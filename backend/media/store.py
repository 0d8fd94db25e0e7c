"""Content-addressed media files under ``<data_dir>/media/``.

Every file is named by the SHA-256 of its bytes and sharded by the first two hex digits
(``media/ab/ab12…``), so storing the same bytes twice writes them once and a name can never point at
anything but hex inside this folder. Files are written to ``media/.tmp/`` first, fsynced, then moved into
place with ``os.replace`` (same file system, atomic): a crash or a full disk never leaves a half-written
file under a final name.

The type recorded is the one the bytes show (:mod:`backend.media.sniff`). Images get their dimensions and a
thumbnail stored the same content-addressed way (:mod:`backend.media.images`); MP4/MOV get duration and
frame size, WAV its duration (:mod:`backend.media.containers`).

Everything here is synchronous; the backend calls it through ``asyncio.to_thread``. The DuckDB ``assets``
row (mime, bytes, sha256, width, height, duration_s, thumb_sha256) is written by the caller.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from backend.core.files import DENIED_ERRNOS, FULL_ERRNOS, fsync_dir, write_all
from backend.core.sizes import format_size
from backend.media.containers import mp4_details, wav_duration
from backend.media.errors import MediaError
from backend.media.images import MAX_IMAGE_PIXELS, image_details
from backend.media.sniff import SNIFF_BYTES, kind_for_mime, resolve_mime

# Still importable from here for callers that predate backend.media.sniff (the outbox worker); new code
# imports them from backend.media.

DEFAULT_MAX_BYTES = 200 * 2**20
TEMP_DIR_NAME = ".tmp"
TEMP_SUFFIX = ".part"
# Leftover temp files older than this are from a crash, not a write in progress.
STALE_TEMP_SECONDS = 3600

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class MediaInfo:
    """What the ``assets`` table records about a stored file."""

    sha256: str
    mime: str
    bytes: int
    width: int | None
    height: int | None
    duration_s: float | None
    thumb_sha256: str | None
    kind: str  # image | video | audio | file


class MediaWriter:
    """An in-progress write: ``write()`` chunks, then ``commit()`` (→ ``MediaInfo``) or ``abort()``.

    Usable as a context manager; leaving the block without committing aborts. The size cap is enforced
    on every ``write`` so an oversized download stops early.
    """

    def __init__(self, store: MediaStore, mime: str | None) -> None:
        self._store = store
        self._mime = mime
        self._hash = hashlib.sha256()
        self._size = 0
        self._head = bytearray()
        self._done = False
        self._fd, name = store._new_temp()
        self._tmp = Path(name)

    def write(self, data: bytes) -> None:
        """Append bytes; raises ``MediaError`` (``too_large``, ``disk_full``, ``io_error``) and aborts."""
        if self._done:
            raise RuntimeError("MediaWriter is already committed or aborted")
        if not data:
            return
        if self._size + len(data) > self._store.max_bytes:
            self.abort()
            raise MediaError(
                f"The file is larger than the {format_size(self._store.max_bytes)} limit.", code="too_large"
            )
        try:
            write_all(self._fd, data)
        except OSError as exc:
            self.abort()
            raise _os_error(exc, "save the file") from exc
        self._size += len(data)
        self._hash.update(data)
        if len(self._head) < SNIFF_BYTES:
            self._head += data[: SNIFF_BYTES - len(self._head)]

    def commit(self) -> MediaInfo:
        """Flush to disk, analyse, and move the file under its content-addressed name."""
        if self._done:
            raise RuntimeError("MediaWriter is already committed or aborted")
        try:
            os.fsync(self._fd)
        except OSError as exc:
            self.abort()
            raise _os_error(exc, "save the file") from exc
        self._close_fd()
        self._done = True
        try:
            return self._store._finish(
                self._tmp, self._hash.hexdigest(), self._size, bytes(self._head), self._mime
            )
        finally:
            _unlink_quietly(self._tmp)  # already moved on success; removes it on any failure

    def abort(self) -> None:
        """Discard the partial file. Idempotent."""
        self._done = True
        self._close_fd()
        _unlink_quietly(self._tmp)

    def _close_fd(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> MediaWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self._done:
            self.abort()

    def __del__(self) -> None:
        # A writer dropped without commit/abort (a cancelled download) must not leak its descriptor.
        if getattr(self, "_fd", -1) >= 0:
            self.abort()


class MediaStore:
    """Content-addressed files under ``media_dir`` (see the module docstring)."""

    def __init__(self, media_dir: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, thumb_size: int = 384) -> None:
        if max_bytes <= 0 or thumb_size <= 0:
            raise ValueError("max_bytes and thumb_size must be positive")
        self.media_dir = Path(media_dir)
        self.max_bytes = max_bytes
        self.thumb_size = thumb_size
        self._tmp_dir = self.media_dir / TEMP_DIR_NAME
        # Pillow's own guard (warning above the limit, error above twice it) backs up the explicit check.
        Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
        with contextlib.suppress(OSError):
            self.cleanup_temp()

    def __repr__(self) -> str:
        return f"MediaStore({str(self.media_dir)!r})"

    # ------------------------------------------------------------------ public API

    def put_bytes(self, data: bytes, mime: str | None = None) -> MediaInfo:
        """Store bytes (deduplicated); ``mime`` is a claim checked against the magic bytes."""
        if len(data) > self.max_bytes:
            raise MediaError(
                f"The file is larger than the {format_size(self.max_bytes)} limit.", code="too_large"
            )
        with self.open_writer(mime) as writer:
            writer.write(data)
            return writer.commit()

    def open_writer(self, mime: str | None = None) -> MediaWriter:
        """Start an incremental write (for downloads); see ``MediaWriter``."""
        return MediaWriter(self, mime)

    def path_for(self, sha256: str) -> Path:
        """The file for a digest. Only 64 lower-case hex digits are accepted (ValueError otherwise), so no
        request text can reach the file system as a path."""
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
            raise ValueError("not a sha256 digest (64 lower-case hex digits)")
        return self.media_dir / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        """Whether the file for this digest is stored (an import skips media it already has)."""
        return self.path_for(sha256).is_file()

    def delete(self, sha256: str) -> None:
        """Remove a file (the library decides when no asset refers to it any more); gone already is fine."""
        path = self.path_for(sha256)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise _os_error(exc, "delete the file") from exc

    def cleanup_temp(self, older_than_s: float = STALE_TEMP_SECONDS) -> int:
        """Remove temp files left by a crash (older than ``older_than_s``); returns how many."""
        removed = 0
        cutoff = time.time() - older_than_s
        try:
            entries = list(os.scandir(self._tmp_dir))
        except FileNotFoundError:
            return 0
        for entry in entries:
            if entry.name.endswith(TEMP_SUFFIX) and entry.is_file() and entry.stat().st_mtime <= cutoff:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed += 1
        return removed

    # ------------------------------------------------------------------ internals

    def _new_temp(self) -> tuple[int, str]:
        try:
            self._tmp_dir.mkdir(parents=True, exist_ok=True)
            return tempfile.mkstemp(suffix=TEMP_SUFFIX, dir=self._tmp_dir)
        except OSError as exc:
            raise _os_error(exc, "create a file in " + str(self._tmp_dir)) from exc

    def _finish(self, tmp: Path, sha: str, size: int, head: bytes, claimed: str | None) -> MediaInfo:
        """Analyse the complete temp file and move it into place (or drop it if already stored)."""
        mime = resolve_mime(head, claimed)
        kind = kind_for_mime(mime)
        final = self.path_for(sha)
        already = _same_size(final, size)
        source = final if already else tmp

        width = height = None
        duration: float | None = None
        thumb_sha: str | None = None
        if kind == "image":
            width, height, thumb = image_details(source, self.thumb_size)
            thumb_sha = self._put_small(thumb)
        elif mime in ("video/mp4", "video/quicktime", "audio/mp4"):
            with open(source, "rb") as fh:
                duration, width, height = mp4_details(fh)
        elif mime == "audio/wav":
            with open(source, "rb") as fh:
                duration = wav_duration(fh)

        if not already:
            self._move_into_place(tmp, final)
        return MediaInfo(
            sha256=sha,
            mime=mime,
            bytes=size,
            width=width,
            height=height,
            duration_s=duration,
            thumb_sha256=thumb_sha,
            kind=kind,
        )

    def _move_into_place(self, tmp: Path, final: Path) -> None:
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
        except OSError as exc:
            raise _os_error(exc, "save the file") from exc
        fsync_dir(final.parent)

    def _put_small(self, data: bytes) -> str:
        """Store a small derived file (a thumbnail) content-addressed; returns its digest."""
        sha = hashlib.sha256(data).hexdigest()
        final = self.path_for(sha)
        if _same_size(final, len(data)):
            return sha
        fd, name = self._new_temp()
        try:
            try:
                write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            self._move_into_place(Path(name), final)
        except OSError as exc:
            raise _os_error(exc, "save the thumbnail") from exc
        finally:
            _unlink_quietly(Path(name))
        return sha


# ---------------------------------------------------------------------------------------------- helpers


def _same_size(path: Path, size: int) -> bool:
    """Whether a stored file exists with the expected size (a mismatch means damage: rewrite it)."""
    try:
        return path.stat().st_size == size
    except OSError:
        return False


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def _os_error(exc: OSError, doing: str) -> MediaError:
    """Map a file-system error to ``disk_full`` / ``io_error`` with a message that says what to do."""
    if exc.errno in FULL_ERRNOS:
        return MediaError(
            f"The disk is full, so Atelier could not {doing}. Free some disk space and try again;"
            " files saved earlier are unaffected.",
            code="disk_full",
        )
    if exc.errno in DENIED_ERRNOS:
        return MediaError(
            f"Permission denied: Atelier could not {doing}. Make sure your user account can write to the"
            " Atelier data folder, then try again.",
            code="io_error",
        )
    return MediaError(
        f"Atelier could not {doing} ({exc.strerror or type(exc).__name__}). Check the disk and try again.",
        code="io_error",
    )
