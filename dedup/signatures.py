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
   and aspect changes from small crops are normalised away. Every block below
   is made of 2x2-pixel cells, so the resize goes straight to the 24x24 cell
   sums (``to_canvas``).
4. Regions at three scales, each a 3x3 grid of blocks: blocks of 16 px (the
   whole canvas), blocks of 8 px (24 px regions every 4 px, 49 of them) and
   blocks of 4 px (12 px regions every 2 px, 361 of them). Regions overlap, so
   a crop that shifts the content still leaves most regions close to one of the
   original's.
5. Each region gets a 12-bit difference hash: the signs of the 6 horizontal
   and 6 vertical differences between adjacent block means. Signs ignore
   brightness, contrast and small colour shifts. Flat regions (mean absolute
   difference under ``FLAT_LEVEL`` levels) carry no information and are left out.
   Block means within ``TIE_LEVEL`` of each other (two blocks of one flat
   colour) count as equal, bit 0: otherwise float rounding, which differs
   with the order of the arithmetic and so between BLAS builds and machines,
   would pick that bit, and eval and training sides could disagree on it.
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
import re
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
TIE_LEVEL = 0.01               # block means closer than this are equal: their difference's bit is 0
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


def _reason(exc: Exception) -> str:
    """Pillow's error in one line, without object addresses (``<_io.BytesIO object at 0x7f..>``), so the
    same input gives the same report."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", f"{exc.__class__.__name__}: {exc}".splitlines()[0])[:200]


# --------------------------------------------------------------------------- decoding


def decode_pixels(data: bytes) -> np.ndarray:
    """Decode image bytes to small (h, w, 3) uint8 YCbCr pixels, uniform borders trimmed (a view).

    Raises ``BadImage`` for anything Pillow cannot decode (truncated, not an
    image, zero-sized, decompression bomb). The pixels stay uint8; ``to_canvas``
    converts them once, as it resizes.
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
            # Pillow's own 4-byte pixels (Y, Cb, Cr, pad): as uint32 they transpose in one fast copy (3-byte
            # pixels are many times slower), which the row measure in _trim_box needs.
            raw = image.tobytes("raw", "YCbCrX")
            width, height = image.size
    except Exception as exc:  # Pillow raises many types (OSError, SyntaxError, ValueError, ...)
        raise BadImage(_reason(exc)) from None
    if height < 2 or width < 2:
        raise BadImage(f"image too small to sign: {width}x{height}")
    packed = np.frombuffer(raw, np.uint32).reshape(height, width)
    by_row = packed.view(np.uint8).reshape(height, width, 4)
    by_column = np.ascontiguousarray(packed.T).view(np.uint8).reshape(width, height, 4)
    top, bottom, left, right = _trim_box(by_row, by_column)
    return by_row[top:bottom, left:right, :3]


def to_canvas(pixels: np.ndarray) -> np.ndarray:
    """Resize (h, w, 3) pixels to the canvas, as (3, CANVAS/2, CANVAS/2) float32 sums of its 2x2-pixel cells.

    Every region block is a whole number of cells (the smallest block is 4 px,
    taken every 2 px), so the 48 px canvas itself is never needed: summing
    pixel pairs is folded into the resize matrices, which halves the
    arithmetic and the array sizes after it.
    """
    height, width, _ = pixels.shape
    planes = np.ascontiguousarray(pixels.transpose(2, 0, 1), dtype=np.float32)   # one copy: transpose + convert
    return _cell_matrix(height) @ planes @ _cell_matrix(width).T


def decode_canvas(data: bytes) -> np.ndarray:
    """Image bytes -> the canvas cells (``to_canvas``) the regions are cut from."""
    return to_canvas(decode_pixels(data))


def _resample(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) float64 matrix of an antialiased linear (triangle) resize, like Pillow's BILINEAR."""
    scale = n_in / n_out
    support = max(scale, 1.0)
    centres = (np.arange(n_out) + 0.5) * scale
    weights = np.maximum(0.0, 1.0 - np.abs(np.arange(n_in)[None, :] + 0.5 - centres[:, None]) / support)
    return weights / weights.sum(axis=1, keepdims=True)


@lru_cache(maxsize=1024)
def _cell_matrix(n_in: int) -> np.ndarray:
    """(CANVAS // 2, n_in) float32: resize n_in -> CANVAS, then add adjacent pixel pairs."""
    weights = _resample(n_in, CANVAS)
    return (weights[0::2] + weights[1::2]).astype(np.float32)


def _busy_lines(pixels: np.ndarray) -> np.ndarray:
    """For each column of (h, w, 4) pixels: does some channel (of the first three) span more than TRIM_TOLERANCE?"""
    # Reducing over the outermost axis is one vectorised elementwise pass; numpy's uint8 reductions over
    # an inner axis are many times slower, which is why rows are measured on the transposed pixels.
    spans = pixels.max(axis=0) - pixels.min(axis=0)          # max >= min: no uint8 wrap
    return (spans[:, :3] > TRIM_TOLERANCE).any(axis=1)


def _trim_box(by_row: np.ndarray, by_column: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) after dropping uniform border rows and columns.

    ``by_row`` is the (h, w, 4) image, ``by_column`` the same transposed, (w, h, 4).
    A line is uniform if every channel spans at most ``TRIM_TOLERANCE`` levels
    along it. If trimming would leave less than a quarter of either side (a
    nearly flat image), the image is kept whole.
    """
    height, width, _ = by_row.shape

    def _edges(busy: np.ndarray) -> tuple[int, int]:
        lines = np.flatnonzero(busy)
        if len(lines) == 0:
            return 0, len(busy)
        return int(lines[0]), int(lines[-1]) + 1

    top, bottom = _edges(_busy_lines(by_column))
    left, right = _edges(_busy_lines(by_row))
    if (bottom - top) * 4 < height or (right - left) * 4 < width or bottom - top < 2 or right - left < 2:
        return 0, height, 0, width
    return top, bottom, left, right


# --------------------------------------------------------------------------- image regions


@lru_cache(maxsize=None)
def _plan():
    """The matrix that maps the canvas cells to block sums and block differences, and for every region
    where its 12 differences sit in the product, its flatness limit, its tie level and its element tag.

    Rows of the matrix, for each scale: the block sums along one axis (a block every half block), then
    the differences of blocks two half-blocks (one block) apart. ``M @ cells @ M.T`` thus holds, for
    every scale, block sums x block differences (horizontal differences) and block differences x block
    sums (vertical ones): every region's 12 differences are entries of that one product.
    """
    sums, diffs = [], []
    for block, _ in SCALES:
        width, step = block // 2, block // 4          # in cells of 2 canvas px
        count = CANVAS // (block // 2) - 1            # blocks along a side, a half block apart
        rows = np.zeros((count, CANVAS // 2), np.float64)
        for k in range(count):
            rows[k, k * step:k * step + width] = 1.0
        sums.append(rows)
        diffs.append(rows[:-2] - rows[2:])            # block k minus block k + 2 half-blocks on
    matrix = np.concatenate(sums + diffs)
    side = len(matrix)
    sum_at = np.cumsum([0] + [len(s) for s in sums])
    diff_at = sum_at[-1] + np.cumsum([0] + [len(d) for d in diffs])

    gather, limits, ties, tags = [], [], [], []
    for scale, (block, channels) in enumerate(SCALES):
        unit = block // 2
        starts = np.arange(0, CANVAS // unit - 1 - 5 + 1)     # a region spans 3 blocks = 6 half-block units
        ys, xs = (m.ravel() for m in np.meshgrid(starts, starts, indexing="ij"))
        centre_y = (ys * unit + 1.5 * block) / CANVAS
        centre_x = (xs * unit + 1.5 * block) / CANVAS
        cell = (np.minimum(centre_y * CELLS, CELLS - 1).astype(np.int64) * CELLS
                + np.minimum(centre_x * CELLS, CELLS - 1).astype(np.int64))
        for channel in range(channels):
            base = channel * side * side
            columns = []
            for (i, j), _ in _PAIRS[:6]:           # block (i, j) minus block (i, j + 1): sums x differences
                columns.append(base + (sum_at[scale] + ys + 2 * i) * side + diff_at[scale] + xs + 2 * j)
            for (i, j), _ in _PAIRS[6:]:           # block (i, j) minus block (i + 1, j): differences x sums
                columns.append(base + (diff_at[scale] + ys + 2 * i) * side + sum_at[scale] + xs + 2 * j)
            gather.append(np.stack(columns, axis=1))
            limits.append(np.full(len(ys), FLAT_LEVEL * 12 * block * block, np.float32))
            ties.append(np.full(len(ys), TIE_LEVEL * block * block, np.float32))
            tags.append((scale << 6) | (cell << 2) | channel)
    return (matrix.astype(np.float32), np.concatenate(gather), np.concatenate(limits),
            np.concatenate(ties)[:, None], np.concatenate(tags).astype(np.uint32))


def image_codes(cells: np.ndarray) -> np.ndarray:
    """The region elements of a canvas (``to_canvas``' cells), as uint32, unsorted, may repeat.

    Two small matrix products give every block difference of every scale
    (``_plan``); each region then gathers its 12 in one indexing pass.
    """
    matrix, gather, limits, ties, tags = _plan()
    diffs = (matrix @ cells @ matrix.T).ravel()[gather]      # (regions, 12)
    # Row sums of 12 as matrix-vector products: numpy's reductions over a short inner axis are far slower.
    busy = np.abs(diffs) @ _ONES > limits
    dhash = ((diffs > ties).astype(np.float32) @ _BIT_WEIGHTS).astype(np.uint32)   # bit k: difference k > 0
    return ((dhash << 8) | tags)[busy]


def image_signature(data: bytes) -> np.ndarray:
    """Sorted unique region elements of an image (uint32). Raises ``BadImage``."""
    return np.unique(image_codes(decode_canvas(data)))


def stable_codes(pixels: np.ndarray, crop: float = STABLE_CROP, keep: int = STABLE_KEEP) -> np.ndarray:
    """The eval side's signature: region elements that survive small crops.

    The image is signed as it is and cropped by ``crop`` of each side at each
    of its four corners; an element is kept if at least ``keep`` of the five
    signatures have it. Elements that a few percent of cropping changes are
    the ones a training copy is least likely to share, so dropping them raises
    a copy's similarity (in the quality test the 2nd percentile rises from
    about 0.14 to 0.20) while distinct images stay as far apart. Only the eval
    side pays the five signings; training images are signed once.
    """
    height, width, _ = pixels.shape
    dy, dx = int(round(crop * height)), int(round(crop * width))
    views = [pixels]
    if dy >= 1 and dx >= 1:
        views += [pixels[dy:, dx:], pixels[dy:, :width - dx], pixels[:height - dy, dx:],
                  pixels[:height - dy, :width - dx]]
    else:
        keep = 1
    codes = np.concatenate([np.unique(image_codes(to_canvas(v))) for v in views])
    values, counts = np.unique(codes, return_counts=True)
    return values[counts >= keep]


def eval_image_signature(data: bytes) -> np.ndarray:
    """Sorted unique crop-stable region elements of an eval image (uint32). Raises ``BadImage``."""
    return stable_codes(decode_pixels(data))


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
