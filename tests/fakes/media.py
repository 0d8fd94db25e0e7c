"""Small, deterministic media files for the fake OpenRouter (standard library only)."""

from __future__ import annotations

import hashlib
import struct
import zlib

__all__ = ["ASPECT_SIZES", "fake_mp4", "fake_png", "fake_wav", "png_size", "solid_png"]

# The real sizes per aspect ratio (docs/openrouter.md, "Images"), scaled down by 64 so the files stay tiny.
ASPECT_SIZES: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "2:3": (832, 1248),
    "3:2": (1248, 832),
    "3:4": (864, 1184),
    "4:3": (1184, 864),
    "4:5": (896, 1152),
    "5:4": (1152, 896),
    "9:16": (768, 1344),
    "16:9": (1344, 768),
    "21:9": (1536, 672),
}
SCALE = 64


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def fake_png(seed: str, aspect_ratio: str = "1:1") -> bytes:
    """A valid RGB PNG whose colours derive from ``seed``; size follows ``aspect_ratio`` (scaled down)."""
    full_w, full_h = ASPECT_SIZES.get(aspect_ratio, ASPECT_SIZES["1:1"])
    width, height = max(1, full_w // SCALE), max(1, full_h // SCALE)
    digest = hashlib.sha256(seed.encode("utf-8")).digest()
    top, bottom = digest[0:3], digest[3:6]
    rows = []
    for y in range(height):
        # A vertical gradient between two seed colours: distinct images for distinct prompts.
        mix = y / max(1, height - 1)
        pixel = bytes(int(a + (b - a) * mix) for a, b in zip(top, bottom, strict=True))
        rows.append(b"\x00" + pixel * width)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + _chunk(b"IEND", b"")
    )


def solid_png(width: int, height: int, shade: int = 0) -> bytes:
    """A one-colour RGB PNG of any size, compressed row by row: 10,000 × 9,999 pixels take 291 KB here and
    (almost) nothing to build, but 400 MB to decode — a decompression bomb when large."""
    compressor = zlib.compressobj()
    row = b"\x00" + bytes([shade]) * (3 * width)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    return struct.unpack(">II", data[16:24])


def _box(tag: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + tag + payload


def fake_mp4(seed: str) -> bytes:
    """MP4-looking bytes (``ftyp`` + ``free`` + ``mdat`` boxes) that identify the job they came from."""
    ftyp = _box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2avc1mp41")
    payload = hashlib.sha256(seed.encode("utf-8")).digest() * 8 + seed.encode("utf-8")
    return ftyp + _box(b"free", b"") + _box(b"mdat", payload)


def fake_wav(seed: str, samples: int = 800) -> bytes:
    """A short mono 16-bit 8 kHz WAV file whose samples derive from ``seed``."""
    digest = hashlib.sha256(seed.encode("utf-8")).digest()
    frames = b"".join(struct.pack("<h", (digest[i % len(digest)] - 128) * 64) for i in range(samples))
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    body = (
        b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", len(frames))
        + frames
    )
    return b"RIFF" + struct.pack("<I", len(body)) + body
