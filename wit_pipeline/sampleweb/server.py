"""The sample web's HTTP server: threaded, keep-alive, bound to 127.0.0.1 on a free port.

Routes (all rendered from the ``Site`` model):

- ``/``, ``/page/NNN.html``, ``/gallery/NNN.html``: HTML pages with ``<img src alt>``
- ``/img/NNNNN.jpg|png`` (also under ``/media/``): the images
- ``/static/logo.png``, ``/static/pixel.gif``: boilerplate images
- ``/robots.txt``: disallows ``/private/``
- ``/v1/images/?q=&page=&page_size=``: Openverse-shaped image search
- ``/w/api.php?action=query&generator=search&gsrsearch=&gsroffset=&prop=imageinfo``: MediaWiki-shaped
- ``/fault/...``: the switchable faults of ``faults.FAULTS``
- ``/files/...``: the files written by ``write_files`` (WAT, WARC, tables), for http(s) inputs
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from ..text import canonical
from . import render
from .faults import FAULTS, ROBOTS_TXT
from .site import Site, WebImage, page_html

log = logging.getLogger(__name__)

_IMAGE_PATH = re.compile(r"^(?:/media)?/img/(\d{5})\.(jpg|png)$")
_PAGE_PATH = re.compile(r"^/(?:page|gallery)/\d{3}\.html$")
LICENSES = (("by", "4.0"), ("by-sa", "4.0"), ("cc0", "1.0"), ("by-nc", "2.0"))


def image_license(image: WebImage) -> tuple[str, str]:
    return LICENSES[image.id % len(LICENSES)]


def image_creator(image: WebImage) -> str:
    return f"Sample Artist {image.id % 17}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # Clients that give up (timeouts, cut bodies) reset their connections: routine here.
        log.debug("connection from %s ended abruptly", client_address, exc_info=True)


class SampleWebServer:
    """The running server. Use ``serve_sample_web`` rather than constructing it directly."""

    def __init__(self, site: Site, *, faults: bool = True, latency_s: float = 0.0, slow_s: float = 3.0,
                 oversized_bytes: int = 32 << 20, port: int = 0):
        self.site = site
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
        self._httpd = _Server(("127.0.0.1", port), _handler_class(self))
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


def _handler_class(web: SampleWebServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"       # keep-alive, like a real server
        server_version = "wit-sampleweb/1.0"

        def log_message(self, fmt, *args):  # route through logging, not stderr
            log.debug("%s " + fmt, self.address_string(), *args)

        def do_GET(self):
            path_qs = self.path
            with web._lock:
                web._hits[path_qs] = web._hits.get(path_qs, 0) + 1
                web.requests.append((time.monotonic(), path_qs, self.headers.get("User-Agent", "")))
            if web.latency_s:
                time.sleep(web.latency_s)
            try:
                self._route(urlsplit(path_qs))
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
            if path == "/robots.txt":
                return self.send_body(200, ROBOTS_TXT.encode(), "text/plain")
            if path in ("/", "/index.html"):
                links = "".join(f'<li><a href="{p.path}">{p.title}</a></li>' for p in web.site.pages)
                return self.send_body(200, f"<html><body><ul>{links}</ul></body></html>".encode(), "text/html")
            if _PAGE_PATH.match(path) and path in web._pages:
                html = page_html(web._pages[path], web.base_url).encode()
                return self.send_body(200, html, "text/html; charset=utf-8")
            match = _IMAGE_PATH.match(path)
            if match:
                image_id = int(match.group(1))
                if image_id >= len(web.site.images) or web.site.images[image_id].fmt != match.group(2):
                    return self.not_found()
                image = web.site.images[image_id]
                body = web.cached(image.path, lambda: render.web_image_bytes(web.site, image))
                return self.send_body(200, body, "image/png" if image.fmt == "png" else "image/jpeg")
            if path == "/static/logo.png":
                return self.send_body(200, web.cached(path, render.logo_png), "image/png")
            if path == "/static/pixel.gif":
                return self.send_body(200, web.cached(path, render.pixel_gif), "image/gif")
            if path in ("/v1/images/", "/v1/images", "/private/v1/images/"):
                return self._openverse(query)
            if path == "/w/api.php":
                return self._mediawiki(query)
            if path.startswith("/fault/") and web.faults_enabled:
                return self._fault(path, parts)
            if path.startswith("/files/") and web.files_root:
                return self._file(path[len("/files/"):])
            return self.not_found()

        # -- search APIs ------------------------------------------------------------------
        def _openverse(self, query):
            q = query.get("q", [""])[0]
            try:
                page = int(query.get("page", ["1"])[0])
                page_size = int(query.get("page_size", ["20"])[0])
            except ValueError:
                return self.send_json({"detail": "Invalid page or page_size."}, 400)
            if page < 1 or not 1 <= page_size <= 500:
                return self.send_json({"detail": "Invalid page or page_size."}, 400)
            hits = web.search(q)
            page_count = math.ceil(len(hits) / page_size)
            if hits and page > page_count:
                return self.send_json({"detail": "Invalid page."}, 400)
            results = []
            for image in hits[(page - 1) * page_size: page * page_size]:
                license_, version = image_license(image)
                results.append({
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
                })
            self.send_json({"result_count": len(hits), "page_count": page_count, "page_size": page_size,
                            "page": page, "results": results})

        def _mediawiki(self, query):
            get = lambda name, default="": query.get(name, [default])[0]  # noqa: E731
            if get("action") != "query" or get("generator") != "search":
                return self.send_json({"error": {"code": "badvalue", "info": "unsupported request"}})
            try:
                offset, limit = int(get("gsroffset", "0")), int(get("gsrlimit", "10"))
            except ValueError:
                return self.send_json({"error": {"code": "badinteger", "info": "bad gsroffset/gsrlimit"}})
            limit = max(1, min(limit, 50))
            hits = web.search(get("gsrsearch"))
            pages = {}
            for index, image in enumerate(hits[offset: offset + limit], start=offset + 1):
                license_, version = image_license(image)
                title = f"File:Sample {image.id:05d}.{image.fmt}"
                pages[str(100000 + image.id)] = {
                    "pageid": 100000 + image.id, "ns": 6, "title": title, "index": index,
                    "imagerepository": "local",
                    "imageinfo": [{
                        "url": web.image_url(image),
                        "descriptionurl": web.url(web._page_of_image.get(image.id, "/")),
                        "width": image.width, "height": image.height,
                        "extmetadata": {
                            "ImageDescription": {"value": image.caption, "source": "commons-desc-page"},
                            "Artist": {"value": image_creator(image), "source": "commons-desc-page"},
                            "LicenseShortName": {"value": f"CC {license_.upper()} {version}",
                                                 "source": "commons-desc-page"},
                            "LicenseUrl": {"value": f"https://creativecommons.org/licenses/{license_}/{version}/",
                                           "source": "commons-desc-page"},
                        },
                    }],
                }
            answer = {"batchcomplete": ""}
            if offset + limit < len(hits):
                answer["continue"] = {"gsroffset": offset + limit, "continue": "gsroffset||"}
            if pages:
                answer["query"] = {"pages": pages}
            self.send_json(answer)

        # -- faults -----------------------------------------------------------------------
        def _fault(self, path, parts):
            jpeg = web.cached("valid.jpg", render.valid_jpeg)
            if path == FAULTS["not_found"].path:
                return self.not_found()
            if path == FAULTS["server_error"].path:
                return self.send_body(500, b"internal error\n", "text/plain")
            if path == FAULTS["unavailable_then_ok"].path:
                if web.hits(self.path) <= 1:
                    return self.send_body(503, b"try again\n", "text/plain", {"Retry-After": "0"})
                return self.send_body(200, jpeg, "image/jpeg")
            if path == FAULTS["slow"].path:
                time.sleep(web.slow_s)
                return self.send_body(200, jpeg, "image/jpeg")
            if path == FAULTS["truncated"].path:
                return self.send_body(200, jpeg[: len(jpeg) // 2], "image/jpeg")
            if path == FAULTS["corrupt"].path:
                return self.send_body(200, web.cached("corrupt", render.corrupt_jpeg), "image/jpeg")
            if path == FAULTS["html_as_image"].path:
                return self.send_body(200, render.HTML_AS_IMAGE, "image/jpeg")
            if path == FAULTS["decompression_bomb"].path:
                return self.send_body(200, web.cached("bomb", render.decompression_bomb_png), "image/png")
            if path == FAULTS["oversized"].path:
                return self._oversized()
            if path == FAULTS["redirect_loop"].path:
                return self._redirect("/fault/redirect-loop-2.jpg")
            if path == "/fault/redirect-loop-2.jpg":
                return self._redirect(FAULTS["redirect_loop"].path)
            if path == FAULTS["noai"].path:
                return self.send_body(200, jpeg, "image/jpeg", {"X-Robots-Tag": "noai"})
            if path == FAULTS["noimageai"].path:
                return self.send_body(200, jpeg, "image/jpeg", {"X-Robots-Tag": "noimageai, noindex"})
            return self.not_found()

        def _redirect(self, location: str):
            self.send_body(302, b"", "text/plain", {"Location": location})

        def _oversized(self):
            chunk = b"\xff" * 65536
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(web.oversized_bytes))
            self.end_headers()
            sent = 0
            while sent < web.oversized_bytes:
                piece = chunk[: web.oversized_bytes - sent]
                self.wfile.write(piece)
                sent += len(piece)

        def _file(self, relative: str):
            root = os.path.realpath(web.files_root)
            target = os.path.realpath(os.path.join(root, relative))
            if not target.startswith(root + os.sep) or not os.path.isfile(target):
                return self.not_found()
            with open(target, "rb") as handle:
                self.send_body(200, handle.read(), "application/octet-stream")

    return Handler
