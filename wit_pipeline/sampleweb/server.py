"""The sample web's HTTP server: threaded, keep-alive, bound to 127.0.0.1 on a free port.

Routes (all rendered from the ``Site`` model):

- ``/``, ``/page/NNN.html``, ``/gallery/NNN.html``, ``/de/page/NNN.html`` (``zh``, ``ja``): HTML pages with
  ``<img src alt>``
- ``/img/NNNNN.jpg|png`` (also under ``/media/``): the images
- ``/static/logo.png``, ``/static/pixel.gif``: boilerplate images
- ``/robots.txt``: disallows ``/private/``, plus the opt-out faults' path-scoped rules (``faults.ROBOTS_TXT``)
- ``/.well-known/tdmrep.json``, ``/ai.txt``: the opt-out faults' TDMRep and ai.txt rules
- ``/v1/images/?q=&page=&page_size=``: Openverse-shaped image search
- ``/w/api.php?action=query&generator=search&gsrsearch=&gsroffset=&prop=imageinfo``: MediaWiki-shaped
- ``/fault/...``: the switchable faults of ``faults.FAULTS``
- ``/files/...``: the files written by ``write_files`` (WAT, WARC, tables), for http(s) inputs

``SampleWebServer`` holds the site, the switches (faults, latency) and the request log; ``Handler``
answers one request, reading them from ``self.server.web``. Fixed paths are the ``_SITE_ROUTES``
table, fault paths the ``_FAULT_ROUTES`` table. ``routes`` (fixed ``Response``s by path, answered
before anything else) lets another web reuse this server: ``consent_web.py`` serves its origins so.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Mapping
from urllib.parse import parse_qs, unquote, urlsplit

from ..text import canonical
from . import render
from .faults import AI_TXT, FAULTS, ROBOTS_TXT, TDMREP_JSON
from .site import Site, WebImage, page_html, tdm_reserved_page

log = logging.getLogger(__name__)

_IMAGE_PATH = re.compile(r"^(?:/media)?/img/(\d{5})\.(jpg|png)$")
_PAGE_PATH = re.compile(r"^/(?:[a-z]{2}/)?(?:page|gallery)/\d{3}\.html$")
LICENSES = (("by", "4.0"), ("by-sa", "4.0"), ("cc0", "1.0"), ("by-nc", "2.0"))


def image_license(image: WebImage) -> tuple[str, str]:
    return LICENSES[image.id % len(LICENSES)]


def image_creator(image: WebImage) -> str:
    return f"Sample Artist {image.id % 17}"


@dataclass(frozen=True)
class Response:
    """A fixed answer to one path."""

    status: int
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()


class _Server(ThreadingHTTPServer):
    """The HTTP server; its ``Handler`` reads the site and the switches from ``self.web``."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], web: SampleWebServer):
        super().__init__(address, Handler)
        self.web = web

    def handle_error(self, request, client_address):
        # Clients that give up (timeouts, cut bodies) reset their connections: routine here.
        log.debug("connection from %s ended abruptly", client_address, exc_info=True)


class SampleWebServer:
    """The running server. Use ``serve_sample_web`` rather than constructing it directly."""

    def __init__(self, site: Site, *, faults: bool = True, latency_s: float = 0.0, slow_s: float = 3.0,
                 oversized_bytes: int = 32 << 20, port: int = 0, routes: Mapping[str, Response] | None = None):
        self.site = site
        self.routes = dict(routes or {})
        self.faults_enabled = faults
        self.latency_s = latency_s
        self.slow_s = slow_s
        self.oversized_bytes = oversized_bytes
        self.files_root: str | None = None
        self.requests: list[tuple[float, str, str]] = []   # (monotonic time, path with query, user agent)
        self._lock = threading.Lock()
        self._hits: dict[str, int] = {}
        self._cache: dict[str, bytes] = {}
        self._pages = {page.path: page for page in site.pages}
        self._page_of_image = {tag.image_id: page.path for page in reversed(site.pages) for tag in page.imgs
                               if tag.image_id is not None}
        self._search_corpus = [(canonical(i.caption).split(), i) for i in site.images if i.language == "en"]
        self._httpd = _Server(("127.0.0.1", port), self)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="sampleweb", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        return self._httpd.server_address[:2]

    @property
    def base_url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def start(self) -> "SampleWebServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    # -- what the site serves ------------------------------------------------------------
    def image_url(self, image: WebImage) -> str:
        return self.url(image.path)

    def fault_urls(self) -> dict[str, str]:
        """Absolute URL of every image fault kind (empty when faults are switched off)."""
        if not self.faults_enabled:
            return {}
        return {kind: self.url(f.path) for kind, f in FAULTS.items() if f.is_image}

    def record_request(self, path_qs: str, user_agent: str) -> None:
        with self._lock:
            self._hits[path_qs] = self._hits.get(path_qs, 0) + 1
            self.requests.append((time.monotonic(), path_qs, user_agent))

    def hits(self, path: str) -> int:
        with self._lock:
            return self._hits.get(path, 0)

    def cached(self, key: str, make) -> bytes:
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        data = make()
        with self._lock:
            self._cache[key] = data
        return data

    def search(self, query: str) -> list[WebImage]:
        """All English-captioned images whose caption contains every word of ``query``."""
        wanted = canonical(query).split()
        if not wanted:
            return []
        return [image for caption_words, image in self._search_corpus
                if all(word in caption_words for word in wanted)]

    def write_files(self, root: str):
        from .files import write_files

        files = write_files(self, root)
        self.files_root = files.root
        return files

    def __enter__(self) -> "SampleWebServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def openverse_result(web: SampleWebServer, image: WebImage) -> dict:
    """One image as an Openverse ``/v1/images/`` result."""
    license_, version = image_license(image)
    return {
        "id": f"sample-{web.site.seed}-{image.id:05d}",
        "title": image.caption,
        "url": web.image_url(image),
        "foreign_landing_url": web.url(web._page_of_image.get(image.id, "/")),
        "creator": image_creator(image),
        "creator_url": None,
        "license": license_,
        "license_version": version,
        "license_url": f"https://creativecommons.org/licenses/{license_}/{version}/",
        "provider": "sampleweb",
        "source": "sampleweb",
        "filetype": image.fmt,
        "width": image.width,
        "height": image.height,
        "tags": [{"name": image.shape}, {"name": image.colour}],
        "mature": False,
    }


def mediawiki_page(web: SampleWebServer, image: WebImage, index: int) -> dict:
    """One image as a MediaWiki ``generator=search&prop=imageinfo`` page (a Commons file page)."""
    license_, version = image_license(image)

    def described(value: str) -> dict:
        return {"value": value, "source": "commons-desc-page"}

    return {
        "pageid": 100000 + image.id, "ns": 6, "title": f"File:Sample {image.id:05d}.{image.fmt}", "index": index,
        "imagerepository": "local",
        "imageinfo": [{
            "url": web.image_url(image),
            "descriptionurl": web.url(web._page_of_image.get(image.id, "/")),
            "width": image.width, "height": image.height,
            "extmetadata": {
                "ImageDescription": described(image.caption),
                "Artist": described(image_creator(image)),
                "LicenseShortName": described(f"CC {license_.upper()} {version}"),
                "LicenseUrl": described(f"https://creativecommons.org/licenses/{license_}/{version}/"),
            },
        }],
    }


class Handler(BaseHTTPRequestHandler):
    """One request to the sample web; the site and its switches are ``self.server.web``."""

    protocol_version = "HTTP/1.1"       # keep-alive, like a real server
    server_version = "wit-sampleweb/1.0"
    server: _Server

    @property
    def web(self) -> SampleWebServer:
        return self.server.web

    def log_message(self, fmt, *args):  # route through logging, not stderr
        log.debug("%s " + fmt, self.address_string(), *args)

    def do_GET(self):
        self.web.record_request(self.path, self.headers.get("User-Agent", ""))
        if self.web.latency_s:
            time.sleep(self.web.latency_s)
        try:
            self._route(urlsplit(self.path))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. cut an oversized body): nothing to answer

    def send_body(self, status: int, body: bytes, content_type: str, headers: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, obj, status: int = 200):
        self.send_body(status, json.dumps(obj).encode(), "application/json")

    def not_found(self):
        self.send_body(404, b"not found\n", "text/plain")

    def _route(self, parts):
        path, query = unquote(parts.path), parse_qs(parts.query)
        web = self.web
        if path in web.routes:
            fixed = web.routes[path]
            return self.send_body(fixed.status, fixed.body, fixed.content_type, dict(fixed.headers))
        if path in _SITE_ROUTES:
            return _SITE_ROUTES[path](self)
        if _PAGE_PATH.match(path) and path in web._pages:
            html = page_html(web._pages[path], web.base_url).encode()
            return self.send_body(200, html, "text/html; charset=utf-8")
        match = _IMAGE_PATH.match(path)
        if match:
            return self._image(int(match.group(1)), match.group(2))
        if path in ("/v1/images/", "/v1/images", "/private/v1/images/"):
            return self._openverse(query)
        if path == "/w/api.php":
            return self._mediawiki(query)
        if path.startswith("/fault/") and web.faults_enabled:
            return self._fault(path)
        if path.startswith("/files/") and web.files_root:
            return self._file(path[len("/files/"):])
        return self.not_found()

    # -- the site -----------------------------------------------------------------------
    def _robots(self):
        self.send_body(200, ROBOTS_TXT.encode(), "text/plain")

    def _text(self, text: str, content_type: str = "text/plain"):
        self.send_body(200, text.encode(), content_type)

    def _index(self):
        links = "".join(f'<li><a href="{p.path}">{p.title}</a></li>' for p in self.web.site.pages)
        self.send_body(200, f"<html><body><ul>{links}</ul></body></html>".encode(), "text/html")

    def _image(self, image_id: int, fmt: str):
        site = self.web.site
        if image_id >= len(site.images) or site.images[image_id].fmt != fmt:
            return self.not_found()
        image = site.images[image_id]
        body = self.web.cached(image.path, lambda: render.web_image_bytes(site, image))
        self.send_body(200, body, "image/png" if image.fmt == "png" else "image/jpeg")

    def _logo(self):
        self.send_body(200, self.web.cached("/static/logo.png", render.logo_png), "image/png")

    def _pixel(self):
        self.send_body(200, self.web.cached("/static/pixel.gif", render.pixel_gif), "image/gif")

    # -- search APIs ----------------------------------------------------------------------
    def _openverse(self, query):
        q = query.get("q", [""])[0]
        try:
            page = int(query.get("page", ["1"])[0])
            page_size = int(query.get("page_size", ["20"])[0])
        except ValueError:
            return self.send_json({"detail": "Invalid page or page_size."}, 400)
        if page < 1 or not 1 <= page_size <= 500:
            return self.send_json({"detail": "Invalid page or page_size."}, 400)
        hits = self.web.search(q)
        page_count = math.ceil(len(hits) / page_size)
        if hits and page > page_count:
            return self.send_json({"detail": "Invalid page."}, 400)
        results = [openverse_result(self.web, image) for image in hits[(page - 1) * page_size: page * page_size]]
        self.send_json({"result_count": len(hits), "page_count": page_count, "page_size": page_size,
                        "page": page, "results": results})

    def _mediawiki(self, query):
        def get(name: str, default: str = "") -> str:
            return query.get(name, [default])[0]

        if get("action") != "query" or get("generator") != "search":
            return self.send_json({"error": {"code": "badvalue", "info": "unsupported request"}})
        try:
            offset, limit = int(get("gsroffset", "0")), int(get("gsrlimit", "10"))
        except ValueError:
            return self.send_json({"error": {"code": "badinteger", "info": "bad gsroffset/gsrlimit"}})
        limit = max(1, min(limit, 50))
        hits = self.web.search(get("gsrsearch"))
        pages = {str(100000 + image.id): mediawiki_page(self.web, image, index)
                 for index, image in enumerate(hits[offset: offset + limit], start=offset + 1)}
        answer = {"batchcomplete": ""}
        if offset + limit < len(hits):
            answer["continue"] = {"gsroffset": offset + limit, "continue": "gsroffset||"}
        if pages:
            answer["query"] = {"pages": pages}
        self.send_json(answer)

    # -- faults ---------------------------------------------------------------------------
    def _fault(self, path: str):
        answer = _FAULT_ROUTES.get(path)
        if answer is None:
            return self.not_found()
        return answer(self)

    def _jpeg(self, headers: dict | None = None):
        self.send_body(200, self.web.cached("valid.jpg", render.valid_jpeg), "image/jpeg", headers)

    def _unavailable_then_ok(self):
        if self.web.hits(self.path) <= 1:
            return self.send_body(503, b"try again\n", "text/plain", {"Retry-After": "0"})
        self._jpeg()

    def _signal_image(self, kind: str, headers: dict | None = None):
        self.send_body(200, self.web.cached(kind, lambda: render.signal_jpeg(kind)), "image/jpeg", headers)

    def _signed_image(self, kind: str):
        """An opt-out carried inside the image (XMP, C2PA): made by ``signed_images`` when first asked for."""
        from . import signed_images

        def make() -> bytes:
            if kind == "xmp_datamining":
                return signed_images.jpeg_with_xmp_data_mining(render.signal_jpeg(kind),
                                                               "DMI-PROHIBITED-AIMLTRAINING")
            return signed_images.jpeg_with_c2pa_training_mining(render.signal_jpeg(kind),
                                                                {"cawg.ai_training": "notAllowed"})
        self.send_body(200, self.web.cached(kind, make), "image/jpeg")

    def _slow(self):
        time.sleep(self.web.slow_s)
        self._jpeg()

    def _truncated(self):
        jpeg = self.web.cached("valid.jpg", render.valid_jpeg)
        self.send_body(200, jpeg[: len(jpeg) // 2], "image/jpeg")

    def _redirect(self, location: str):
        self.send_body(302, b"", "text/plain", {"Location": location})

    def _oversized(self):
        size = self.web.oversized_bytes
        chunk = b"\xff" * 65536
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        sent = 0
        while sent < size:
            piece = chunk[: size - sent]
            self.wfile.write(piece)
            sent += len(piece)

    def _file(self, relative: str):
        root = os.path.realpath(self.web.files_root)
        target = os.path.realpath(os.path.join(root, relative))
        if not target.startswith(root + os.sep) or not os.path.isfile(target):
            return self.not_found()
        with open(target, "rb") as handle:
            self.send_body(200, handle.read(), "application/octet-stream")


_SITE_ROUTES: dict[str, Callable[[Handler], None]] = {
    "/robots.txt": Handler._robots,
    "/.well-known/tdmrep.json": lambda h: h._text(TDMREP_JSON, "application/json"),
    "/ai.txt": lambda h: h._text(AI_TXT),
    "/": Handler._index,
    "/index.html": Handler._index,
    "/static/logo.png": Handler._logo,
    "/static/pixel.gif": Handler._pixel,
}

_REDIRECT_LOOP_2 = "/fault/redirect-loop-2.jpg"   # the loop's second hop, which points back to the first

# What each fault path answers (faults.FAULTS declares the paths and the behaviour a client should see).
_FAULT_ROUTES: dict[str, Callable[[Handler], None]] = {
    FAULTS["not_found"].path: Handler.not_found,
    FAULTS["server_error"].path: lambda h: h.send_body(500, b"internal error\n", "text/plain"),
    FAULTS["unavailable_then_ok"].path: Handler._unavailable_then_ok,
    FAULTS["slow"].path: Handler._slow,
    FAULTS["truncated"].path: Handler._truncated,
    FAULTS["corrupt"].path: lambda h: h.send_body(200, h.web.cached("corrupt", render.corrupt_jpeg), "image/jpeg"),
    FAULTS["html_as_image"].path: lambda h: h.send_body(200, render.HTML_AS_IMAGE, "image/jpeg"),
    FAULTS["decompression_bomb"].path: lambda h: h.send_body(
        200, h.web.cached("bomb", render.decompression_bomb_png), "image/png"),
    FAULTS["oversized"].path: Handler._oversized,
    FAULTS["redirect_loop"].path: lambda h: h._redirect(_REDIRECT_LOOP_2),
    _REDIRECT_LOOP_2: lambda h: h._redirect(FAULTS["redirect_loop"].path),
    FAULTS["noai"].path: lambda h: h._signal_image("noai", {"X-Robots-Tag": "noai"}),
    FAULTS["noimageai"].path: lambda h: h._signal_image("noimageai", {"X-Robots-Tag": "noimageai, noindex"}),
    # robots.txt, tdmrep.json and ai.txt hold these faults' rules: the images themselves are plain.
    **{FAULTS[kind].path: (lambda h, kind=kind: h._signal_image(kind))
       for kind in ("robots_ours", "robots_other_ai", "tdmrep_json", "content_usage_robots", "ai_txt")},
    FAULTS["tdm_header"].path: lambda h: h._signal_image("tdm_header", {"tdm-reservation": "1"}),
    FAULTS["content_usage_header"].path: lambda h: h._signal_image("content_usage_header",
                                                                   {"Content-Usage": "train-ai=n"}),
    FAULTS["xmp_datamining"].path: lambda h: h._signed_image("xmp_datamining"),
    FAULTS["c2pa_not_allowed"].path: lambda h: h._signed_image("c2pa_not_allowed"),
    FAULTS["tdm_meta_page"].path: lambda h: h.send_body(
        200, page_html(tdm_reserved_page(h.web.site, FAULTS["tdm_meta_page"].path), h.web.base_url).encode(),
        "text/html; charset=utf-8"),
}
