"""Dimensions and a JPEG/WebP thumbnail of an image (EXIF orientation applied)."""

from __future__ import annotations

import io
import struct
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from backend.media.errors import MediaError

# Larger than any generated image (16 MP) or camera photo (~50 MP); a decompression bomb claims far more.
MAX_IMAGE_PIXELS = 100_000_000


def image_details(path: Path, thumb_size: int) -> tuple[int, int, bytes]:
    """(width, height as displayed, thumbnail bytes) — or ``MediaError`` for a bomb or a damaged image."""
    try:
        with Image.open(path) as im:
            width, height = im.size
            if width * height > MAX_IMAGE_PIXELS:
                raise too_many_pixels(width, height)
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
        raise too_many_pixels(None, None) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise MediaError(
            f"The image could not be read ({type(exc).__name__}: {exc}). It may be truncated or damaged;"
            " try downloading or exporting it again.",
            code="unsupported_type",
        ) from exc


def too_many_pixels(width: int | None, height: int | None) -> MediaError:
    """The ``too_large`` error for an image over :data:`MAX_IMAGE_PIXELS`."""
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
