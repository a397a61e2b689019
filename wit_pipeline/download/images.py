"""Image checks: decode safely within a memory budget, apply EXIF orientation, convert to RGB, filter by size.

Pure functions over bytes; the download stage calls ``load_resized`` for every
fetched body and records the ``ImageRejected.reason`` of any refusal:

- ``not_an_image``: the bytes are no image format we know (an HTML page served as image/jpeg)
- ``decompression_bomb``: the *declared* pixel count is over ``max_pixels``, or the decode's estimated
  memory is over the whole per-process decode budget (both checked before decoding)
- ``decode_error``: an image format's signature, but the data does not decode (truncated, corrupt)
- ``image_too_small``: the shorter side is under ``min_image_size``
- ``bad_aspect_ratio``: long side / short side is over ``max_aspect_ratio``
- ``bad_bbox``: the row's ``--blur-bbox-col`` cell is not a list of boxes (``resize.parse_boxes``): the image
  is not stored, since what it should hide cannot be found

``load_resized`` also takes the two steps that need the decoded image before it is resized: ``inspect``
(called with the upright RGB image, raising to refuse it: the ``--blocklist-hashes`` PDQ check) and
``boxes`` (``--blur-bbox-col``: ``resize.blur_boxes`` on the image as decoded, before resizing; a box's
filtered neighbourhood is a few crops of at most the image's size, outside the decode estimate).

Sizes are checked on the header alone (Pillow's lazy ``Image.open`` reads
PNG's IHDR, GIF's logical screen, WebP's canvas ...), so a rejected image costs
no decode. Only frame 0 of an animated GIF, APNG or WebP is ever decoded.

Memory: a small file can declare a huge image (a flat 9459x9459 RGBA PNG is
~350 KB and decodes to ~360 MB, twice that while it becomes RGB). ``decode_cost``
estimates a decode's peak bytes from the header: the two largest consecutive
full-size copies of the decode chain (decoded, upright, RGB), plus a progressive
JPEG's coefficient buffers. A decode holds that many bytes of the process's
``DecodeBudget`` from before ``load()`` until its output exists (``load_resized``:
the resized image), each intermediate freed as soon as the next exists. A decode
that does not fit waits (its thread only); one whose estimate alone is over the
whole budget is refused. JPEGs are decoded at draft scale (1/2 .. 1/8) when the
output is smaller; other formats have no reduced decode, so the budget bounds them.
An ICO is the one format Pillow decodes as it opens it: ``check_icon`` reads the
sizes of the images inside first and refuses any over 256 px a side.

``exif_json`` is the sample's ``exif`` (``--save-exif``): img2dataset's format, exifread's tags
(``{"Image Make": "Canon", ...}``) as JSON text, read from the metadata blocks alone (exifread parses
tags, never pixels, so it costs no decode and no budget).
"""

from __future__ import annotations

import io
import json
import logging
import struct
import threading
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import exifread
from PIL import Image, ImageOps

from .resize import Box, blur_boxes, draft_size, resize

IMAGE_REASONS = ("not_an_image", "decompression_bomb", "decode_error", "image_too_small", "bad_aspect_ratio",
                 "bad_bbox")
DEFAULT_MAX_PIXELS = 89_478_485          # Pillow's own MAX_IMAGE_PIXELS (~0.25 GiB of RGBA)
DEFAULT_DECODE_MEMORY = 1 << 30          # bytes of decodes in flight per process; a max_pixels RGBA needs ~0.7 GiB

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
# Bytes per pixel Pillow allocates for a mode: multi-band 8-bit modes (RGB included) take 4, like 32-bit ones.
_PIXEL_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2,
                "BGR;15": 2, "BGR;16": 2, "BGR;24": 3}
_WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")      # scaled to 8 bits before becoming RGB
_WHITE = (255, 255, 255)
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_ICO_MAX_SIDE = 256                      # the ICO directory cannot declare more; Pillow decodes an icon in open()
# Pillow allocates a large image in blocks (16 MiB by default). glibc serves a freed block's size from its
# per-thread heaps afterwards (its mmap threshold adapts up to 32 MiB), where freed memory mostly stays
# resident: with many decoding threads the process grows far past what is alive. Blocks over 32 MiB are
# always mmap()ed and go back to the system when freed, so resident memory follows the budget.
_PILLOW_BLOCK_SIZE = 64 << 20


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
    decode_memory: int = DEFAULT_DECODE_MEMORY   # the process's DecodeBudget, bytes


# -- the per-process decode budget -----------------------------------------------------------------------

def _mib(nbytes: int) -> str:
    return f"{nbytes / (1 << 20):.0f} MiB"


class DecodeBudget:
    """Bytes of image decodes a process allows in flight: ``hold(n)`` waits until ``n`` fits, first come first
    served (a large decode is not starved by small ones), and refuses an ``n`` over the whole budget."""

    def __init__(self, total: int):
        self.total = total
        self._used = 0
        self._queue: deque[object] = deque()
        self._changed = threading.Condition()

    @property
    def used(self) -> int:
        with self._changed:
            return self._used

    @contextmanager
    def hold(self, nbytes: int) -> Iterator[None]:
        if nbytes > self.total:
            raise ImageRejected("decompression_bomb", f"decoding needs ~{_mib(nbytes)}, over the whole decode "
                                f"budget of {_mib(self.total)} per process (--decode-memory)")
        ticket = object()
        with self._changed:
            self._queue.append(ticket)
            self._changed.wait_for(lambda: self._queue[0] is ticket and self._used + nbytes <= self.total)
            self._queue.popleft()
            self._used += nbytes
            self._changed.notify_all()          # the next in line may fit as well
        try:
            yield
        finally:
            with self._changed:
                self._used -= nbytes
                self._changed.notify_all()


_budgets: dict[int, DecodeBudget] = {}
_budgets_lock = threading.Lock()


def process_budget(total: int) -> DecodeBudget:
    """The process's one budget of ``total`` bytes, shared by every thread (and every shard) decoding in it."""
    with _budgets_lock:
        if Image.core.get_block_size() < _PILLOW_BLOCK_SIZE:
            Image.core.set_block_size(_PILLOW_BLOCK_SIZE)
        return _budgets.setdefault(total, DecodeBudget(total))


# -- checks ----------------------------------------------------------------------------------------------

def looks_like_image(data: bytes) -> bool:
    head = data[:16]
    if head.startswith(_SIGNATURES):
        return True
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return True
    return head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis", b"heic", b"heix", b"mif1")


def check_icon(data: bytes) -> None:
    """Refuse an ICO holding an image over 256 px a side. Pillow decodes an icon as it opens it, before any check,
    at the size of the PNG or BMP inside, whatever the directory declares: so those headers are read here."""
    count = int.from_bytes(data[4:6], "little")
    for index in range(count):
        entry = data[6 + 16 * index:22 + 16 * index]
        if len(entry) < 16:
            return                                         # truncated: Pillow's open refuses it
        offset = int.from_bytes(entry[12:16], "little")
        head = data[offset:offset + 24]
        if head.startswith(_PNG_MAGIC) and len(head) == 24:
            width, height = struct.unpack(">II", head[16:24])
        elif len(head) >= 12:                              # BMP: height counts the image and its mask
            width, height = (abs(v) for v in struct.unpack("<ii", head[4:12]))
            height //= 2
        else:
            continue
        if max(width, height) > _ICO_MAX_SIDE:
            raise ImageRejected("decompression_bomb", f"icon {index} holds a {width}x{height} image; icons are at "
                                f"most {_ICO_MAX_SIDE}x{_ICO_MAX_SIDE}")


def check_size(width: int, height: int, checks: ImageChecks) -> None:
    """Raise ``ImageRejected`` when a (displayed) size fails the size or shape filters."""
    short, long = min(width, height), max(width, height)
    if short < checks.min_image_size:
        raise ImageRejected("image_too_small", f"{width}x{height}, shorter side < {checks.min_image_size}")
    if short == 0 or long / short > checks.max_aspect_ratio:
        raise ImageRejected("bad_aspect_ratio", f"{width}x{height}, ratio > {checks.max_aspect_ratio:g}")


# -- conversion to RGB: one full-size output per step, so a step's input can be freed once it returns ----

Step = Callable[[Image.Image], Image.Image]


def _converter(mode: str) -> Step:
    return lambda image: image.convert(mode)


def _to_8_bits(image: Image.Image) -> Image.Image:
    return image.point(lambda v: v * (1 / 256))


def _on_white(image: Image.Image) -> Image.Image:
    """Composite an RGBA or LA image on white (as img2dataset does), straight into an RGB canvas."""
    canvas = Image.new("RGB", image.size, _WHITE)
    canvas.paste(image, mask=image)
    return canvas


def rgb_steps(mode: str, transparency: bool) -> list[tuple[str, Step]]:
    """``(output mode, step)`` turning an image of ``mode`` into RGB; ``transparency``: a palette image's
    ``info["transparency"]``. Transparency is composited on white; CMYK, L, P, I;16 ... converted."""
    if mode == "RGB":
        return []
    if mode in ("RGBA", "LA"):
        return [("RGB", _on_white)]
    if mode in ("RGBa", "La", "PA") or (mode == "P" and transparency):
        return [("RGBA", _converter("RGBA")), ("RGB", _on_white)]
    if mode in _WIDE_MODES:
        return [(mode, _to_8_bits), ("L", _converter("L")), ("RGB", _converter("RGB"))]
    return [("RGB", _converter("RGB"))]


def to_rgb(image: Image.Image) -> Image.Image:
    """An RGB version of ``image`` (see ``rgb_steps``)."""
    for _, step in rgb_steps(image.mode, "transparency" in image.info):
        image = step(image)
    return image


def _pixel_bytes(mode: str) -> int:
    return _PIXEL_BYTES.get(mode, 4)


def _jpeg_coefficient_bytes(image: Image.Image, stored: tuple[int, int]) -> int:
    """A progressive JPEG keeps every component's DCT coefficients (2 bytes each) of the *stored* size in
    memory, whatever the draft scale; a baseline JPEG decodes row by row."""
    if not image.info.get("progressive"):
        return 0
    layers = getattr(image, "layer", None) or [("", 1, 1, 0)] * max(1, len(image.getbands()))
    most = max(h * v for _, h, v, _ in layers) or 1
    return stored[0] * stored[1] * 2 * sum(h * v for _, h, v, _ in layers) // most


def decode_cost(image: Image.Image, transposed: bool, stored: tuple[int, int] | None = None) -> int:
    """Estimated peak bytes to decode a lazily opened ``image`` (after any draft) into upright RGB: the two
    largest consecutive full-size images of the chain (decoded, transposed, each ``rgb_steps`` output), which
    are alive together while one becomes the next. ``stored``: the size before any draft."""
    chain = [_pixel_bytes(image.mode)] * (2 if transposed else 1)
    chain += [_pixel_bytes(mode) for mode, _ in rgb_steps(image.mode, "transparency" in image.info)]
    peak = max(a + b for a, b in zip(chain, chain[1:], strict=False)) if len(chain) > 1 else chain[0]
    width, height = image.size
    extra = _jpeg_coefficient_bytes(image, stored or image.size) if image.format in ("JPEG", "MPO") else 0
    return width * height * peak + extra


# -- decoding --------------------------------------------------------------------------------------------

def _orientation(image: Image.Image) -> int:
    try:
        # The base class reads EXIF from the header; PngImageFile.getexif would decode the whole image first
        # to look for an eXIf chunk after the pixel data (an orientation there is ignored: stored = displayed).
        return int(Image.Image.getexif(image).get(0x0112, 1) or 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block is not a broken image
        return 1


@dataclass
class _Opened:
    """A checked, lazily opened image: nothing decoded yet."""
    image: Image.Image | None
    orientation: int
    size: tuple[int, int]                # displayed original size (after EXIF orientation)
    cost: int                            # decode_cost: bytes to hold from the budget

    def upright_rgb(self) -> Image.Image:
        """Decode (frame 0 only) into an upright RGB image. Hands over the one reference to the image, so each
        full-size intermediate is freed as soon as the next exists."""
        image, self.image = self.image, None
        image.load()
        if self.orientation != 1:
            image = ImageOps.exif_transpose(image)
        for _, step in rgb_steps(image.mode, "transparency" in image.info):
            image = step(image)
        return image


def _bad_data(exc: Exception) -> ImageRejected:
    if isinstance(exc, Image.DecompressionBombError):
        return ImageRejected("decompression_bomb", str(exc))
    return ImageRejected("decode_error", f"{type(exc).__name__}: {exc}"[:300])


def _open_checked(data: bytes, checks: ImageChecks, image_size: int | None, resize_mode: str,
                  min_side: int = 0) -> _Opened:
    """Open lazily and run every header check; JPEGs get their draft scale (longer side >= ``min_side``)."""
    if not looks_like_image(data):
        raise ImageRejected("not_an_image", f"unknown signature {data[:8]!r}")
    if data.startswith(b"\x00\x00\x01\x00"):
        check_icon(data)
    try:
        image = Image.open(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for bad headers
        raise _bad_data(exc) from exc
    stored_w, stored_h = image.size
    if stored_w * stored_h > checks.max_pixels:
        raise ImageRejected("decompression_bomb", f"declared {stored_w}x{stored_h} > {checks.max_pixels} pixels")
    orientation = _orientation(image)
    size = (stored_h, stored_w) if orientation in _TRANSPOSED else (stored_w, stored_h)
    check_size(*size, checks)
    try:
        if image_size and image.format == "JPEG":
            target = draft_size(stored_w, stored_h, image_size, resize_mode, min_side)
            if target is not None:
                image.draft(None, target)
        cost = decode_cost(image, orientation != 1, (stored_w, stored_h))
    except Exception as exc:  # noqa: BLE001
        raise _bad_data(exc) from exc
    return _Opened(image, orientation, size, cost)


def load_image(data: bytes, checks: ImageChecks, *, image_size: int | None = None,
               resize_mode: str = "border") -> tuple[Image.Image, tuple[int, int]]:
    """Decode ``data`` into an upright RGB image; returns ``(image, (original_width, original_height))``.

    The original size is the displayed one (after EXIF orientation). With
    ``image_size``, JPEGs are decoded directly at the smallest 1/2, 1/4 or 1/8
    scale that still covers what ``resize_mode`` needs (Pillow's ``draft``).
    The decode holds the process's budget until it returns; the full-size image
    the caller then keeps is outside it (the download uses ``load_resized``).
    Raises ``ImageRejected`` for anything the checks refuse.
    """
    opened = _open_checked(data, checks, image_size, resize_mode)
    with process_budget(checks.decode_memory).hold(opened.cost):
        try:
            return opened.upright_rgb(), opened.size
        except Exception as exc:  # noqa: BLE001
            raise _bad_data(exc) from exc


def load_resized(data: bytes, checks: ImageChecks, image_size: int, resize_mode: str, *,
                 inspect: Callable[[Image.Image], None] | None = None, inspect_side: int = 0,
                 boxes: tuple[Box, ...] = ()) -> tuple[Image.Image, tuple[int, int]]:
    """``load_image``, ``inspect`` (its exceptions pass through: a refusal, not a decode error; a JPEG is
    decoded with its longer side at least ``inspect_side`` for it), ``boxes`` blurred, then ``resize``; the
    budget held until the resized image exists and the full-size one is freed.
    Returns ``(resized, (original_width, original_height))``."""
    opened = _open_checked(data, checks, image_size, resize_mode, inspect_side if inspect is not None else 0)
    with process_budget(checks.decode_memory).hold(opened.cost):
        try:
            image = opened.upright_rgb()
        except Exception as exc:  # noqa: BLE001
            raise _bad_data(exc) from exc
        if inspect is not None:
            inspect(image)
        try:
            if boxes:
                image = blur_boxes(image, boxes)
            image = resize(image, image_size, resize_mode, original_size=opened.size)
        except Exception as exc:  # noqa: BLE001
            raise _bad_data(exc) from exc
    return image, opened.size


# exifread warns for every file without EXIF ("File format not recognized"): most web images have none.
logging.getLogger("exifread").setLevel(logging.ERROR)


def exif_json(body: bytes) -> str | None:
    """The EXIF tags of an image file as img2dataset writes them (JSON text of ``{tag: str(value).strip()}``,
    ``"{}"`` when there are none), or ``None`` when the metadata does not parse."""
    try:
        tags = exifread.process_file(io.BytesIO(body), details=False)
        return json.dumps({name: str(value).strip() for name, value in tags.items() if value is not None})
    except Exception:  # noqa: BLE001 - a broken EXIF block is not a broken image (img2dataset: None)
        return None
