"""Drawing the sample web's images: a coloured shape on a coloured, textured background.

The captions say what is drawn ("a red circle on a blue background"), so a
tiny CLIP trained on the sample web can learn colours and shapes. A few random
texture strokes make every image distinct for the near-duplicate checks.
"""

from __future__ import annotations

import io
import math
import random

from PIL import Image, ImageDraw

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 60, 220),
    "yellow": (240, 220, 30),
    "orange": (250, 140, 20),
    "purple": (130, 40, 170),
    "black": (15, 15, 15),
    "white": (245, 245, 245),
}
SHAPES = ("circle", "square", "triangle", "star", "cross", "diamond")


def _polygon(shape: str, cx: float, cy: float, r: float, turn: float) -> list[tuple[float, float]]:
    if shape == "triangle":
        corners = [(1.0, a) for a in (90, 210, 330)]
    elif shape == "diamond":
        corners = [(1.0, a) for a in (0, 90, 180, 270)]
    elif shape == "star":
        corners = [(1.0 if i % 2 == 0 else 0.45, 90 + 36 * i) for i in range(10)]
    else:
        raise ValueError(shape)
    return [
        (cx + r * k * math.cos(math.radians(a + turn)), cy - r * k * math.sin(math.radians(a + turn)))
        for k, a in corners
    ]


def draw_shape(shape: str, colour: str, background: str, size: tuple[int, int], seed: int) -> Image.Image:
    """Render one image deterministically from its parameters and ``seed``."""
    rng = random.Random(seed)
    width, height = size
    image = Image.new("RGB", size, COLOURS[background])
    pen = ImageDraw.Draw(image)
    # Texture: faint strokes in a shade of the background, different for every seed.
    base = COLOURS[background]
    for _ in range(rng.randint(4, 9)):
        shade = tuple(max(0, min(255, c + rng.randint(-45, 45))) for c in base)
        x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
        x1, y1 = x0 + rng.uniform(-width, width) / 2, y0 + rng.uniform(-height, height) / 2
        pen.line([(x0, y0), (x1, y1)], fill=shade, width=rng.randint(2, max(3, min(size) // 25)))
    r = min(width, height) * rng.uniform(0.22, 0.34)
    cx = rng.uniform(r + 2, width - r - 2)
    cy = rng.uniform(r + 2, height - r - 2)
    fill = COLOURS[colour]
    if shape == "circle":
        pen.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "square":
        pen.rectangle([cx - r * 0.85, cy - r * 0.85, cx + r * 0.85, cy + r * 0.85], fill=fill)
    elif shape == "cross":
        arm = r * 0.32
        pen.rectangle([cx - r, cy - arm, cx + r, cy + arm], fill=fill)
        pen.rectangle([cx - arm, cy - r, cx + arm, cy + r], fill=fill)
    else:
        pen.polygon(_polygon(shape, cx, cy, r, rng.uniform(-12, 12)), fill=fill)
    return image


def encode(image: Image.Image, fmt: str, quality: int = 90) -> bytes:
    """JPEG (``jpg``) or PNG (``png``) bytes of ``image``; deterministic for the same pixels."""
    buffer = io.BytesIO()
    if fmt == "png":
        image.save(buffer, format="PNG", optimize=False)
    else:
        image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
