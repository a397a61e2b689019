"""Synthetic near-duplicate data for the quality tests and the benchmark.

``distinct_image(seed)`` draws a genuinely distinct picture for every seed (a
random two-colour gradient, 6-16 random ellipses, boxes, polygons and thick
lines in random colours, sometimes blurred), unlike the sample web's shapes,
where two red circles on blue look alike by design. ``transformed_copy``
applies the transformations the overlap check must survive: a crop of up to
8% of each side's length (split at random between the two edges), a resize by
0.4-2x, small brightness and saturation shifts, JPEG quality 40-95, and
optionally the download stage's ``border`` resize (fit in 256 px, pad to a
white square).
"""

from __future__ import annotations

import io
import random

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter


def distinct_image(seed: int, size: tuple[int, int] | None = None) -> Image.Image:
    rng = random.Random(seed)
    width = size[0] if size else rng.randint(200, 480)
    height = size[1] if size else rng.randint(200, 480)
    start = np.array([rng.randint(0, 255) for _ in range(3)], np.float32)
    end = np.array([rng.randint(0, 255) for _ in range(3)], np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = np.cos(angle) * xs / width + np.sin(angle) * ys / height
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
    pixels = start * (1 - ramp[..., None]) + end * ramp[..., None]
    image = Image.fromarray(pixels.astype(np.uint8), "RGB")
    pen = ImageDraw.Draw(image)
    for _ in range(rng.randint(6, 16)):
        colour = tuple(rng.randint(0, 255) for _ in range(3))
        kind = rng.random()
        x0, y0 = rng.uniform(-0.1, 1.0) * width, rng.uniform(-0.1, 1.0) * height
        x1, y1 = x0 + rng.uniform(0.05, 0.5) * width, y0 + rng.uniform(0.05, 0.5) * height
        if kind < 0.35:
            pen.ellipse([x0, y0, x1, y1], fill=colour)
        elif kind < 0.6:
            pen.rectangle([x0, y0, x1, y1], fill=colour)
        elif kind < 0.85:
            pen.polygon([(rng.uniform(0, width), rng.uniform(0, height)) for _ in range(rng.randint(3, 6))],
                        fill=colour)
        else:
            pen.line([(rng.uniform(0, width), rng.uniform(0, height)) for _ in range(rng.randint(2, 5))],
                     fill=colour, width=rng.randint(2, 12))
    if rng.random() < 0.5:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0)))
    return image


def jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def letterbox(image: Image.Image, side: int = 256) -> Image.Image:
    """The download stage's ``border`` resize: fit in ``side`` x ``side``, pad with white."""
    scale = side / max(image.size)
    inner = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BILINEAR)
    canvas = Image.new("RGB", (side, side), (255, 255, 255))
    canvas.paste(inner, ((side - inner.width) // 2, (side - inner.height) // 2))
    return canvas


def transformed_copy(image: Image.Image, seed: int, max_crop: float = 0.08, scale: tuple[float, float] = (0.4, 2.0),
                     quality: tuple[int, int] = (40, 95), border: bool = False) -> bytes:
    """JPEG bytes of a transformed copy of ``image`` (see the module docstring)."""
    rng = random.Random(seed)
    width, height = image.size
    crop_x, crop_y = rng.uniform(0, max_crop), rng.uniform(0, max_crop)
    left, top = rng.uniform(0, crop_x), rng.uniform(0, crop_y)
    box = (round(left * width), round(top * height),
           round(width - (crop_x - left) * width), round(height - (crop_y - top) * height))
    image = image.crop(box)
    factor = rng.uniform(*scale)
    image = image.resize((max(8, round(image.width * factor)), max(8, round(image.height * factor))), Image.BILINEAR)
    if rng.random() < 0.5:
        image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.9, 1.1))
    if rng.random() < 0.5:
        image = ImageEnhance.Color(image).enhance(rng.uniform(0.85, 1.15))
    if border:
        image = letterbox(image)
    return jpeg_bytes(image, quality=rng.randint(*quality))
