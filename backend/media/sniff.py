"""What a file is, from its bytes: magic-number sniffing, MIME normalisation, and data URLs.

The type recorded for a file comes from its first bytes, not from what a caller or a model claims: a "PNG"
that is really a JPEG is recorded as JPEG, and something that claims to be an image but is not one is
rejected. Types no magic number identifies are kept only when they are plain data (text, JSON); anything
else becomes ``application/octet-stream``, so nothing a model returns can later be served back as HTML or
SVG.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import urllib.parse

from backend.core.sizes import format_size
from backend.media.errors import MediaError

log = logging.getLogger(__name__)

#: How many leading bytes :func:`sniff_mime` looks at.
SNIFF_BYTES = 4096

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


def sniff_mime(data: bytes) -> str | None:
    """Identify a file from its first bytes; None when it is none of the supported formats."""
    head = bytes(data[:SNIFF_BYTES])
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


def resolve_mime(head: bytes, claimed: str | None) -> str:
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
        f"The data is larger than the {format_size(max_bytes)} limit. Use a smaller file.", code="too_large"
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
