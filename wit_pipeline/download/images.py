"""Image checks: decode safely, apply EXIF orientation, convert to RGB, filter by size and shape.

Pure functions over bytes; the download stage calls ``load_image`` for every
fetched body and records the ``ImageRejected.reason`` of any refusal:

- ``not_an_image``: the bytes are no image format we know (an HTML page served as image/jpeg)
- ``decompression_bomb``: the *declared* pixel count is over ``max_pixels`` (checked before decoding)
- ``decode_error``: an image format's signature, but the data does not decode (truncated, corrupt)
- ``image_too_small``: the shorter side is under ``min_image_size``
- ``bad_aspect_ratio``: long side / short side is over ``max_aspect_ratio``

Sizes are checked on the header alone, so a rejected image costs no decode.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageOps

from .resize import draft_size

IMAGE_REASONS = ("not_an_image", "decompression_bomb", "decode_error", "image_too_small", "bad_aspect_ratio")
DEFAULT_MAX_PIXELS = 89_478_485          # Pillow's own MAX_IMAGE_PIXELS (~0.25 GiB of RGBA)

# Signatures of the formats Pillow can open: a body starting with one of these is an image, broken or not.
_SIGNATURES = (
    b"\xff\xd8\xff",                       # JPEG
    b"\x89PNG\r\n\x1a\n",                  # PNG
    b"GIF87a", b"GIF89a",                  # GIF
    b"BM",                                 # BMP
    b"II*\x00", b"MM\x00*",                # TIFF
    b"\x00\x00\x01\x00",                   # ICO
)
# EXIF orientations that swap width and height.
_TRANSPOSED = {5, 6, 7, 8}


class ImageRejected(Exception):
    """An image refused by a check; ``reason`` is one of ``IMAGE_REASONS``."""

    def __init__(self, reason: str, message: str = ""):
        super().__init__(f"{reason}: {message}" if message else reason)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class ImageChecks:
    """The checks' thresholds, built from ``DownloadOptions`` (the one place their defaults live)."""
    min_image_size: int                  # shorter side, pixels (DataComp's basic filter)
    max_aspect_ratio: float              # long side / short side (DataComp's basic filter)
    max_pixels: int                      # declared pixels; DEFAULT_MAX_PIXELS in the download


def looks_like_image(data: bytes) -> bool:
    head = data[:16]
    if head.startswith(_SIGNATURES):
        return True
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return True
    return head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis", b"heic", b"heix", b"mif1")


def check_size(width: int, height: int, checks: ImageChecks) -> None:
    """Raise ``ImageRejected`` when a (displayed) size fails the size or shape filters."""
    short, long = min(width, height), max(width, height)
    if short < checks.min_image_size:
        raise ImageRejected("image_too_small", f"{width}x{height}, shorter side < {checks.min_image_size}")
    if short == 0 or long / short > checks.max_aspect_ratio:
        raise ImageRejected("bad_aspect_ratio", f"{width}x{height}, ratio > {checks.max_aspect_ratio:g}")


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB with any transparency composited on white (as img2dataset does); CMYK, L, P, I;16 ... converted."""
    if image.mode == "RGB":
        return image
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = image.point(lambda v: v * (1 / 256)).convert("L")
    return image.convert("RGB")


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(0x0112, 1) or 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block is not a broken image
        return 1


def load_image(data: bytes, checks: ImageChecks, *, image_size: int | None = None,
               resize_mode: str = "border") -> tuple[Image.Image, tuple[int, int]]:
    """Decode ``data`` into an upright RGB image; returns ``(image, (original_width, original_height))``.

    The original size is the displayed one (after EXIF orientation). With
    ``image_size``, JPEGs are decoded directly at the smallest 1/2, 1/4 or 1/8
    scale that still covers what ``resize_mode`` needs (Pillow's ``draft``).
    Raises ``ImageRejected`` for anything the checks refuse.
    """
    if not looks_like_image(data):
        raise ImageRejected("not_an_image", f"unknown signature {data[:8]!r}")
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageRejected("decompression_bomb", str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for bad headers
        raise ImageRejected("decode_error", f"{type(exc).__name__}: {exc}"[:300]) from exc
    stored_w, stored_h = image.size
    if stored_w * stored_h > checks.max_pixels:
        raise ImageRejected("decompression_bomb", f"declared {stored_w}x{stored_h} > {checks.max_pixels} pixels")
    orientation = _orientation(image)
    width, height = (stored_h, stored_w) if orientation in _TRANSPOSED else (stored_w, stored_h)
    check_size(width, height, checks)
    try:
        if image_size and image.format == "JPEG":
            target = draft_size(stored_w, stored_h, image_size, resize_mode)
            if target is not None:
                image.draft(None, target)
        image.load()
        if orientation != 1:
            image = ImageOps.exif_transpose(image)
        image = to_rgb(image)
    except Image.DecompressionBombError as exc:
        raise ImageRejected("decompression_bomb", str(exc)) from exc
    except Exception as exc:  # noqa: BLE001
        raise ImageRejected("decode_error", f"{type(exc).__name__}: {exc}"[:300]) from exc
    return image, (width, height)

