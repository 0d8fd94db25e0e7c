"""MediaStore: content-addressed, atomic, size-capped files with sniffed types, thumbnails, durations."""

from __future__ import annotations

import base64
import errno
import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import threading
import time
import warnings
import wave
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image, ImageFile

from backend.media import images
from backend.media.containers import mp4_details
from backend.media.errors import MediaError
from backend.media.sniff import decode_data_url, encode_data_url, sniff_mime
from backend.media.store import MediaInfo, MediaStore
from tests.conftest import PYTHON, ROOT
from tests.fakes.media import solid_png


@pytest.fixture
def store(tmp_path: Path) -> MediaStore:
    return MediaStore(tmp_path / "media")


def temp_files(store: MediaStore) -> list[str]:
    tmp = store.media_dir / ".tmp"
    return sorted(p.name for p in tmp.iterdir()) if tmp.exists() else []


def is_stored(store: MediaStore, sha256: str) -> bool:
    return store.path_for(sha256).is_file()


def stored_files(store: MediaStore) -> list[str]:
    return sorted(p.name for p in store.media_dir.rglob("*") if p.is_file() and p.parent.name != ".tmp")


# ------------------------------------------------------------------ building test media


def png(width: int, height: int, mode: str = "RGB", color: object = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height), color).save(out, format="PNG")  # type: ignore[arg-type]
    return out.getvalue()


def jpeg(width: int, height: int, orientation: int | None = None) -> bytes:
    img = Image.new("RGB", (width, height), (10, 120, 200))
    out = io.BytesIO()
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    img.save(out, format="JPEG", exif=exif.tobytes())
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a size but carries no pixels: what a decompression bomb looks like to open()."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def box(kind: bytes, payload: bytes, *, large: bool = False) -> bytes:
    if large:
        return struct.pack(">I4sQ", 1, kind, 16 + len(payload)) + payload
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


IDENTITY = (0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
ROTATE_90 = (0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)


def mvhd(timescale: int, duration: int, version: int = 0) -> bytes:
    if version == 1:
        times = struct.pack(">QQIQ", 0, 0, timescale, duration)
    else:
        times = struct.pack(">IIII", 0, 0, timescale, duration)
    rest = struct.pack(">IH", 0x10000, 0x100) + bytes(10) + struct.pack(">9i", *IDENTITY) + bytes(24)
    return box(b"mvhd", bytes([version, 0, 0, 0]) + times + rest + struct.pack(">I", 2))


def tkhd(width: int, height: int, matrix: tuple[int, ...] = IDENTITY, version: int = 0) -> bytes:
    times = struct.pack(">QQIIQ" if version == 1 else ">IIIII", 0, 0, 1, 0, 0)
    body = times + bytes(8) + struct.pack(">hhhh", 0, 0, 0, 0) + struct.pack(">9i", *matrix)
    body += struct.pack(">II", width << 16, height << 16)
    return box(b"tkhd", bytes([version, 0, 0, 3]) + body)


def mp4(*moov_children: bytes, moov_last: bool = False, brand: bytes = b"isom") -> bytes:
    ftyp = box(b"ftyp", brand + struct.pack(">I", 512) + b"isomiso2mp41")
    moov = box(b"moov", b"".join(moov_children))
    mdat = box(b"mdat", os.urandom(3000))
    return ftyp + (mdat + moov if moov_last else moov + mdat)


# ------------------------------------------------------------------ storing


def test_round_trip_is_byte_exact_and_content_addressed(store: MediaStore) -> None:
    data = png(40, 30)
    info = store.put_bytes(data, "image/png")

    sha = hashlib.sha256(data).hexdigest()
    assert info.sha256 == sha
    assert (info.mime, info.kind, info.bytes, info.width, info.height) == (
        "image/png",
        "image",
        len(data),
        40,
        30,
    )
    assert info.duration_s is None
    path = store.path_for(sha)
    assert path == store.media_dir / sha[:2] / sha
    assert path.read_bytes() == data
    assert is_stored(store, sha)
    assert temp_files(store) == []


def test_arbitrary_bytes_are_stored_as_octet_stream(store: MediaStore) -> None:
    data = bytes(range(256)) * 100
    info = store.put_bytes(data)
    assert (info.mime, info.kind, info.width, info.thumb_sha256) == (
        "application/octet-stream",
        "file",
        None,
        None,
    )
    assert store.path_for(info.sha256).read_bytes() == data


def test_same_bytes_are_written_once(store: MediaStore, monkeypatch: pytest.MonkeyPatch) -> None:
    data = png(50, 50)
    first = store.put_bytes(data)
    inode = store.path_for(first.sha256).stat().st_ino
    replaced: list[object] = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (replaced.append(b), real_replace(a, b)))

    second = store.put_bytes(data, "image/png")
    with store.open_writer() as writer:
        for chunk in (data[:7], data[7:100], data[100:]):
            writer.write(chunk)
        third = writer.commit()

    assert first == second == third
    assert replaced == []  # neither the file nor its thumbnail was written again
    assert store.path_for(first.sha256).stat().st_ino == inode
    assert len(stored_files(store)) == 2  # the image and its thumbnail
    assert temp_files(store) == []


def test_damaged_stored_file_is_rewritten(store: MediaStore) -> None:
    data = b"some document text" * 10
    info = store.put_bytes(data)
    store.path_for(info.sha256).write_bytes(data[:5])  # a file truncated by something outside Atelier
    store.put_bytes(data)
    assert store.path_for(info.sha256).read_bytes() == data


def test_open_writer_for_incremental_downloads(store: MediaStore) -> None:
    data = jpeg(64, 48)
    with store.open_writer("image/jpeg") as writer:
        for i in range(0, len(data), 100):
            writer.write(data[i : i + 100])
        info = writer.commit()
    assert info == store.put_bytes(data)
    with pytest.raises(RuntimeError):
        writer.write(b"more")
    with pytest.raises(RuntimeError):
        writer.commit()


def test_writer_left_without_commit_is_aborted(store: MediaStore) -> None:
    with pytest.raises(KeyError), store.open_writer() as writer:
        writer.write(b"partial download")
        assert len(temp_files(store)) == 1
        raise KeyError("connection dropped")
    assert temp_files(store) == []
    assert stored_files(store) == []
    writer.abort()  # idempotent


# ------------------------------------------------------------------ atomicity and disk errors


def failing_write_after(monkeypatch: pytest.MonkeyPatch, calls: int, err: int) -> None:
    real_write = os.write
    count = {"n": 0}

    def write(fd: int, data: object) -> int:
        count["n"] += 1
        if count["n"] > calls:
            raise OSError(err, os.strerror(err))
        return real_write(fd, data)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "write", write)


def test_disk_full_mid_write_leaves_no_file(store: MediaStore, monkeypatch: pytest.MonkeyPatch) -> None:
    failing_write_after(monkeypatch, 2, errno.ENOSPC)
    chunks = [b"a" * 1000, b"b" * 1000, b"c" * 1000]
    with pytest.raises(MediaError) as info, store.open_writer() as writer:
        for chunk in chunks:
            writer.write(chunk)
    assert info.value.code == "disk_full"
    assert "disk is full" in info.value.message and "Free some disk space" in info.value.message
    assert not is_stored(store, hashlib.sha256(b"".join(chunks)).hexdigest())
    assert temp_files(store) == []
    assert stored_files(store) == []


def test_permission_error_is_io_error(store: MediaStore, monkeypatch: pytest.MonkeyPatch) -> None:
    failing_write_after(monkeypatch, 0, errno.EACCES)
    with pytest.raises(MediaError) as info:
        store.put_bytes(b"x" * 10)
    assert info.value.code == "io_error"
    assert "Permission denied" in info.value.message
    assert temp_files(store) == []


@pytest.mark.parametrize("fail", ["fsync", "replace"])
def test_failure_before_rename_leaves_no_final_file(
    store: MediaStore, monkeypatch: pytest.MonkeyPatch, fail: str
) -> None:
    def boom(*args: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, fail, boom)
    data = b"%PDF-1.7 a document"
    with pytest.raises(MediaError) as info:
        store.put_bytes(data)
    monkeypatch.undo()
    assert info.value.code == "io_error"
    assert not is_stored(store, hashlib.sha256(data).hexdigest())
    assert temp_files(store) == []


def test_interrupted_write_never_appears_under_final_name(store: MediaStore) -> None:
    data = b"0123456789" * 1000
    writer = store.open_writer()
    writer.write(data[:5000])  # the process "dies" here
    assert not is_stored(store, hashlib.sha256(data).hexdigest())
    assert not is_stored(store, hashlib.sha256(data[:5000]).hexdigest())
    assert stored_files(store) == []
    writer.abort()


def test_stale_temp_files_from_a_crash_are_cleaned(tmp_path: Path) -> None:
    tmp = tmp_path / "media" / ".tmp"
    tmp.mkdir(parents=True)
    stale, fresh, other = tmp / "old.part", tmp / "new.part", tmp / "keep.txt"
    for p in (stale, fresh, other):
        p.write_bytes(b"partial")
    hours_ago = time.time() - 2 * 3600
    os.utime(stale, (hours_ago, hours_ago))
    os.utime(other, (hours_ago, hours_ago))

    MediaStore(tmp_path / "media")  # start-up cleanup

    assert not stale.exists()
    assert fresh.exists()  # may belong to a write in progress
    assert other.exists()  # not ours


# ------------------------------------------------------------------ size caps


def test_put_bytes_over_cap_is_rejected_before_writing(tmp_path: Path) -> None:
    store = MediaStore(tmp_path / "media", max_bytes=1000)
    assert store.put_bytes(b"x" * 1000).bytes == 1000  # the cap itself is allowed
    with pytest.raises(MediaError) as info:
        store.put_bytes(b"x" * 1001)
    assert info.value.code == "too_large"
    assert temp_files(store) == []


def test_writer_refuses_the_chunk_that_crosses_the_cap(tmp_path: Path) -> None:
    store = MediaStore(tmp_path / "media", max_bytes=10_000)
    writer = store.open_writer()
    writer.write(b"z" * 4096)
    writer.write(b"z" * 4096)
    with pytest.raises(MediaError) as info:
        writer.write(b"z" * 4096)  # 12 KB: the download stops here
    assert info.value.code == "too_large"
    assert "9.8 KiB" in info.value.message
    assert temp_files(store) == []
    assert stored_files(store) == []


def test_data_url_over_cap_is_rejected_without_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decoding(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("decoded an oversized payload")

    monkeypatch.setattr(base64, "b64decode", no_decoding)
    url = "data:image/png;base64," + "A" * 4_000_000  # 3 MB once decoded
    with pytest.raises(MediaError) as info:
        decode_data_url(url, max_bytes=1_000_000)
    assert info.value.code == "too_large"
    # Just over the limit, with exact arithmetic: 1_000_001 bytes encode to 1_333_336 characters.
    with pytest.raises(MediaError):
        decode_data_url("data:image/png;base64," + "A" * 1_333_336, max_bytes=1_000_000)
    with pytest.raises(MediaError) as info:
        decode_data_url("data:text/plain," + "a" * 3_000_001, max_bytes=1_000_000)
    assert info.value.code == "too_large"


def test_data_url_at_cap_is_accepted() -> None:
    data = os.urandom(999)
    assert decode_data_url(encode_data_url("image/png", data), max_bytes=999) == ("image/png", data)
    with pytest.raises(MediaError):
        decode_data_url(encode_data_url("image/png", data), max_bytes=998)


# ------------------------------------------------------------------ data URLs


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("data:image/png;base64,AAEC", ("image/png", b"\x00\x01\x02")),
        ("DATA:Image/PNG;BASE64,AAEC", ("image/png", b"\x00\x01\x02")),
        ("data:image/jpg;base64,AAEC", ("image/jpeg", b"\x00\x01\x02")),
        ("data:image/png;base64,AAE", ("image/png", b"\x00\x01")),  # missing padding
        ("data:image/png;base64,AA\nEC\r\n", ("image/png", b"\x00\x01\x02")),  # line breaks
        ("data:application/octet-stream;base64,-_-_", ("application/octet-stream", b"\xfb\xff\xbf")),
        ("data:text/plain;charset=utf-8;base64,aGk=", ("text/plain", b"hi")),
        ("data:,Hello%2C%20World", ("text/plain", b"Hello, World")),
        ("data:;base64,aGk=", ("text/plain", b"hi")),
    ],
)
def test_decode_data_url(url: str, expected: tuple[str, bytes]) -> None:
    assert decode_data_url(url, max_bytes=1000) == expected


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/a.png",
        "image/png;base64,AAEC",
        "data:image/png;base64",  # no comma
        "data:image/png;base64,@@@@",
        "data:image/png;base64,AAECA",  # 4n+1 characters cannot be base64
        "data:image/png;base64,AA=EC",
        "data:not a type;base64,AAEC",
        "data:image/png<script>;base64,AAEC",
        "data:" + "x" * 600 + ",AAEC",  # an absurd header
    ],
)
def test_bad_data_urls(url: str) -> None:
    with pytest.raises(MediaError) as info:
        decode_data_url(url, max_bytes=1000)
    assert info.value.code == "bad_data_url"


def test_encode_data_url_round_trip() -> None:
    data = png(3, 3)
    url = encode_data_url("image/png", data)
    assert url.startswith("data:image/png;base64,")
    assert decode_data_url(url, max_bytes=10_000) == ("image/png", data)


# ------------------------------------------------------------------ MIME sniffing and verification


@pytest.mark.parametrize(
    ("head", "mime"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(20), "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
        (b"GIF89a" + bytes(10), "image/gif"),
        (b"GIF87a" + bytes(10), "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "audio/wav"),
        (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00", "video/mp4"),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00", "video/mp4"),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00", "video/quicktime"),
        (b"\x00\x00\x00\x1cftypM4A \x00\x00\x00\x00", "audio/mp4"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", "video/webm"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x88matroska", "video/x-matroska"),
        (b"OggS\x00\x02" + bytes(22) + b"\x01vorbis", "audio/ogg"),
        (b"OggS\x00\x02" + bytes(22) + b"OpusHead", "audio/ogg"),
        (b"OggS\x00\x02" + bytes(22) + b"\x80theora", "video/ogg"),
        (b"ID3\x04\x00\x00\x00\x00\x00\x00", "audio/mpeg"),
        (b"\xff\xfb\x90\x64" + bytes(10), "audio/mpeg"),  # MPEG-1 Layer III frame
        (b"%PDF-1.7\n", "application/pdf"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", None),
        (b"<svg xmlns='http://www.w3.org/2000/svg'>", None),
        (b"<!doctype html><script>", None),
        (b"\xff\xff\xff\xff", None),  # sync bits but invalid fields
        (b"", None),
        (b"\x89PN", None),
    ],
)
def test_sniff_mime(head: bytes, mime: str | None) -> None:
    assert sniff_mime(head) == mime


def test_magic_bytes_win_over_claimed_type(store: MediaStore) -> None:
    info = store.put_bytes(jpeg(20, 10), "image/png")
    assert (info.mime, info.width, info.height) == ("image/jpeg", 20, 10)


@pytest.mark.parametrize(
    ("data", "claimed"),
    [
        (b"definitely not pixels", "image/png"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "image/svg+xml"),
        (b"not a movie", "video/mp4"),
        (b"not a pdf", "application/pdf"),
    ],
)
def test_claimed_media_that_is_not_media_is_rejected(store: MediaStore, data: bytes, claimed: str) -> None:
    with pytest.raises(MediaError) as info:
        store.put_bytes(data, claimed)
    assert info.value.code == "unsupported_type"
    assert claimed in info.value.message
    assert stored_files(store) == []
    assert temp_files(store) == []


@pytest.mark.parametrize(
    ("claimed", "recorded"),
    [
        ("text/html", "application/octet-stream"),
        ("application/javascript", "application/octet-stream"),
        ("text/plain; charset=utf-8", "text/plain"),
        ("application/json", "application/json"),
        (None, "application/octet-stream"),
    ],
)
def test_unsniffable_types_are_never_recorded_as_active_content(
    store: MediaStore, claimed: str | None, recorded: str
) -> None:
    info = store.put_bytes(b"<html><script>alert(1)</script>", claimed)
    assert (info.mime, info.kind) == (recorded, "file")


def test_container_claims_within_the_same_family_are_kept(store: MediaStore) -> None:
    data = mp4(mvhd(1000, 1500))
    assert store.put_bytes(data, "audio/mp4").mime == "audio/mp4"
    assert store.put_bytes(data, "audio/mp4").kind == "audio"
    assert store.put_bytes(data, "image/png").mime == "video/mp4"


# ------------------------------------------------------------------ images and thumbnails


def thumb_of(store: MediaStore, info: MediaInfo) -> Image.Image:
    assert info.thumb_sha256 is not None
    img = Image.open(store.path_for(info.thumb_sha256))
    img.load()
    return img


def test_thumbnail_has_max_side_and_is_jpeg(store: MediaStore) -> None:
    info = store.put_bytes(png(1000, 500))
    assert (info.width, info.height) == (1000, 500)
    thumb = thumb_of(store, info)
    assert thumb.format == "JPEG"
    assert thumb.size == (384, 192)
    assert is_stored(store, info.thumb_sha256 or "")


def test_thumbnail_size_is_configurable_and_never_upscaled(tmp_path: Path) -> None:
    store = MediaStore(tmp_path / "media", thumb_size=64)
    assert thumb_of(store, store.put_bytes(png(300, 900))).size == (21, 64)
    assert thumb_of(store, store.put_bytes(png(30, 20))).size == (30, 20)


def test_transparent_images_get_webp_thumbnails(store: MediaStore) -> None:
    info = store.put_bytes(png(500, 500, "RGBA", (0, 0, 0, 0)))
    thumb = thumb_of(store, info)
    assert thumb.format == "WEBP"
    assert thumb.size == (384, 384)
    assert thumb.mode == "RGBA"

    out = io.BytesIO()
    Image.new("P", (800, 400)).save(out, format="GIF", transparency=0)
    gif = store.put_bytes(out.getvalue())
    assert (gif.mime, gif.width, gif.height) == ("image/gif", 800, 400)
    assert thumb_of(store, gif).format == "WEBP"


def test_exif_orientation_is_applied(store: MediaStore) -> None:
    # Stored 400×200 with "rotate 90° clockwise": displayed as a 200×400 portrait.
    info = store.put_bytes(jpeg(400, 200, orientation=6))
    assert (info.width, info.height) == (200, 400)
    assert thumb_of(store, info).size == (192, 384)


def test_big_jpeg_thumbnail_has_exact_max_side(store: MediaStore) -> None:
    info = store.put_bytes(jpeg(3000, 2000))
    assert (info.width, info.height) == (3000, 2000)
    assert thumb_of(store, info).size == (384, 256)


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n" + b"garbage" * 10,
        png(200, 200)[:120],  # truncated mid-stream
        b"\xff\xd8\xff" + bytes(50),
    ],
)
def test_damaged_images_are_rejected_clearly(store: MediaStore, data: bytes) -> None:
    with pytest.raises(MediaError) as info:
        store.put_bytes(data, "image/png")
    assert info.value.code == "unsupported_type"
    assert "damaged" in info.value.message
    assert stored_files(store) == []
    assert temp_files(store) == []


@pytest.mark.parametrize(("w", "h"), [(20_000, 20_000), (10_000, 9_999), (6_325, 6_325)])
def test_decompression_bombs_are_rejected(store: MediaStore, w: int, h: int) -> None:
    with pytest.raises(MediaError) as info:
        store.put_bytes(png_header_only(w, h))
    assert info.value.code == "too_large"
    assert "40 megapixels" in info.value.message and "Resize it" in info.value.message
    assert stored_files(store) == []
    assert temp_files(store) == []
    assert Image.MAX_IMAGE_PIXELS == images.MAX_IMAGE_PIXELS


def test_an_image_at_the_pixel_limit_passes_the_size_check(store: MediaStore) -> None:
    with pytest.raises(MediaError) as info:
        store.put_bytes(png_header_only(8_000, 5_000))  # exactly 40 MP, no pixel data
    assert info.value.code == "unsupported_type"  # refused for being damaged, not for its size


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 291 KB PNG of 10,000 × 9,999 pixels (400 MB decoded)."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.png"
    path.write_bytes(solid_png(10_000, 9_999))
    return path


def test_pixel_limit_is_checked_from_the_header_before_decoding(
    store: MediaStore, bomb: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_decoding(self: object) -> None:
        raise AssertionError("decoded an image over the pixel limit")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(MediaError) as info:
        store.put_bytes(bomb.read_bytes(), "image/png")
    assert info.value.code == "too_large"
    assert info.value.message == (
        "The image is too large to process: the limit is 40 megapixels. Resize it and try again."
    )
    assert stored_files(store) == []


def test_an_image_just_over_the_limit_is_refused_with_its_size(store: MediaStore) -> None:
    with warnings.catch_warnings():
        # Pillow warns first (an error under pytest); outside tests the warning is only logged.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with pytest.raises(MediaError) as info:
            store.put_bytes(png_header_only(7_000, 6_000))
    assert info.value.message == (
        "The image is too large to process (7000 × 6000 pixels): the limit is 40 megapixels."
        " Resize it and try again."
    )


@pytest.mark.parametrize(("mode", "fmt", "thumb_mode"), [
    ("L", "PNG", "RGB"), ("LA", "PNG", "RGBA"), ("I;16", "PNG", "RGB"), ("1", "PNG", "RGB"), ("CMYK", "JPEG", "RGB"),
])
def test_every_mode_gets_a_true_colour_thumbnail(
    store: MediaStore, mode: str, fmt: str, thumb_mode: str
) -> None:
    out = io.BytesIO()
    Image.new(mode, (800, 600)).save(out, format=fmt)
    info = store.put_bytes(out.getvalue())
    thumb = thumb_of(store, info)
    assert (info.width, info.height, thumb.size, thumb.mode) == (800, 600, (384, 288), thumb_mode)


def test_at_most_two_images_are_decoded_at_once(store: MediaStore, monkeypatch: pytest.MonkeyPatch) -> None:
    lock = threading.Lock()
    both_in = threading.Event()
    active = peak = 0
    real_thumbnail = images._thumbnail

    def observed(*args: object) -> bytes:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
            if active == images.MAX_CONCURRENT_DECODES:
                both_in.set()
        both_in.wait(5)  # hold the slot until a second decode has started (a third must not)
        try:
            return real_thumbnail(*args)  # type: ignore[arg-type]
        finally:
            with lock:
                active -= 1

    monkeypatch.setattr(images, "_thumbnail", observed)
    with ThreadPoolExecutor(max_workers=6) as pool:
        infos = list(pool.map(lambda i: store.put_bytes(png(40, 30, color=(i, 0, 0))), range(6)))
    assert len({info.sha256 for info in infos}) == 6
    assert peak == images.MAX_CONCURRENT_DECODES == 2


_MEASURE_DECODES = """
import json, sys, threading
from pathlib import Path
from backend.media.errors import MediaError
from backend.media.store import MediaStore

store = MediaStore(Path(sys.argv[1]))
files = [Path(name).read_bytes() for name in sys.argv[2:]]
outcomes = []

def high_water_kib():
    # VmHWM belongs to this process image; ru_maxrss would carry the parent's peak across fork and exec.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")

def put(data):
    try:
        info = store.put_bytes(data, "image/png")
        outcomes.append([info.width, info.height])
    except MediaError as exc:
        outcomes.append(exc.code)

before = high_water_kib()
threads = [threading.Thread(target=put, args=(data,)) for data in files]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
peak = high_water_kib()
print(json.dumps({"before_mib": before / 1024, "peak_mib": peak / 1024, "outcomes": outcomes}))
"""


def measure_decodes(tmp_path: Path, files: list[Path]) -> dict:
    """Store ``files`` at once (one thread each) in a fresh process; its peak RSS and what each became."""
    if not sys.platform.startswith("linux"):
        pytest.skip("reads VmHWM from /proc, which is Linux only")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [PYTHON, "-c", _MEASURE_DECODES, str(tmp_path / "media"), *map(str, files)],
        capture_output=True, text=True, env=env, timeout=120, check=True,
    )
    return json.loads(done.stdout)


def test_three_bombs_at_once_stay_far_below_a_gigabyte(tmp_path: Path, bomb: Path) -> None:
    # Before the pixel limit came down, this took 1.2 GB for one bomb and 3.3 GB for three.
    result = measure_decodes(tmp_path, [bomb, bomb, bomb])
    assert result["outcomes"] == ["too_large"] * 3
    assert result["peak_mib"] < 300, result


def test_decoding_accepted_images_holds_at_most_two_decoded_copies(tmp_path: Path) -> None:
    # 4000 × 4000 decodes to 61 MiB (4 bytes a pixel). Three at once, with the thumbnail made in place and
    # at most two decodes running, stay under 2.5 of those; an extra full-size copy per image (or a third
    # decode) would go past it.
    files = []
    for shade in range(3):
        files.append(tmp_path / f"big{shade}.png")
        files[-1].write_bytes(solid_png(4000, 4000, shade=shade))
    result = measure_decodes(tmp_path, files)
    assert result["outcomes"] == [[4000, 4000]] * 3
    decoded_mib = 4000 * 4000 * 4 / 2**20
    assert result["peak_mib"] - result["before_mib"] < 2.5 * decoded_mib, result


# ------------------------------------------------------------------ video and audio


def test_mp4_duration_and_size_from_boxes(store: MediaStore) -> None:
    audio_track = box(b"trak", tkhd(0, 0))
    video_track = box(b"trak", tkhd(1280, 720))
    data = mp4(mvhd(1000, 2500), audio_track, video_track)
    info = store.put_bytes(data, "video/mp4")
    assert (info.mime, info.kind) == ("video/mp4", "video")
    assert info.duration_s == 2.5
    assert (info.width, info.height) == (1280, 720)
    assert info.thumb_sha256 is None
    assert store.path_for(info.sha256).read_bytes() == data


def test_mp4_with_moov_after_mdat_and_64_bit_boxes(tmp_path: Path) -> None:
    moov_children = [mvhd(90_000, 90_000 * 3600 * 5, version=1), box(b"trak", tkhd(1920, 1080, version=1))]
    ftyp = box(b"ftyp", b"qt  " + bytes(4))
    mdat = box(b"mdat", os.urandom(5000), large=True)
    data = ftyp + mdat + box(b"moov", b"".join(moov_children), large=True)
    path = tmp_path / "movie.mov"
    path.write_bytes(data)
    with open(path, "rb") as fh:
        assert mp4_details(fh) == (5 * 3600.0, 1920, 1080)
    info = MediaStore(tmp_path / "media").put_bytes(data)
    assert (info.mime, info.duration_s) == ("video/quicktime", 18000.0)


def test_mp4_rotated_track_reports_displayed_size() -> None:
    data = mp4(mvhd(600, 600), box(b"trak", tkhd(1920, 1080, ROTATE_90)), moov_last=True)
    assert mp4_details(io.BytesIO(data)) == (1.0, 1080, 1920)


def test_fragmented_mp4_duration_from_mehd() -> None:
    mehd = box(b"mehd", bytes(4) + struct.pack(">I", 4500))
    data = mp4(mvhd(1000, 0), box(b"mvex", mehd), box(b"trak", tkhd(640, 360)))
    assert mp4_details(io.BytesIO(data)) == (4.5, 640, 360)


@pytest.mark.parametrize(
    "data",
    [
        box(b"ftyp", b"isom" + bytes(4)),  # no moov
        box(b"ftyp", b"isom" + bytes(4)) + struct.pack(">I4s", 4, b"moov"),  # size smaller than header
        box(b"ftyp", b"isom" + bytes(4)) + struct.pack(">I4s", 10_000, b"moov") + bytes(20),  # past the end
        box(b"ftyp", b"isom" + bytes(4)) + box(b"moov", box(b"mvhd", b"\x00\x00")),  # truncated mvhd
        box(b"ftyp", b"isom" + bytes(4)) + box(b"moov", mvhd(0, 100)),  # zero timescale
        box(b"ftyp", b"isom" + bytes(4)) + box(b"moov", mvhd(1000, 0xFFFFFFFF)),  # "unknown" duration
    ],
)
def test_malformed_mp4_is_stored_without_details(store: MediaStore, data: bytes) -> None:
    info = store.put_bytes(data)
    assert info.mime == "video/mp4"
    assert (info.duration_s, info.width, info.height) == (None, None, None)
    assert is_stored(store, info.sha256)


def test_wav_duration(store: MediaStore) -> None:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(4 * 6000))
    info = store.put_bytes(out.getvalue(), "audio/x-wav")
    assert (info.mime, info.kind, info.duration_s) == ("audio/wav", "audio", 0.75)


# ------------------------------------------------------------------ paths and deletion


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "../" + "a" * 61,
        "..",
        "/etc/passwd",
        "a" * 63,
        "a" * 65,
        "A" * 64,
        "g" * 64,
        "a" * 63 + "\n",
        "a" * 32 + "/" + "a" * 31,
        "a" * 32 + "\\" + "a" * 31,
        "٣" * 64,  # non-ASCII digits
        None,
        b"a" * 64,
    ],
)
def test_path_for_accepts_only_hex_digests(store: MediaStore, bad: object) -> None:
    with pytest.raises(ValueError):
        store.path_for(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        store.exists(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        store.delete(bad)  # type: ignore[arg-type]


def test_path_for_stays_inside_media_dir(store: MediaStore) -> None:
    sha = "0123456789abcdef" * 4
    path = store.path_for(sha)
    assert path.resolve().is_relative_to(store.media_dir.resolve())
    assert path.name == sha and path.parent.name == "01"


def test_delete(store: MediaStore) -> None:
    info = store.put_bytes(b"%PDF-1.4 tiny")
    store.delete(info.sha256)
    assert not store.exists(info.sha256)
    store.delete(info.sha256)  # already gone: fine
    # Stored again later: it comes back.
    assert is_stored(store, store.put_bytes(b"%PDF-1.4 tiny").sha256)


def test_errors_and_repr_are_plain(store: MediaStore) -> None:
    err = MediaError("The disk is full.", code="disk_full")
    assert (str(err), err.code) == ("The disk is full.", "disk_full")
    assert "disk_full" in repr(err)
    assert "media" in repr(store)
