"""Image bytes of the sample web: site images, their near-duplicate copies, eval images, planted copies and
fault bodies."""

from __future__ import annotations

import io
import random
import struct
import zlib

from PIL import Image

from .draw import draw_shape, encode
from .site import EvalImage, Site, WebImage, copy_geometry


def eval_image(image: EvalImage) -> Image.Image:
    return draw_shape(image.shape, image.colour, image.background, image.size, image.draw_seed)


def eval_image_bytes(image: EvalImage) -> bytes:
    return encode(eval_image(image), "jpg", quality=95)


def planted_copy(site: Site, image: WebImage) -> Image.Image:
    """The web's copy of an eval image: resized 0.5-1.6x, cropped up to 6% a side, later re-encoded."""
    source = next(e for e in site.eval_images if e.eval_id == image.eval_copy_of)
    rng = random.Random(site.seed * 7919 + image.id)
    picture = eval_image(source)
    w, h = picture.size
    left, top = int(w * rng.uniform(0, 0.06)), int(h * rng.uniform(0, 0.06))
    right, bottom = w - int(w * rng.uniform(0, 0.06)), h - int(h * rng.uniform(0, 0.06))
    picture = picture.crop((left, top, right, bottom))
    scale = rng.uniform(0.5, 1.6)
    return picture.resize((max(32, int(picture.width * scale)), max(32, int(picture.height * scale))),
                          Image.BICUBIC)


def drawn_image(site: Site, image: WebImage) -> Image.Image:
    """A site image as drawn from its own parameters (neither kind of copy)."""
    return draw_shape(image.shape, image.colour, image.background, (image.width, image.height),
                      site.seed * 1_000_003 + image.id)


def near_duplicate(site: Site, image: WebImage) -> tuple[Image.Image, int]:
    """A near-duplicate copy of another site image (``image.copy_of``) and its JPEG quality: cropped,
    resized and re-encoded as ``site.copy_geometry`` says."""
    box, size, quality = copy_geometry(site.seed, image.id, (site.images[image.copy_of].width,
                                                             site.images[image.copy_of].height))
    picture = drawn_image(site, site.images[image.copy_of]).crop(box)
    return picture.resize(size, Image.BICUBIC), quality


def web_image_bytes(site: Site, image: WebImage) -> bytes:
    if image.eval_copy_of is not None:
        quality = random.Random(site.seed * 104729 + image.id).randint(50, 90)
        return encode(planted_copy(site, image), image.fmt, quality=quality)
    if image.copy_of is not None:
        picture, quality = near_duplicate(site, image)
        return encode(picture, image.fmt, quality=quality)
    return encode(drawn_image(site, image), image.fmt)


def valid_jpeg(seed: int = 0) -> bytes:
    return encode(draw_shape("circle", "white", "black", (320, 240), seed), "jpg")


def signal_jpeg(kind: str) -> bytes:
    """A valid JPEG of its own for the opt-out fault ``kind``: distinct bytes per kind, so a test can tell
    whether any of them was stored."""
    seed = zlib.crc32(kind.encode())
    shape = ("circle", "square", "star")[seed % 3]
    return encode(draw_shape(shape, "white", "black", (320 + seed % 64, 240 + seed % 48), seed), "jpg")


def logo_png() -> bytes:
    return encode(draw_shape("star", "yellow", "black", (64, 64), 1), "png")


def pixel_gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("P", (1, 1)).save(buffer, format="GIF")
    return buffer.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def decompression_bomb_png(side: int = 20000) -> bytes:
    """A valid 1-bit grey PNG of side x side pixels: tiny on the wire, huge once decoded."""
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    compressor = zlib.compressobj(9)
    parts = [compressor.compress(row * 1000) for _ in range(side // 1000)]
    parts.append(compressor.compress(row * (side % 1000)))
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", b"".join(parts))
            + _png_chunk(b"IEND", b""))


def corrupt_jpeg(seed: int = 0) -> bytes:
    rng = random.Random(seed)
    return valid_jpeg(seed)[:200] + bytes(rng.randrange(256) for _ in range(6000))


HTML_AS_IMAGE = b"<!DOCTYPE html><html><head><title>Not an image</title></head><body>Sorry.</body></html>\n"
