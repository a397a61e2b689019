"""Image checks and resizing: pure functions over bytes, no network."""

from __future__ import annotations

import io
import struct
import threading
import time
import zlib

import pytest
from PIL import Image, ImageChops, ImageStat, PngImagePlugin

from wit_pipeline.download import images
from wit_pipeline.download.images import (
    DEFAULT_DECODE_MEMORY,
    DEFAULT_MAX_PIXELS,
    DecodeBudget,
    ImageChecks,
    ImageRejected,
    decode_cost,
    load_image,
    load_resized,
    process_budget,
)
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


# -- decode memory: header estimates and the per-process budget ------------------------------------------

def _png_header(width: int, height: int, bit_depth: int = 8, colour_type: int = 6) -> bytes:
    """A PNG whose IHDR declares ``width`` x ``height`` and whose pixel data is cut short: only its header
    is usable, as in a body that declares more than it holds."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.fixture
def png_loads(monkeypatch) -> list[int]:
    """Counts full PNG decodes (``PngImageFile.load`` calls)."""
    calls: list[int] = []
    original = PngImagePlugin.PngImageFile.load

    def counted(self):
        calls.append(1)
        return original(self)

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", counted)
    return calls


@pytest.mark.parametrize("bit_depth,colour_type,per_pixel", [
    (8, 6, 8),        # RGBA: decoded + the RGB canvas it is composited onto
    (16, 6, 8),       # 16-bit RGBA decodes to 8-bit RGBA
    (8, 2, 4),        # RGB: the decoded image is the output
    (8, 4, 8),        # LA
    (8, 3, 5),        # palette: 1 byte, then RGB
    (16, 0, 5),       # 16-bit grey: I;16 -> I;16 scaled -> L -> RGB, the largest pair is L + RGB
])
def test_a_near_cap_png_costs_what_its_header_says(bit_depth, colour_type, per_pixel):
    side = 9459                                            # 89,472,681 pixels: just under the pixel cap
    assert side * side <= DEFAULT_MAX_PIXELS
    image = Image.open(io.BytesIO(_png_header(side, side, bit_depth, colour_type)))
    assert decode_cost(image, transposed=False) == side * side * per_pixel
    assert decode_cost(image, transposed=False) <= DEFAULT_DECODE_MEMORY    # admitted alone, under the budget


def test_a_transposed_or_progressive_decode_costs_more():
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = Image.open(io.BytesIO(_bytes(Image.new("RGB", (640, 480)), exif=exif.tobytes())))
    assert decode_cost(rotated, transposed=True) == 640 * 480 * 8        # the decoded and the upright copy
    progressive = Image.open(io.BytesIO(_bytes(Image.new("RGB", (1600, 1200)), progressive=True)))
    progressive.draft(None, (200, 150))
    assert progressive.size == (200, 150)
    # Coefficients of the stored size stay in memory whatever the draft scale (4:2:0: 1.5 components).
    assert decode_cost(progressive, transposed=False, stored=(1600, 1200)) == 200 * 150 * 4 + 1600 * 1200 * 3


def test_an_image_over_the_whole_budget_is_refused_before_decoding(png_loads):
    data = _bytes(Image.new("RGBA", (2000, 2000), (9, 9, 9, 128)), "PNG")     # decode cost 2000*2000*8 = 32 MB
    small = ImageChecks(min_image_size=200, max_aspect_ratio=3.0, max_pixels=DEFAULT_MAX_PIXELS,
                        decode_memory=16 << 20)
    with pytest.raises(ImageRejected) as caught:
        load_resized(data, small, 256, "border")
    assert caught.value.reason == "decompression_bomb" and "--decode-memory" in caught.value.message
    assert png_loads == []


def test_the_budget_is_held_until_the_resized_image_exists(monkeypatch):
    data = _bytes(Image.new("RGBA", (2000, 2000), (9, 9, 9, 128)), "PNG")
    checks = ImageChecks(min_image_size=200, max_aspect_ratio=3.0, max_pixels=DEFAULT_MAX_PIXELS,
                         decode_memory=48 << 20)
    budget = process_budget(48 << 20)
    held: list[int] = []

    def observed_resize(image, *args, **kwargs):
        held.append(budget.used)
        return resize(image, *args, **kwargs)

    monkeypatch.setattr(images, "resize", observed_resize)
    image, size = load_resized(data, checks, 256, "border")
    assert image.size == (256, 256) and image.mode == "RGB" and size == (2000, 2000)
    assert held == [2000 * 2000 * 8] and budget.used == 0


def test_a_refused_size_costs_no_decode(png_loads):
    # PngImageFile.getexif decodes the whole image to look for EXIF after the pixel data: not for a check.
    assert _reason(_png_header(9000, 1500)) == "bad_aspect_ratio"
    assert _reason(_png_header(9000, 150)) == "image_too_small"
    assert png_loads == []


def _hold_in_thread(budget: DecodeBudget, nbytes: int, entered: threading.Event, leave: threading.Event):
    def hold() -> None:
        with budget.hold(nbytes):
            entered.set()
            leave.wait(10)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    return thread


def test_a_decode_waits_until_the_budget_has_room_first_come_first_served():
    budget = DecodeBudget(100)
    events = {name: (threading.Event(), threading.Event()) for name in ("first", "large", "small")}
    threads = [_hold_in_thread(budget, 60, *events["first"])]
    assert events["first"][0].wait(5)
    threads.append(_hold_in_thread(budget, 60, *events["large"]))
    time.sleep(0.05)                                      # "large" is queued before "small"
    threads.append(_hold_in_thread(budget, 10, *events["small"]))
    # "small" would fit (60 + 10 <= 100) but waits behind "large", which waits for "first".
    assert not events["large"][0].wait(0.3) and not events["small"][0].is_set()
    events["first"][1].set()
    assert events["large"][0].wait(5) and events["small"][0].wait(5)
    assert budget.used == 70
    for _, leave in events.values():
        leave.set()
    for thread in threads:
        thread.join(5)
    assert budget.used == 0


def test_a_hold_over_the_whole_budget_is_refused_and_takes_nothing():
    budget = DecodeBudget(100)
    with pytest.raises(ImageRejected) as caught:
        with budget.hold(101):
            pass
    assert caught.value.reason == "decompression_bomb" and budget.used == 0
    with budget.hold(100):
        assert budget.used == 100


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_only_the_first_frame_of_an_animation_is_used(fmt):
    frames = [Image.new("RGB", (300, 300), colour) for colour in ((250, 0, 0), (0, 0, 250), (0, 250, 0))]
    data = _bytes(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    image, size = load_resized(data, CHECKS, 256, "border")
    red, _, blue = image.getpixel((128, 128))
    assert size == (300, 300) and red > 200 and blue < 50


def test_decode_memory_flag_sets_the_budget_and_has_a_floor():
    from wit_pipeline.download.pipeline import DownloadOptions, parse_byte_size
    from wit_pipeline.errors import UserError

    assert DownloadOptions(input="x", out="y").config().checks.decode_memory == DEFAULT_DECODE_MEMORY
    options = DownloadOptions(input="x", out="y", decode_memory=parse_byte_size("2G"))
    assert options.config().checks.decode_memory == 2 << 30
    with pytest.raises(UserError, match="--decode-memory"):
        DownloadOptions(input="x", out="y", decode_memory=1 << 20).validate()


def test_an_icon_holding_a_larger_image_than_icons_allow_is_refused_unopened(png_loads):
    # Pillow decodes an ICO inside Image.open, at the size of the PNG it holds, whatever the directory says.
    icon = _bytes(Image.new("RGBA", (256, 256), (250, 0, 0, 255)), "ICO", sizes=[(256, 256)])
    image, size = load_resized(icon, CHECKS, 256, "border")
    assert size == (256, 256) and image.getpixel((5, 5)) == (250, 0, 0)
    png_loads.clear()
    big = _bytes(Image.new("RGBA", (3000, 3000)), "PNG")
    forged = icon[:6] + icon[6:14] + struct.pack("<II", len(big), 22) + big     # one entry, pointing at `big`
    with pytest.raises(ImageRejected) as caught:
        load_resized(forged, CHECKS, 256, "border")
    assert caught.value.reason == "decompression_bomb" and "3000x3000" in caught.value.message
    assert png_loads == []
