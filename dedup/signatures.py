"""Near-duplicate signatures: an image as a *set* of region hashes, a text as a set of character n-grams.

Both are sets of small unsigned integers, so MinHash (datasketch) estimates
their Jaccard similarity and MinHashLSH finds candidate pairs; the exact
Jaccard of the sets then confirms every candidate (see ``index.py``).

The image signature, step by step:

1. Decode small. JPEGs are decoded with Pillow's ``draft`` (DCT scaling straight
   to 1/2..1/8 size) in YCbCr, so there is no full-size decode and no colour
   conversion; other formats are box-reduced first.
2. Trim uniform borders (the white bars of ``wit download --resize-mode border``,
   frames, flat margins): leading and trailing rows/columns whose every channel
   spans at most ``TRIM_TOLERANCE`` levels. The trimmed box is content-defined,
   so it also re-aligns a copy whose crop cut into a flat margin.
3. Resize to a 48x48 canvas (bilinear), whatever the aspect ratio: resizing
   and aspect changes from small crops are normalised away.
4. Regions at three scales, each a 3x3 grid of blocks: blocks of 16 px (the
   whole canvas), blocks of 8 px (24 px regions every 4 px, 49 of them) and
   blocks of 4 px (12 px regions every 2 px, 361 of them). Regions overlap, so
   a crop that shifts the content still leaves most regions close to one of the
   original's.
5. Each region gets a 12-bit difference hash: the signs of the 6 horizontal
   and 6 vertical differences between adjacent block means. Signs ignore
   brightness, contrast and small colour shifts. Flat regions (mean absolute
   difference under ``FLAT_LEVEL`` levels) carry no information and are left out.
6. An element is ``dhash << 8 | scale << 6 | cell << 2 | channel``: the hash,
   the scale, the 3x3 cell of the canvas holding the region's centre (so the
   same texture in another part of another image does not count) and the
   channel. Luma (Y) is hashed at every scale, chroma (Cb, Cr) at the two
   coarse scales, so two shapes of equal brightness but different hue still
   differ. Elements are 20-bit integers.

Eval images are signed five times, as they are and cropped by 5% at each
corner, and keep the elements at least two of the five have
(``stable_codes``): elements a small crop would change are the ones a training
copy is least likely to share. Training images, the large side, are signed once.

Whole-image hashes alone do not survive crops, and MinHash over the 64 bits of
one hash adds nothing; a set of region hashes is what MinHash is for. Under the
transformations the quality test applies (resize 0.4-2x, JPEG 40-95, crops up
to 8% of each side, small colour shifts) a copy keeps a Jaccard similarity of
about 0.2-0.5 with its eval original; distinct images stay under ~0.05 (README,
"Overlap analysis").
"""

from __future__ import annotations

import io
import warnings
import zlib
from functools import lru_cache

import numpy as np
from PIL import Image, ImageOps

from wit_pipeline.text import canonical

CANVAS = 48                    # side of the square canvas regions are cut from
DRAFT = CANVAS                 # JPEGs are decoded at the smallest DCT scale that keeps both sides >= this
TRIM_TOLERANCE = 10            # a border row/column is "uniform" if every channel spans <= this
FLAT_LEVEL = 4.0               # regions whose mean |block difference| is below this are skipped
CELLS = 3                      # the canvas is cut into CELLS x CELLS position cells
# (block size in canvas px, channels hashed): 16 px blocks = the whole canvas.
SCALES: tuple[tuple[int, int], ...] = ((16, 3), (8, 3), (4, 1))
CODE_BITS = 20                 # every image element is < 2**CODE_BITS
STABLE_CROP = 0.05             # eval images are also signed cropped by this much at each corner ...
STABLE_KEEP = 2                # ... and keep the elements at least this many of the 5 signatures share
TEXT_NGRAM = 5                 # character n-grams of the canonical text
MIN_TEXT_CHARS = 16            # shorter texts (labels, "image") are not compared

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff")

# Adjacent block pairs of a 3x3 grid: 6 horizontal then 6 vertical.
_PAIRS = [((i, j), (i, j + 1)) for i in range(3) for j in range(2)] + \
         [((i, j), (i + 1, j)) for i in range(2) for j in range(3)]
_BIT_WEIGHTS = (2.0 ** np.arange(12)).astype(np.float32)
_ONES = np.ones(12, np.float32)


class BadImage(ValueError):
    """The bytes are not an image Pillow can decode (the reason is the message)."""


# --------------------------------------------------------------------------- decoding


def decode_planes(data: bytes) -> np.ndarray:
    """Decode image bytes to small (3, h, w) float32 YCbCr planes, uniform borders trimmed.

    Raises ``BadImage`` for anything Pillow cannot decode (truncated, not an
    image, zero-sized, decompression bomb).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format == "JPEG":
                image.draft("YCbCr", (DRAFT, DRAFT))
            elif min(image.size) >= 2 * DRAFT:
                image = image.reduce(max(1, min(image.size) // DRAFT))
            if "exif" in image.info and image.getexif().get(0x0112, 1) != 1:  # EXIF orientation, as a viewer shows it
                image = ImageOps.exif_transpose(image)
            if image.mode != "YCbCr":
                if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
                    background = Image.new("RGB", image.size, (255, 255, 255))
                    background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
                    image = background
                image = image.convert("RGB").convert("YCbCr")
            pixels = np.asarray(image)
    except Exception as exc:  # Pillow raises many types (OSError, SyntaxError, ValueError, ...)
        raise BadImage(f"{exc.__class__.__name__}: {exc}".splitlines()[0][:200]) from None
    if pixels.ndim != 3 or pixels.shape[0] < 2 or pixels.shape[1] < 2:
        raise BadImage(f"image too small to sign: {pixels.shape[1]}x{pixels.shape[0]}")
    channels = np.ascontiguousarray(pixels.transpose(2, 0, 1))          # (3, h, w) uint8
    top, bottom, left, right = _trim_box(channels)
    return channels[:, top:bottom, left:right].astype(np.float32)


def to_canvas(planes: np.ndarray) -> np.ndarray:
    """Resize (3, h, w) planes to the (3, CANVAS, CANVAS) canvas (antialiased linear)."""
    _, height, width = planes.shape
    return _resample(height, CANVAS) @ planes @ _resample(width, CANVAS).T


def decode_canvas(data: bytes) -> np.ndarray:
    """Image bytes -> the (3, CANVAS, CANVAS) float32 YCbCr canvas the regions are cut from."""
    return to_canvas(decode_planes(data))


@lru_cache(maxsize=1024)
def _resample(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix of an antialiased linear (triangle) resize, like Pillow's BILINEAR."""
    scale = n_in / n_out
    support = max(scale, 1.0)
    centres = (np.arange(n_out) + 0.5) * scale
    weights = np.maximum(0.0, 1.0 - np.abs(np.arange(n_in)[None, :] + 0.5 - centres[:, None]) / support)
    weights /= weights.sum(axis=1, keepdims=True)
    return weights.astype(np.float32)


def _spans(planes: np.ndarray, axis: int) -> np.ndarray:
    """Largest per-channel value range of every row (``axis=2``) or column (``axis=1``)."""
    return (planes.max(axis=axis) - planes.min(axis=axis)).max(axis=0)   # max >= min: no uint8 wrap


def _trim_box(planes: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of ``planes`` (3, h, w) after dropping uniform border rows and columns.

    Most images have no uniform border, which four single-line checks show;
    only then are all lines measured. If trimming would leave less than a
    quarter of either side (a nearly flat image), the image is kept whole.
    """
    _, height, width = planes.shape
    corners = np.stack([planes[:, 0, :], planes[:, -1, :]], axis=1), np.stack([planes[:, :, 0], planes[:, :, -1]], axis=1)
    if (_spans(corners[0], 2) > TRIM_TOLERANCE).all() and (_spans(corners[1], 2) > TRIM_TOLERANCE).all():
        return 0, height, 0, width

    def _edges(span: np.ndarray) -> tuple[int, int]:
        busy = np.flatnonzero(span > TRIM_TOLERANCE)
        if len(busy) == 0:
            return 0, len(span)
        return int(busy[0]), int(busy[-1]) + 1

    top, bottom = _edges(_spans(planes, 2))
    left, right = _edges(_spans(planes, 1))
    if (bottom - top) * 4 < height or (right - left) * 4 < width or bottom - top < 2 or right - left < 2:
        return 0, height, 0, width
    return top, bottom, left, right


# --------------------------------------------------------------------------- image regions


@lru_cache(maxsize=None)
def _plan():
    """For every scale: block size, the flat indices of each region's 12 block pairs, the element tags."""
    plans = []
    for scale, (block, channels) in enumerate(SCALES):
        unit = block // 2                       # block sums are taken every half block
        side = CANVAS // unit - 1               # side of the block-sum map
        starts = np.arange(0, side - 5 + 1)     # a region spans 3 blocks = 6 half-block units
        ys, xs = (m.ravel() for m in np.meshgrid(starts, starts, indexing="ij"))
        first = np.stack([(ys + 2 * a[0]) * side + xs + 2 * a[1] for a, _ in _PAIRS], 1).ravel()
        second = np.stack([(ys + 2 * b[0]) * side + xs + 2 * b[1] for _, b in _PAIRS], 1).ravel()
        centre_y = (ys * unit + 1.5 * block) / CANVAS
        centre_x = (xs * unit + 1.5 * block) / CANVAS
        cell = (np.minimum(centre_y * CELLS, CELLS - 1).astype(np.int64) * CELLS
                + np.minimum(centre_x * CELLS, CELLS - 1).astype(np.int64))
        tags = ((scale << 6) | (cell[None, :] << 2) | np.arange(channels)[:, None]).astype(np.int64)
        plans.append((block, unit, channels, first, second, tags, len(ys)))
    return plans


def image_codes(canvas: np.ndarray) -> np.ndarray:
    """The region elements of a decoded canvas (uint32, unsorted, may repeat)."""
    pyramid = {}
    level = canvas
    for unit in (2, 4, 8):  # 2x2 sums by slicing: numpy's multi-axis sum is far slower here
        level = level[:, 0::2, 0::2] + level[:, 1::2, 0::2] + level[:, 0::2, 1::2] + level[:, 1::2, 1::2]
        pyramid[unit] = level
    out = []
    for block, unit, channels, first, second, tags, regions in _plan():
        sums = pyramid[unit][:channels]
        boxes = (sums[:, :-1, :-1] + sums[:, 1:, :-1] + sums[:, :-1, 1:] + sums[:, 1:, 1:]).reshape(channels, -1)
        diffs = (boxes[:, first] - boxes[:, second]).reshape(channels, regions, 12)
        busy = (np.abs(diffs) @ _ONES) > FLAT_LEVEL * 12 * block * block
        dhash = ((diffs > 0).astype(np.float32) @ _BIT_WEIGHTS).astype(np.int64)
        out.append(((dhash << 8) | tags)[busy])
    return np.concatenate(out).astype(np.uint32)


def image_signature(data: bytes) -> np.ndarray:
    """Sorted unique region elements of an image (uint32). Raises ``BadImage``."""
    return np.unique(image_codes(decode_canvas(data)))


def stable_codes(planes: np.ndarray, crop: float = STABLE_CROP, keep: int = STABLE_KEEP) -> np.ndarray:
    """The eval side's signature: region elements that survive small crops.

    The image is signed as it is and cropped by ``crop`` of each side at each
    of its four corners; an element is kept if at least ``keep`` of the five
    signatures have it. Elements that a few percent of cropping changes are
    the ones a training copy is least likely to share, so dropping them raises
    a copy's similarity (in the quality test the 2nd percentile rises from
    about 0.14 to 0.20) while distinct images stay as far apart. Only the eval
    side pays the five signings; training images are signed once.
    """
    _, height, width = planes.shape
    dy, dx = int(round(crop * height)), int(round(crop * width))
    views = [planes]
    if dy >= 1 and dx >= 1:
        views += [planes[:, dy:, dx:], planes[:, dy:, :width - dx], planes[:, :height - dy, dx:],
                  planes[:, :height - dy, :width - dx]]
    else:
        keep = 1
    codes = np.concatenate([np.unique(image_codes(to_canvas(v))) for v in views])
    values, counts = np.unique(codes, return_counts=True)
    return values[counts >= keep]


def eval_image_signature(data: bytes) -> np.ndarray:
    """Sorted unique crop-stable region elements of an eval image (uint32). Raises ``BadImage``."""
    return stable_codes(decode_planes(data))


# --------------------------------------------------------------------------- text


def text_signature(text: str | None, n: int = TEXT_NGRAM) -> np.ndarray:
    """Sorted unique CRC32s of the character n-grams of the canonical text (empty if too short)."""
    if not text:
        return np.zeros(0, np.uint32)
    norm = canonical(text)
    if len(norm) < max(n, MIN_TEXT_CHARS):
        return np.zeros(0, np.uint32)
    encoded = norm.encode("utf-8")
    grams = {zlib.crc32(encoded[i:i + n]) for i in range(len(encoded) - n + 1)}
    return np.array(sorted(grams), dtype=np.uint32)


# --------------------------------------------------------------------------- sets


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted unique arrays (0 when both are empty)."""
    if len(a) == 0 or len(b) == 0:
        return 0.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)
