"""Image checks and resizing: pure functions over bytes, no network."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageChops, ImageStat

from wit_pipeline.download.images import DEFAULT_MAX_PIXELS, ImageChecks, ImageRejected, load_image
from wit_pipeline.download.resize import RESIZE_MODES, draft_size, encode_jpeg, final_size, resize
from wit_pipeline.sampleweb import render

CHECKS = ImageChecks(min_image_size=200, max_aspect_ratio=3.0, max_pixels=DEFAULT_MAX_PIXELS)


def _bytes(image: Image.Image, fmt: str = "JPEG", **save) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def _reason(data: bytes, checks: ImageChecks = CHECKS) -> str:
    with pytest.raises(ImageRejected) as caught:
        load_image(data, checks)
    return caught.value.reason


def test_exif_orientation_is_applied_and_reported_as_displayed_size():
    # Stored 400x240 with orientation 6 (rotate 90° clockwise): displayed 240x400, left half red stored.
    stored = Image.new("RGB", (400, 240), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 200, 240))
    exif = Image.Exif()
    exif[0x0112] = 6
    image, size = load_image(_bytes(stored, exif=exif.tobytes()), CHECKS)
    assert size == (240, 400) and image.size == (240, 400)
    top, bottom = image.getpixel((120, 20)), image.getpixel((120, 380))
    assert top[0] > 200 and top[2] < 60        # the stored left (red) half is now on top
    assert bottom[2] > 200 and bottom[0] < 60


@pytest.mark.parametrize("mode,fmt", [("CMYK", "JPEG"), ("L", "PNG"), ("RGBA", "PNG"), ("P", "PNG"),
                                      ("LA", "PNG"), ("I;16", "PNG")])
def test_every_mode_becomes_rgb(mode, fmt):
    source = Image.new("RGBA", (300, 260), (10, 200, 30, 0 if mode in ("RGBA", "LA") else 255))
    image = source.convert(mode) if mode != "P" else source.convert("RGB").convert("P")
    decoded, size = load_image(_bytes(image, fmt), CHECKS)
    assert decoded.mode == "RGB" and size == (300, 260)
    if mode in ("RGBA", "LA"):
        assert decoded.getpixel((5, 5)) == (255, 255, 255)    # transparent composited on white


def test_sample_web_fault_bodies_get_their_declared_reasons():
    jpeg = render.valid_jpeg()
    assert _reason(jpeg[: len(jpeg) // 2]) == "decode_error"
    assert _reason(render.corrupt_jpeg()) == "decode_error"
    assert _reason(render.HTML_AS_IMAGE) == "not_an_image"
    assert _reason(b"") == "not_an_image"
    assert _reason(render.decompression_bomb_png()) == "decompression_bomb"


def test_bomb_refused_from_the_declared_size_before_decoding():
    # 12000 x 12000 (144 Mpx) is under Pillow's own hard limit but over our default; a small limit too.
    data = render.decompression_bomb_png(side=12000)
    assert _reason(data) == "decompression_bomb"
    small = _bytes(Image.new("RGB", (400, 400)), "PNG")
    tight = ImageChecks(min_image_size=200, max_aspect_ratio=3.0, max_pixels=100_000)
    assert _reason(small, tight) == "decompression_bomb"


def test_size_and_aspect_filters():
    assert _reason(_bytes(Image.new("RGB", (199, 500)))) == "image_too_small"
    assert _reason(_bytes(Image.new("RGB", (700, 230)))) == "bad_aspect_ratio"
    _, size = load_image(_bytes(Image.new("RGB", (600, 200))), CHECKS)   # exactly 3:1 and 200 px pass
    assert size == (600, 200)
    _, size = load_image(_bytes(Image.new("RGB", (50, 50))), ImageChecks(min_image_size=0, max_aspect_ratio=100,
                                                                         max_pixels=DEFAULT_MAX_PIXELS))
    assert size == (50, 50)


@pytest.mark.parametrize("mode", RESIZE_MODES)
@pytest.mark.parametrize("width,height", [(640, 480), (300, 900), (256, 256), (120, 90)])
def test_resize_modes_geometry(mode, width, height):
    out = resize(Image.new("RGB", (width, height), (0, 0, 0)), 256, mode)
    assert out.size == final_size(width, height, 256, mode)
    if mode in ("border", "center_crop"):
        assert out.size == (256, 256)
    elif mode in ("keep_ratio",):
        assert min(out.size) == 256
    elif mode == "keep_ratio_largest":
        assert max(out.size) == 256
    else:
        assert out.size == (width, height)
    if mode == "border" and width != height:
        assert out.getpixel((0, 0)) == (255, 255, 255)        # white padding, image centred
        assert out.getpixel((128, 128)) == (0, 0, 0)


def test_draft_decode_gives_the_same_output_as_a_full_decode():
    picture = render.draw_shape("star", "red", "blue", (1200, 900), seed=3)
    data = encode_jpeg(picture)
    assert draft_size(1200, 900, 256, "border") == (256, 192)
    for mode in ("border", "center_crop", "keep_ratio"):
        drafted, size = load_image(data, CHECKS, image_size=256, resize_mode=mode)
        full, _ = load_image(data, CHECKS)
        assert drafted.size[0] < 1200                         # decoded at reduced scale
        a = resize(drafted, 256, mode, original_size=size)
        b = resize(full, 256, mode, original_size=size)
        assert a.size == b.size
        assert max(ImageStat.Stat(ImageChops.difference(a, b)).mean) < 4.0   # mean abs. difference per channel
