"""Duration and frame size of MP4/MOV and WAV files, read from their box and chunk headers.

Small walkers over ISO-BMFF boxes and RIFF chunks: they read headers and a few bytes of the boxes that
matter, seeking over media data, so a large file costs a handful of reads. Anything malformed ends the walk
and leaves the value unknown (None) instead of raising: a file whose details cannot be read is still stored.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from typing import BinaryIO

# A malformed file cannot make a walk loop for long.
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
