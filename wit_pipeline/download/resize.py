"""The one home for resizing: img2dataset's resize modes on Pillow images, and JPEG encoding.

Modes (img2dataset's names and geometry):

- ``border``: the longer side becomes ``image_size``, then white padding to a centred square
- ``keep_ratio``: the shorter side becomes ``image_size``
- ``keep_ratio_largest``: the longer side becomes ``image_size``
- ``center_crop``: the shorter side becomes ``image_size``, then a centred square crop
- ``no``: the image as decoded

Why Pillow rather than img2dataset's OpenCV ``Resizer``: JPEG decoding dominates
the CPU cost, and Pillow's ``draft`` decodes a JPEG directly at 1/2, 1/4 or 1/8
scale when the target is small (``draft_size`` below); ``bench/bench_download.py``
times both on the same images side by side. Pillow also gives EXIF orientation
and CMYK handling that OpenCV's ``imdecode`` path lacks.
"""

from __future__ import annotations

import io
import math

from PIL import Image

RESIZE_MODES = ("border", "keep_ratio", "keep_ratio_largest", "center_crop", "no")
DEFAULT_QUALITY = 95            # img2dataset's default encode_quality
# img2dataset's defaults: "area" when shrinking (Pillow's BOX filter averages exactly the covered source
# area), "lanczos" when enlarging.
_DOWNSCALE = Image.Resampling.BOX
_UPSCALE = Image.Resampling.LANCZOS


def check_mode(mode: str) -> str:
    if mode not in RESIZE_MODES:
        raise ValueError(f"unknown resize mode {mode!r} (choose from {', '.join(RESIZE_MODES)})")
    return mode


def _scale(width: int, height: int, image_size: int, mode: str) -> float:
    if mode in ("keep_ratio", "center_crop"):
        return image_size / min(width, height)
    return image_size / max(width, height)


def resized_size(width: int, height: int, image_size: int, mode: str) -> tuple[int, int]:
    """Size after the scaling step of ``mode`` (before padding or cropping)."""
    if mode == "no":
        return width, height
    scale = _scale(width, height, image_size, mode)
    if mode in ("keep_ratio", "center_crop"):   # the shorter side lands exactly on image_size
        return (image_size, max(1, round(height * scale))) if width <= height else \
            (max(1, round(width * scale)), image_size)
    return (image_size, max(1, round(height * scale))) if width >= height else \
        (max(1, round(width * scale)), image_size)


def final_size(width: int, height: int, image_size: int, mode: str) -> tuple[int, int]:
    """Size of the output image for an input of ``width`` x ``height``."""
    if mode in ("border", "center_crop"):
        return image_size, image_size
    return resized_size(width, height, image_size, mode)


def draft_size(width: int, height: int, image_size: int, mode: str) -> tuple[int, int] | None:
    """The smallest size a JPEG may be decoded at (``Image.draft``) without losing output detail.

    ``None`` when the mode keeps the original pixels or would upscale anyway.
    """
    if mode == "no":
        return None
    target = resized_size(width, height, image_size, mode)
    if target[0] >= width or target[1] >= height:
        return None
    return max(1, math.ceil(target[0])), max(1, math.ceil(target[1]))


def resize(image: Image.Image, image_size: int, mode: str,
           original_size: tuple[int, int] | None = None) -> Image.Image:
    """Resize an RGB image with ``mode``.

    ``original_size`` is the size before any ``draft``: the output geometry is
    computed from it, so a drafted decode gives exactly the same output size.
    """
    if mode == "no":
        return image
    width, height = image.size
    target = resized_size(*(original_size or image.size), image_size, mode)
    if target != (width, height):
        shrinking = target[0] * target[1] < width * height
        image = image.resize(target, _DOWNSCALE if shrinking else _UPSCALE)
    if mode == "border":
        if image.size == (image_size, image_size):
            return image
        canvas = Image.new("RGB", (image_size, image_size), (255, 255, 255))
        canvas.paste(image, ((image_size - image.width) // 2, (image_size - image.height) // 2))
        return canvas
    if mode == "center_crop":
        left, top = (image.width - image_size) // 2, (image.height - image_size) // 2
        return image.crop((left, top, left + image_size, top + image_size))
    return image


def encode_jpeg(image: Image.Image, quality: int = DEFAULT_QUALITY) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
