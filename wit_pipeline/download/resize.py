"""The one home for resizing: img2dataset's resize modes on Pillow images, and JPEG encoding.

Modes (img2dataset's names and geometry):

- ``border``: the longer side becomes ``image_size``, then white padding to a centred square
- ``keep_ratio``: the shorter side becomes ``image_size``
- ``keep_ratio_largest``: the longer side becomes ``image_size``
- ``center_crop``: the shorter side becomes ``image_size``, then a centred square crop
- ``no``: the image as decoded

``--blur-bbox-col``: ``blur_boxes`` blurs img2dataset's ``bbox_col`` boxes (``[x0, y0, x1, y1]`` relative to
the image, as DataComp ships face boxes) on the decoded upright image before it is resized, with img2dataset's
blurrer's geometry and strength: each box grown by 10% of its longer pixel side on every side, one Gaussian of
the kernel OpenCV derives from ``2*ceil(0.1*d)+1`` (``d``: the longest box side of the image), the box mask
blurred by the same kernel so the edge fades. Only the boxes' neighbourhood is filtered. ``parse_boxes`` reads
the cell (a list, or its JSON text): coordinates are clipped to 0..1 like img2dataset's; anything else that is
not a list of four finite numbers with ``x0 <= x1`` and ``y0 <= y1`` is ``BadBoxes``, which the download
records as the row's ``bad_bbox`` (nothing stored: an unreadable box may be an unblurred face).

Why Pillow rather than img2dataset's OpenCV ``Resizer``: JPEG decoding dominates
the CPU cost, and Pillow's ``draft`` decodes a JPEG directly at 1/2, 1/4 or 1/8
scale when the target is small (``draft_size`` below); ``bench/bench_download.py``
times both on the same images side by side. Pillow also gives EXIF orientation
and CMYK handling that OpenCV's ``imdecode`` path lacks.
"""

from __future__ import annotations

import io
import json
import math

from PIL import Image, ImageFilter

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


def draft_size(width: int, height: int, image_size: int, mode: str, min_side: int = 0) -> tuple[int, int] | None:
    """The smallest size a JPEG may be decoded at (``Image.draft``) without losing output detail, its longer
    side at least ``min_side`` (a check on the decoded image needs that much).

    ``None`` when the mode keeps the original pixels or would upscale anyway.
    """
    if mode == "no":
        return None
    target = resized_size(width, height, image_size, mode)
    if max(target) < min_side:
        scale = min_side / max(target)
        target = (round(target[0] * scale), round(target[1] * scale))
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


# -- --blur-bbox-col ----------------------------------------------------------------------------------------

Box = tuple[float, float, float, float]


class BadBoxes(ValueError):
    """A ``--blur-bbox-col`` cell that is not a list of ``[x0, y0, x1, y1]`` boxes."""


def _box(value) -> Box:
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise BadBoxes(f"a box is [x0, y0, x1, y1], got {str(value)[:80]}")
    try:
        x0, y0, x1, y1 = (float(v) for v in value)
    except (TypeError, ValueError):
        raise BadBoxes(f"a box holds numbers, got {str(value)[:80]}") from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise BadBoxes(f"a box holds finite numbers, got {str(value)[:80]}")
    if x1 < x0 or y1 < y0:
        raise BadBoxes(f"a box is [x0, y0, x1, y1] with x0 <= x1 and y0 <= y1, got {str(value)[:80]}")
    x0, y0, x1, y1 = (min(1.0, max(0.0, v)) for v in (x0, y0, x1, y1))
    return x0, y0, x1, y1


def parse_boxes(cell) -> tuple[Box, ...]:
    """A ``--blur-bbox-col`` cell -> its boxes (none for null, empty or ``[]``); ``BadBoxes`` otherwise."""
    if cell is None or (isinstance(cell, str) and not cell.strip()):
        return ()
    if isinstance(cell, str):
        try:
            cell = json.loads(cell)
        except ValueError:
            raise BadBoxes(f"not a JSON list of boxes: {cell[:80]!r}") from None
    if hasattr(cell, "tolist"):                       # a numpy array from a parquet list column
        cell = cell.tolist()
    if not isinstance(cell, (list, tuple)):
        raise BadBoxes(f"a list of [x0, y0, x1, y1] boxes, got {str(cell)[:80]}")
    return tuple(_box(value) for value in cell)


def _blur_sigma(longest_side: int) -> float:
    """The standard deviation OpenCV gives the kernel img2dataset's blurrer asks for (sigma 0: from the size)."""
    kernel = max(3, 2 * math.ceil(0.1 * longest_side) + 1)
    return 0.3 * ((kernel - 1) * 0.5 - 1) + 0.8


def _grown(box: Box, width: int, height: int) -> tuple[tuple[int, int, int, int], int]:
    """A box in pixels grown by 10% of its longer side (clipped to the image), and that side."""
    x0, y0, x1, y1 = int(box[0] * width), int(box[1] * height), int(box[2] * width), int(box[3] * height)
    side = max(x1 - x0, y1 - y0)
    grow = 0.1 * side
    x0, y0, x1, y1 = int(x0 - grow), int(y0 - grow), int(x1 + grow), int(y1 + grow)
    return (min(max(x0, 0), width - 1), min(max(y0, 0), height - 1),
            min(max(x1, 0), width - 1), min(max(y1, 0), height - 1)), side


def blur_boxes(image: Image.Image, boxes: tuple[Box, ...]) -> Image.Image:
    """Blur ``boxes`` of ``image`` in place and return it (see the module docstring); only the boxes'
    neighbourhood is filtered, so the cost follows the boxes' area, not the image's."""
    grown = [_grown(box, image.width, image.height) for box in boxes]
    longest = max((side for _, side in grown), default=0)
    rects = [rect for rect, _ in grown if rect[2] > rect[0] and rect[3] > rect[1]]
    if not rects or longest <= 0:
        return image
    blur = ImageFilter.GaussianBlur(_blur_sigma(longest))
    reach = math.ceil(3 * _blur_sigma(longest)) + 2       # past it the mask's blur is zero
    left = max(0, min(r[0] for r in rects) - reach)
    top = max(0, min(r[1] for r in rects) - reach)
    right = min(image.width, max(r[2] for r in rects) + reach)
    bottom = min(image.height, max(r[3] for r in rects) + reach)
    mask = Image.new("L", (right - left, bottom - top), 0)
    for x0, y0, x1, y1 in rects:
        mask.paste(255, (x0 - left, y0 - top, x1 - left, y1 - top))
    region = image.crop((left, top, right, bottom))
    image.paste(region.filter(blur), (left, top), mask.filter(blur))
    return image
