"""A loopback web of three origins for the consent and safety checks of ``wit download`` (issue #16).

127.0.0.1 on three ports is three origins, each a ``SampleWebServer`` answering fixed ``Response``s:

- origin 0, ``signals``: plain images, and one image under each opt-out signal, every rule scoped to its
  image's path so the rest of the origin stays allowed: robots.txt (a ``Disallow`` for ``wit-pipeline``
  and a ``Content-Usage`` path rule), ``/.well-known/tdmrep.json``, ``/ai.txt`` (a path and an
  extension), response headers (``X-Robots-Tag``, ``tdm-reservation``, ``Content-Usage``) and the
  image's own metadata (XMP ``plus:DataMining``, a C2PA training-and-data-mining assertion);
- origin 1, ``content_signal``: robots.txt says ``Content-Signal: ai-train=no`` for every agent, so every
  image of the origin is refused;
- origin 2, ``clean``: no robots.txt, tdmrep.json or ai.txt (404: everything allowed); plain images and
  images on the blocklist: served byte for byte (listed by sha256 and by md5) or re-encoded and resized
  (listed by the PDQ hash of the original).

``ConsentWeb.images`` says, for every image URL, the status ``wit download --blocklist-hashes`` must
give it (``success`` for the plain ones) and the bytes served; ``write_files`` writes the URL table and
the blocklist. ``wit sampleweb serve --consent`` serves it by hand.
"""

from __future__ import annotations

import hashlib
import os
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from .draw import COLOURS, SHAPES, draw_shape, encode
from .server import Response, SampleWebServer
from .site import Site

ROBOTS_SIGNALS = """User-agent: *
Content-Usage: /signals/content-usage/ train-ai=n

User-agent: wit-pipeline
Disallow: /signals/robots/
Content-Usage: /signals/content-usage/ train-ai=n
"""
TDMREP_SIGNALS = '[{"location": "/signals/tdmrep/*", "tdm-reservation": 1}]\n'
AI_TXT_SIGNALS = "User-Agent: *\nDisallow: /signals/ai-txt/\nDisallow: *.jpeg\n"
ROBOTS_CONTENT_SIGNAL = "User-agent: *\nContent-Signal: search=yes, ai-train=no\nAllow: /\n"
ORIGIN_FILES = ("/robots.txt", "/.well-known/tdmrep.json", "/ai.txt")

XMP_VALUE = "DMI-PROHIBITED-AIMLTRAINING"
C2PA_ENTRIES = {"cawg.ai_training": "notAllowed"}


@dataclass(frozen=True)
class ConsentImage:
    origin: int          # index into ConsentWeb.origins
    path: str
    caption: str
    expected: str        # the status wit download gives it: "success" or a refusal reason
    body: bytes          # the bytes served


@dataclass(frozen=True)
class ConsentFiles:
    urls_table: str      # parquet: url, text
    blocklist: str       # --blocklist-hashes file: sha256, md5 and pdq lines


def _picture(index: int, size: tuple[int, int] = (320, 256)) -> tuple[Image.Image, str]:
    """A distinct drawn image and its caption; ``index`` chooses shape, colours and texture."""
    colour = list(COLOURS)[index % len(COLOURS)]
    background = list(COLOURS)[(index * 3 + 1) % len(COLOURS)]
    if background == colour:
        background = list(COLOURS)[(index + 1) % len(COLOURS)]
    shape = SHAPES[index % len(SHAPES)]
    return (draw_shape(shape, colour, background, size, 9000 + index),
            f"a {colour} {shape} on a {background} background")


def _jpeg(index: int) -> tuple[bytes, str]:
    picture, caption = _picture(index)
    return encode(picture, "jpg"), caption


def _reencoded_copy(picture: Image.Image) -> bytes:
    """What a re-upload looks like: resized to 70% and saved again at a low JPEG quality."""
    smaller = picture.resize((picture.width * 7 // 10, picture.height * 7 // 10), Image.BICUBIC)
    return encode(smaller, "jpg", quality=60)


def _header_image(origin: int, path: str, index: int, expected: str, headers: dict[str, str]
                  ) -> tuple[ConsentImage, Response]:
    body, caption = _jpeg(index)
    return (ConsentImage(origin, path, caption, expected, body),
            Response(200, body, "image/jpeg", tuple(headers.items())))


def _signals_origin(first_index: int) -> list[tuple[ConsentImage, Response]]:
    """Origin 0: three plain images and one image under each signal."""
    from . import signed_images  # makes the XMP and C2PA images (c2pa-python signs at run time)

    plain = [_header_image(0, f"/img/plain-{i}.jpg", first_index + i, "success", {}) for i in range(3)]
    index = first_index + 3
    signals = [
        ("/signals/robots/a.jpg", "opt_out_robots", {}),
        ("/signals/noai.jpg", "opt_out_noai", {"X-Robots-Tag": "noai"}),
        ("/signals/noimageai.jpg", "opt_out_noai", {"X-Robots-Tag": "googlebot: noindex, noimageai"}),
        ("/signals/tdm-header.jpg", "opt_out_tdmrep", {"tdm-reservation": "1"}),
        ("/signals/tdmrep/a.jpg", "opt_out_tdmrep", {}),
        ("/signals/content-usage-header.jpg", "opt_out_content_usage", {"Content-Usage": "train-ai=n"}),
        ("/signals/content-usage/a.jpg", "opt_out_content_usage", {}),
        ("/signals/ai-txt/a.jpg", "opt_out_ai_txt", {}),
        ("/signals/picture.jpeg", "opt_out_ai_txt", {}),
    ]
    served = plain + [_header_image(0, path, index + i, expected, headers)
                      for i, (path, expected, headers) in enumerate(signals)]
    index += len(signals)
    xmp_plain, xmp_caption = _jpeg(index)
    xmp = signed_images.jpeg_with_xmp_data_mining(xmp_plain, XMP_VALUE)
    c2pa_plain, c2pa_caption = _jpeg(index + 1)
    c2pa = signed_images.jpeg_with_c2pa_training_mining(c2pa_plain, C2PA_ENTRIES)
    served += [(ConsentImage(0, "/signals/xmp.jpg", xmp_caption, "opt_out_metadata", xmp),
                Response(200, xmp, "image/jpeg")),
               (ConsentImage(0, "/signals/c2pa.jpg", c2pa_caption, "opt_out_c2pa", c2pa),
                Response(200, c2pa, "image/jpeg"))]
    return served


def _origin_files(robots: str | None, tdmrep: str | None, ai_txt: str | None) -> dict[str, Response]:
    missing = Response(404, b"not found\n", "text/plain")
    texts = dict(zip(ORIGIN_FILES, (robots, tdmrep, ai_txt), strict=True))
    return {path: Response(200, text.encode(), "application/json" if path.endswith(".json") else "text/plain")
            if text is not None else missing for path, text in texts.items()}


class ConsentWeb:
    """The three origins, running; use ``serve_consent_web``."""

    def __init__(self, origins: list[SampleWebServer], images: list[ConsentImage], blocklist: list[str]):
        self.origins = origins
        self.images = images
        self.blocklist_lines = blocklist

    def url(self, image: ConsentImage) -> str:
        return self.origins[image.origin].url(image.path)

    @property
    def requests(self) -> list[tuple[float, str, str]]:
        """Every request any origin answered: (monotonic time, path with query, User-Agent)."""
        return sorted(r for origin in self.origins for r in origin.requests)

    def write_files(self, root: str) -> ConsentFiles:
        os.makedirs(root, exist_ok=True)
        urls_table = os.path.join(root, "urls.parquet")
        pq.write_table(pa.Table.from_pylist([{"url": self.url(i), "text": i.caption} for i in self.images]),
                       urls_table)
        blocklist = os.path.join(root, "blocklist.txt")
        with open(blocklist, "w", encoding="utf-8") as handle:
            handle.write("# images the consent web serves, listed by hash\n" + "".join(
                line + "\n" for line in self.blocklist_lines))
        return ConsentFiles(urls_table=os.path.abspath(urls_table), blocklist=os.path.abspath(blocklist))


def _clean_origin(first_index: int) -> tuple[list[tuple[ConsentImage, Response]], list[str]]:
    """Origin 2: three plain images, two listed by the hash of their bytes, two re-encoded copies of
    images listed by PDQ; returns them with the blocklist's lines."""
    from ..download.blocklist import pdq_hex  # the same PDQ the download checks with

    served = [_header_image(2, f"/img/plain-{i}.jpg", first_index + i, "success", {}) for i in range(3)]
    served += [_header_image(2, f"/img/listed-{i}.jpg", first_index + 3 + i, "blocklisted", {}) for i in range(2)]
    lines = [f"sha256:{hashlib.sha256(served[3][0].body).hexdigest()}",
             f"md5:{hashlib.md5(served[4][0].body).hexdigest()}"]
    for i in range(2):
        picture, caption = _picture(first_index + 5 + i, size=(480, 384))
        copy = _reencoded_copy(picture)
        lines.append(f"pdq:{pdq_hex(picture)}")
        served.append((ConsentImage(2, f"/img/copy-{i}.jpg", caption, "blocklisted", copy),
                       Response(200, copy, "image/jpeg")))
    return served, lines


def build_consent_web(ports: tuple[int, int, int] = (0, 0, 0)) -> ConsentWeb:
    """The three origins (not started), their images and the blocklist."""
    signals = _signals_origin(first_index=0)
    content_signal = [_header_image(1, f"/img/plain-{i}.jpg", 20 + i, "opt_out_content_usage", {})
                      for i in range(3)]
    clean, blocklist = _clean_origin(first_index=30)
    files = [_origin_files(ROBOTS_SIGNALS, TDMREP_SIGNALS, AI_TXT_SIGNALS),
             _origin_files(ROBOTS_CONTENT_SIGNAL, None, None),
             _origin_files(None, None, None)]
    served = [signals, content_signal, clean]
    origins = [SampleWebServer(Site(seed=0, images=[], pages=[]), faults=False, port=port,
                               routes={**files[i], **{image.path: response for image, response in served[i]}})
               for i, port in enumerate(ports)]
    return ConsentWeb(origins, [image for group in served for image, _ in group], blocklist)


@contextmanager
def serve_consent_web(ports: tuple[int, int, int] = (0, 0, 0)) -> Iterator[ConsentWeb]:
    """Serve the three origins on 127.0.0.1 (free ports unless ``ports``); stop them on exit."""
    web = build_consent_web(ports)
    with ExitStack() as stack:
        for origin in web.origins:
            origin.start()
            stack.callback(origin.stop)
        yield web
