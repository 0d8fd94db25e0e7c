"""Dimensions and a thumbnail of an image, with decoding bounded in pixels and in concurrency.

A compressed image can claim any size: a 291 KB PNG of 10,000 × 9,999 pixels decodes to 400 MB (Pillow
keeps RGB at 4 bytes a pixel), and every full-size copy on the way to a thumbnail adds as much again. So:

- the dimensions are read from the header (``Image.open`` decodes no pixels) and an image over
  :data:`MAX_IMAGE_PIXELS` is refused before anything is decoded;
- JPEGs are decoded at 1/2, 1/4 or 1/8 scale (``draft``) when that still leaves twice the thumbnail size;
- the thumbnail is made from the decoded image in place, and only the small result is rotated and
  converted. The decoded image is then the only full-size allocation for opaque true-colour images
  (4 bytes a pixel); images with transparency get one premultiplied copy from Pillow to resample them
  correctly, and palette, 1-bit, 16-bit and CMYK images one conversion (at most 8 bytes a pixel in all);
- at most :data:`MAX_CONCURRENT_DECODES` images are decoded at once in the process (decoding runs in worker
  threads), so several uploads or downloads together cannot multiply the peak.
"""

from __future__ import annotations

import io
import struct
import threading
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from backend.media.errors import MediaError

# 40 megapixels: twice any generated image (4K outputs are about 17 MP) and above the photos phone cameras
# take by default (12–24 MP); a decompression bomb claims far more. One decode then holds at most 160 MB for
# an opaque PNG, 320 MB for a transparent or palette one, about 120 MB for a progressive JPEG and a few MB
# for a baseline one; two at once, never more than 640 MB.
MAX_IMAGE_PIXELS = 40_000_000
# Decodes hold their whole image: two at once bound the peak and still use both cores of a small machine.
MAX_CONCURRENT_DECODES = 2
_DECODE_SLOTS = threading.BoundedSemaphore(MAX_CONCURRENT_DECODES)

# Modes Pillow resamples as they are; any other (palette, 1-bit, 16-bit, CMYK…) is converted first, or it
# would be shrunk with NEAREST or not at all.
_RESAMPLABLE = {"RGB", "RGBA", "L", "LA"}
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
# EXIF orientation → the transpose that shows the image upright.
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def image_details(path: Path, thumb_size: int) -> tuple[int, int, bytes]:
    """(width, height as displayed, thumbnail bytes) of the image at ``path``.

    Raises ``MediaError``: ``too_large`` for an image over :data:`MAX_IMAGE_PIXELS` (refused from its
    header, before any pixel is decoded), ``unsupported_type`` for a damaged one.
    """
    try:
        with Image.open(path) as im:  # reads the header only
            width, height = im.size
            if width * height > MAX_IMAGE_PIXELS:
                raise too_many_pixels(width, height)
            with _DECODE_SLOTS:
                thumb, orientation = _thumbnail(im, thumb_size)
            if orientation in (5, 6, 7, 8):  # rotated a quarter turn: displayed sideways
                width, height = height, width
            return width, height, thumb
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
    size = f" ({width} × {height} pixels)" if width and height else ""
    return MediaError(
        f"The image is too large to process{size}: the limit is {MAX_IMAGE_PIXELS // 1_000_000} megapixels."
        " Resize it and try again.",
        code="too_large",
    )


def _thumbnail(im: Image.Image, thumb_size: int) -> tuple[bytes, int | None]:
    """Decode ``im`` (bounded: see the module docstring); its upright thumbnail and EXIF orientation."""
    has_alpha = im.mode in _ALPHA_MODES or (im.mode == "P" and "transparency" in im.info)
    target = "RGBA" if has_alpha else "RGB"
    # JPEG only: decode at the smallest 1/2^n scale that keeps twice the thumbnail size (for quality).
    im.draft(None, (thumb_size * 2, thumb_size * 2))
    im.load()
    # Read once the pixels are decoded: a PNG may keep its EXIF after them, and asking earlier decodes it.
    orientation = im.getexif().get(0x0112)
    if im.mode in _RESAMPLABLE:
        small = im
    else:
        small = im.convert(target)
        im.close()  # free the decoded original before resampling makes its own copy
    small.thumbnail((thumb_size, thumb_size), Image.Resampling.LANCZOS)  # in place; never enlarges
    if orientation in _UPRIGHT:
        small = small.transpose(_UPRIGHT[orientation])
    if small.mode != target:
        small = small.convert(target)
    return _encode_thumbnail(small), orientation


def _encode_thumbnail(img: Image.Image) -> bytes:
    """JPEG for opaque images, WebP when there is transparency to keep (``img`` is RGB or RGBA)."""
    out = io.BytesIO()
    if img.mode == "RGBA":
        img.save(out, format="WEBP", quality=80, method=4)
    else:
        img.save(out, format="JPEG", quality=85, optimize=True)
    return out.getvalue()
