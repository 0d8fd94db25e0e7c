"""Content-addressed media files under ``<data_dir>/media/``.

Every file is named by the SHA-256 of its bytes and sharded by the first two hex digits
(``media/ab/ab12…``), so storing the same bytes twice writes them once and a name can never point at
anything but hex inside this folder. Files are written to ``media/.tmp/`` first, fsynced, then moved into
place with ``os.replace`` (same file system, atomic): a crash or a full disk never leaves a half-written
file under a final name.

The MIME type comes from the bytes (magic numbers), not from what a caller or a model claims: a "PNG"
that is really a JPEG is stored as JPEG, and something that claims to be an image but is not one is
rejected. Images get their dimensions and a JPEG/WebP thumbnail (EXIF orientation applied) stored the same
content-addressed way; MP4/MOV get duration and size from the ``mvhd``/``tkhd`` boxes; WAV gets its duration.

Everything here is synchronous; the backend calls it through ``asyncio.to_thread``. The DuckDB ``assets``
row (mime, bytes, sha256, width, height, duration_s, thumb_sha256) is written by the caller.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import hashlib
import io
import logging
import os
import re
import struct
import tempfile
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import Image, ImageOps, UnidentifiedImageError

from backend.core.files import fsync_dir, write_all

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 200 * 2**20
# Larger than any generated image (16 MP) or camera photo (~50 MP); a decompression bomb claims far more.
MAX_IMAGE_PIXELS = 100_000_000
TEMP_DIR_NAME = ".tmp"
TEMP_SUFFIX = ".part"
# Leftover temp files older than this are from a crash, not a write in progress.
STALE_TEMP_SECONDS = 3600
_SNIFF_BYTES = 4096

_SHA256 = re.compile(r"[0-9a-f]{64}")
_MIME = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
_WHITESPACE = re.compile(r"[ \t\r\n\f\v]")

# Spellings seen in the wild → the canonical type.
_MIME_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-png": "image/png",
    "audio/mp3": "audio/mpeg",
    "audio/x-mp3": "audio/mpeg",
    "audio/mpeg3": "audio/mpeg",
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/vnd.wave": "audio/wav",
    "audio/x-m4a": "audio/mp4",
    "video/mov": "video/quicktime",
    "application/x-pdf": "application/pdf",
}
# Containers whose magic bytes cannot tell audio from video: a claimed type inside the same family wins.
_FAMILIES = [
    {"video/mp4", "video/quicktime", "audio/mp4"},
    {"audio/ogg", "video/ogg", "application/ogg"},
    {"video/webm", "audio/webm", "video/x-matroska"},
]
# Types kept as claimed when no magic number identifies them; anything else becomes octet-stream, so
# nothing a model returns can later be served back as HTML or SVG.
_PLAIN_TYPES = {"text/plain", "text/markdown", "text/csv", "application/json"}
# Claimed types that promise a recognisable format: if the bytes do not match, the data is rejected.
_MEDIA_PREFIXES = ("image/", "video/", "audio/")
_SUPPORTED = "PNG, JPEG, GIF, WebP, MP4, MOV, WebM, MP3, WAV, Ogg and PDF"


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


class MediaError(Exception):
    """A user-facing media failure.

    ``code`` is ``too_large``, ``bad_data_url``, ``unsupported_type``, ``disk_full`` or ``io_error``; the
    message says what to do about it.
    """

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    @property
    def is_storage_failure(self) -> bool:
        """The disk refused a write (see :func:`backend.core.files.is_storage_failure`)."""
        return self.code in ("disk_full", "io_error")

    def __repr__(self) -> str:
        return f"MediaError({self.message!r}, code={self.code!r})"


# ---------------------------------------------------------------------------------------------- MIME


def sniff_mime(data: bytes) -> str | None:
    """Identify a file from its first bytes; None when it is none of the supported formats."""
    head = bytes(data[:_SNIFF_BYTES])
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head[4:8] == b"ftyp" and len(head) >= 12:
        brand = head[8:12]
        if brand == b"qt  ":
            return "video/quicktime"
        if brand in (b"M4A ", b"M4B ", b"M4P "):
            return "audio/mp4"
        if brand in (b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis"):
            return None  # still images in an ISO box; not supported
        return "video/mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        # EBML: WebM declares its DocType near the start; anything else is generic Matroska.
        return "video/webm" if b"webm" in head[:64] else "video/x-matroska"
    if head.startswith(b"OggS"):
        if b"\x80theora" in head or b"\x01video" in head:
            return "video/ogg"
        return "audio/ogg"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"ID3"):
        return "audio/mpeg"
    if len(head) >= 4 and _is_mpeg_audio_frame(head[:4]):
        return "audio/mpeg"
    return None


def _is_mpeg_audio_frame(header: bytes) -> bool:
    """An MPEG audio frame header (an MP3 without an ID3 tag): 11 sync bits and valid fields."""
    b0, b1, b2, _ = header
    if b0 != 0xFF or (b1 & 0xE0) != 0xE0:
        return False
    version = (b1 >> 3) & 0x03
    layer = (b1 >> 1) & 0x03
    bitrate = (b2 >> 4) & 0x0F
    sample_rate = (b2 >> 2) & 0x03
    return version != 0b01 and layer != 0b00 and bitrate not in (0x0, 0xF) and sample_rate != 0b11


def normalize_mime(mime: str | None) -> str | None:
    """Lower-case, drop parameters (``; charset=…``) and map aliases; None for an empty or malformed type."""
    if not mime:
        return None
    base = mime.split(";", 1)[0].strip().lower()
    base = _MIME_ALIASES.get(base, base)
    return base if _MIME.fullmatch(base) else None


def kind_for_mime(mime: str) -> str:
    """``image``, ``video``, ``audio`` or ``file``."""
    top = mime.split("/", 1)[0]
    return top if top in ("image", "video", "audio") else "file"


def _resolve_mime(head: bytes, claimed: str | None) -> str:
    """The type to record: the sniffed one, or the claimed one when the bytes cannot contradict it."""
    sniffed = sniff_mime(head)
    claim = normalize_mime(claimed)
    if sniffed:
        if claim and claim != sniffed and any(claim in fam and sniffed in fam for fam in _FAMILIES):
            return claim
        if claim and claim != sniffed:
            log.info("Content claimed to be %s is %s; recording %s", claim, sniffed, sniffed)
        return sniffed
    if claim and (claim.startswith(_MEDIA_PREFIXES) or claim == "application/pdf"):
        raise MediaError(
            f"The file was sent as {claim}, but its content is not a supported {kind_for_mime(claim)}"
            f" format (supported: {_SUPPORTED}). It may be damaged; try exporting it again.",
            code="unsupported_type",
        )
    if claim in _PLAIN_TYPES:
        return claim
    return "application/octet-stream"


# ---------------------------------------------------------------------------------------------- data URLs


def decode_data_url(url: str, *, max_bytes: int) -> tuple[str, bytes]:
    """``"data:image/png;base64,…"`` → ``("image/png", bytes)``.

    The encoded length is checked before anything is decoded, so an oversized payload costs no memory
    beyond the string itself. Raises ``MediaError`` (``bad_data_url`` or ``too_large``).
    """
    if not isinstance(url, str) or url[:5].lower() != "data:":
        raise MediaError("This is not a data URL (it should start with 'data:').", code="bad_data_url")
    comma = url.find(",", 5, 5 + 512)
    if comma < 0:
        raise MediaError("The data URL has no ',' separating its type from its data.", code="bad_data_url")
    header = url[5:comma]
    params = [p.strip() for p in header.split(";")]
    is_base64 = len(params) > 1 and params[-1].lower() == "base64"
    if is_base64:
        params = params[:-1]
    mime = normalize_mime(params[0]) if params[0] else "text/plain"
    if mime is None:
        raise MediaError("The data URL names an invalid media type.", code="bad_data_url")
    payload_len = len(url) - comma - 1
    too_large = MediaError(
        f"The data is larger than the {_format_size(max_bytes)} limit. Use a smaller file.", code="too_large"
    )

    if not is_base64:
        # Percent-encoding: each decoded byte takes 1–3 characters.
        if payload_len > 3 * max_bytes:
            raise too_large
        data = urllib.parse.unquote_to_bytes(url[comma + 1 :])
        if len(data) > max_bytes:
            raise too_large
        return mime, data

    # Even with generous line breaks a payload twice the limit cannot decode under it: refuse it unseen.
    if payload_len > 2 * max_bytes + 1024:
        raise too_large
    payload = url[comma + 1 :]
    if _WHITESPACE.search(payload):
        payload = _WHITESPACE.sub("", payload)
    if "-" in payload or "_" in payload:  # the URL-safe alphabet
        payload = payload.translate(str.maketrans("-_", "+/"))
    payload = payload.rstrip("=")
    if len(payload) % 4 == 1:
        raise MediaError("The data URL's base64 data is truncated.", code="bad_data_url")
    if len(payload) * 3 // 4 > max_bytes:
        raise too_large
    try:
        data = base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise MediaError(
            "The data URL's base64 data is not valid (unexpected characters).", code="bad_data_url"
        ) from None
    return mime, data


def encode_data_url(mime: str, data: bytes) -> str:
    """``("image/png", bytes)`` → ``"data:image/png;base64,…"``."""
    clean = normalize_mime(mime) or "application/octet-stream"
    return f"data:{clean};base64,{base64.b64encode(data).decode('ascii')}"


# ---------------------------------------------------------------------------------------------- the store


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

    @property
    def bytes_written(self) -> int:
        return self._size

    def write(self, data: bytes) -> None:
        """Append bytes; raises ``MediaError`` (``too_large``, ``disk_full``, ``io_error``) and aborts."""
        if self._done:
            raise RuntimeError("MediaWriter is already committed or aborted")
        if not data:
            return
        if self._size + len(data) > self._store.max_bytes:
            self.abort()
            raise MediaError(
                f"The file is larger than the {_format_size(self._store.max_bytes)} limit.", code="too_large"
            )
        try:
            write_all(self._fd, data)
        except OSError as exc:
            self.abort()
            raise _os_error(exc, "save the file") from exc
        self._size += len(data)
        self._hash.update(data)
        if len(self._head) < _SNIFF_BYTES:
            self._head += data[: _SNIFF_BYTES - len(self._head)]

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
                f"The file is larger than the {_format_size(self.max_bytes)} limit.", code="too_large"
            )
        with self.open_writer(mime) as writer:
            writer.write(data)
            return writer.commit()

    def put_stream(self, chunks: Iterable[bytes], mime: str | None = None) -> MediaInfo:
        """Store an iterable of chunks; stops reading as soon as the size cap is exceeded."""
        with self.open_writer(mime) as writer:
            for chunk in chunks:
                writer.write(chunk)
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
        """Whether the file for this digest is stored."""
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
        mime = _resolve_mime(head, claimed)
        kind = kind_for_mime(mime)
        final = self.path_for(sha)
        already = _same_size(final, size)
        source = final if already else tmp

        width = height = None
        duration: float | None = None
        thumb_sha: str | None = None
        if kind == "image":
            width, height, thumb = _image_details(source, self.thumb_size)
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


# ---------------------------------------------------------------------------------------------- analysis


def _image_details(path: Path, thumb_size: int) -> tuple[int, int, bytes]:
    """(width, height as displayed, thumbnail bytes) — or ``MediaError`` for a bomb or a damaged image."""
    try:
        with Image.open(path) as im:
            width, height = im.size
            if width * height > MAX_IMAGE_PIXELS:
                raise _bomb(width, height)
            orientation = im.getexif().get(0x0112)
            if orientation in (5, 6, 7, 8):  # rotated a quarter turn: displayed sideways
                width, height = height, width
            # JPEG can decode at 1/2, 1/4, 1/8 scale: far less work for a thumbnail of a big photo.
            im.draft("RGB", (thumb_size, thumb_size))
            im.load()
            upright = ImageOps.exif_transpose(im)
            # Resample in a true-colour mode: palette images would otherwise be shrunk with NEAREST.
            has_alpha = upright.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
                upright.mode == "P" and "transparency" in upright.info
            )
            upright = upright.convert("RGBA" if has_alpha else "RGB")
            upright.thumbnail((thumb_size, thumb_size), Image.Resampling.LANCZOS)
            return width, height, _encode_thumbnail(upright)
    except MediaError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _bomb(None, None) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise MediaError(
            f"The image could not be read ({type(exc).__name__}: {exc}). It may be truncated or damaged;"
            " try downloading or exporting it again.",
            code="unsupported_type",
        ) from exc


def _bomb(width: int | None, height: int | None) -> MediaError:
    size = f" ({width}×{height})" if width and height else ""
    return MediaError(
        f"The image is too large to process{size}: the limit is {MAX_IMAGE_PIXELS // 1_000_000} megapixels."
        " Resize it and try again.",
        code="too_large",
    )


def _encode_thumbnail(img: Image.Image) -> bytes:
    """JPEG for opaque images, WebP when there is transparency to keep (``img`` is RGB or RGBA)."""
    out = io.BytesIO()
    if img.mode == "RGBA":
        img.save(out, format="WEBP", quality=80, method=4)
    else:
        img.save(out, format="JPEG", quality=85, optimize=True)
    return out.getvalue()


_MAX_BOXES = 10_000


def _boxes(fh: BinaryIO, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """ISO-BMFF boxes between two offsets: (type, payload start, payload end). Stops at anything malformed."""
    pos = start
    for _ in range(_MAX_BOXES):
        if pos + 8 > end:
            return
        fh.seek(pos)
        header = fh.read(8)
        if len(header) < 8:
            return
        size, box_type = struct.unpack(">I4s", header)
        header_len = 8
        if size == 1:
            large = fh.read(8)
            if len(large) < 8:
                return
            size = struct.unpack(">Q", large)[0]
            header_len = 16
        elif size == 0:
            size = end - pos  # extends to the end of its parent
        if size < header_len or pos + size > end:
            return
        yield box_type, pos + header_len, pos + size
        pos += size


def mp4_details(fh: BinaryIO) -> tuple[float | None, int | None, int | None]:
    """(duration in seconds, width, height) of an MP4/MOV from its ``moov`` box; None where unknown.

    A small box walker: reads box headers and the few bytes of ``mvhd``/``tkhd``/``mehd``, seeking over
    media data, so a large file costs a handful of reads wherever ``moov`` sits.
    """
    fh.seek(0, os.SEEK_END)
    file_end = fh.tell()
    duration = width = height = None
    timescale = 0
    for box_type, start, end in _boxes(fh, 0, file_end):
        if box_type != b"moov":
            continue
        for child, c_start, c_end in _boxes(fh, start, end):
            if child == b"mvhd":
                timescale, raw = _read_mvhd(fh, c_start, c_end)
                if timescale and raw:
                    duration = raw / timescale
            elif child == b"mvex" and duration is None and timescale:
                # Fragmented MP4: mvhd says 0, the fragment duration lives in mvex/mehd.
                for leaf, l_start, l_end in _boxes(fh, c_start, c_end):
                    if leaf == b"mehd":
                        raw = _read_versioned(fh, l_start, l_end, 0, 1)
                        if raw:
                            duration = raw / timescale
            elif child == b"trak" and width is None:
                for leaf, l_start, l_end in _boxes(fh, c_start, c_end):
                    if leaf == b"tkhd":
                        dims = _read_tkhd_size(fh, l_start, l_end)
                        if dims:
                            width, height = dims
        break
    return duration, width, height


def _read_versioned(fh: BinaryIO, start: int, end: int, skip32: int, count: int) -> int | None:
    """Read a full box's field after ``skip32`` 32/64-bit fields (size chosen by the box version)."""
    fh.seek(start)
    data = fh.read(min(end - start, 64))
    if len(data) < 4:
        return None
    width = 8 if data[0] == 1 else 4
    offset = 4 + skip32 * width
    if len(data) < offset + width * count:
        return None
    return int.from_bytes(data[offset : offset + width], "big")


def _read_mvhd(fh: BinaryIO, start: int, end: int) -> tuple[int, int | None]:
    """(timescale, duration in timescale units or None if unknown) from an ``mvhd`` payload."""
    fh.seek(start)
    data = fh.read(min(end - start, 32))
    if len(data) < 4:
        return 0, None
    if data[0] == 1:
        if len(data) < 32:
            return 0, None
        timescale, raw = struct.unpack(">IQ", data[20:32])
        unknown = 0xFFFF_FFFF_FFFF_FFFF
    else:
        if len(data) < 20:
            return 0, None
        timescale, raw = struct.unpack(">II", data[12:20])
        unknown = 0xFFFF_FFFF
    return timescale, (None if raw in (0, unknown) else raw)


def _read_tkhd_size(fh: BinaryIO, start: int, end: int) -> tuple[int, int] | None:
    """Displayed (width, height) of a visual track from ``tkhd``; None for audio tracks (0×0)."""
    fh.seek(start)
    data = fh.read(min(end - start, 104))
    if len(data) < 4:
        return None
    # version 0: 4+4+4+4+4 = 20 bytes of times/ids; version 1: 8+8+4+4+8 = 32.
    times = 32 if data[0] == 1 else 20
    matrix_at = 4 + times + 8 + 8  # reserved(8), layer/alt group/volume/reserved(8)
    size_at = matrix_at + 36
    if len(data) < size_at + 8:
        return None
    a, b = struct.unpack(">ii", data[matrix_at : matrix_at + 8])
    raw_w, raw_h = struct.unpack(">II", data[size_at : size_at + 8])
    width, height = raw_w >> 16, raw_h >> 16  # 16.16 fixed point
    if not width or not height:
        return None
    if a == 0 and b != 0:  # rotated 90° or 270°
        width, height = height, width
    return width, height


def wav_duration(fh: BinaryIO) -> float | None:
    """Duration of a RIFF/WAVE file from its ``fmt `` byte rate and ``data`` size."""
    fh.seek(0, os.SEEK_END)
    file_end = fh.tell()
    fh.seek(0)
    if fh.read(12)[8:12] != b"WAVE":
        return None
    pos, byte_rate, data_size = 12, 0, None
    for _ in range(_MAX_BOXES):
        fh.seek(pos)
        header = fh.read(8)
        if len(header) < 8:
            break
        chunk, size = struct.unpack("<4sI", header)
        if chunk == b"fmt ":
            fmt = fh.read(min(size, 16))
            if len(fmt) >= 12:
                byte_rate = struct.unpack("<I", fmt[8:12])[0]
        elif chunk == b"data":
            # Streams written before their length was known say 0 or 0xFFFFFFFF: use the file's size.
            data_size = size if 0 < size < 0xFFFF_FFFF else file_end - pos - 8
            data_size = min(data_size, file_end - pos - 8)
            break
        pos += 8 + size + (size & 1)  # chunks are word aligned
    if not byte_rate or data_size is None:
        return None
    return data_size / byte_rate


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
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return MediaError(
            f"The disk is full, so Atelier could not {doing}. Free some disk space and try again;"
            " files saved earlier are unaffected.",
            code="disk_full",
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return MediaError(
            f"Permission denied: Atelier could not {doing}. Make sure your user account can write to the"
            " Atelier data folder, then try again.",
            code="io_error",
        )
    return MediaError(
        f"Atelier could not {doing} ({exc.strerror or type(exc).__name__}). Check the disk and try again.",
        code="io_error",
    )


def _format_size(n: int) -> str:
    if n >= 2**20 and n % 2**20 == 0:
        return f"{n // 2**20} MB"
    if n >= 2**20:
        return f"{n / 2**20:.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n} bytes"
