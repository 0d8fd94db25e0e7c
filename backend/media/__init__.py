"""Media files: a content-addressed store (``store``), type sniffing and data URLs (``sniff``), bounded image
decoding (``images``), MP4/WAV details (``containers``) and HTTP ranges (``http_range``)."""

from backend.media.errors import MediaError
from backend.media.sniff import decode_data_url, encode_data_url
from backend.media.store import MediaInfo, MediaStore, MediaWriter

__all__ = ["MediaError", "MediaInfo", "MediaStore", "MediaWriter", "decode_data_url", "encode_data_url"]
