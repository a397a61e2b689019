"""The one guarded HTTP session factory: every network request of the project goes through here.

What it guarantees, for the download and the search crawl alike:

- **SSRF guard.** Every connection's target address is checked *when the socket
  is opened* (so after every redirect and whatever DNS answers next time):
  private, loopback, link-local, multicast, reserved and unspecified addresses
  are refused unless ``allow_private_networks``. Redirects are followed by us,
  one hop at a time, at most ``max_redirects``.
- **A DNS cache per session** (img2dataset's users hit resolver failures at
  scale), with a TTL.
- **Pooled keep-alive connections**, a per-host concurrency limit, connect/read
  timeouts, retries with exponential backoff and jitter on timeouts, connection
  errors, 429 and 5xx (``Retry-After`` honoured, capped).
- **Bounded bodies.** Responses are streamed and cut at ``max_bytes``; a larger
  declared ``Content-Length`` is refused before reading. Each attempt also has a
  total deadline (``deadline_s``, default six read timeouts): the read timeout
  alone lets a server that trickles a byte every few seconds hold a thread for hours.
- A user agent that names the project.

``fetch`` never raises for network trouble: it returns a ``FetchResult`` whose
``error`` is one of the reason names in ``REASONS``.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import socket
import threading
import time
import urllib.robotparser
from collections import defaultdict
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from . import USER_AGENT

log = logging.getLogger(__name__)

# Failure reasons fetch() reports (the download stage adds its image reasons to these).
REASONS = ("invalid_url", "blocked_address", "dns_error", "connection_error", "timeout", "too_large",
           "too_many_redirects", "opted_out", "robots_disallowed")  # plus "http_<status>"

DEFAULT_TIMEOUT = (5.0, 10.0)   # (connect, read) seconds
DEFAULT_MAX_BYTES = 20 << 20
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 30.0


class BlockedAddressError(Exception):
    """A connection to a private/loopback/link-local/reserved address was refused.

    Deliberately not an ``OSError``: urllib3 would wrap (and retry) those, and
    this one must reach the caller as it is.
    """


class DNSLookupError(Exception):
    """The host name did not resolve (not an OSError, for the same reason)."""


def is_public_address(address: str) -> bool:
    """True for a globally routable unicast address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified or ip.is_link_local)


class DNSCache:
    """host -> resolved addresses, kept ``ttl_s`` seconds; one per session (so one per worker thread pool)."""

    def __init__(self, ttl_s: float = 300.0):
        self.ttl_s = ttl_s
        self._entries: dict[tuple[str, int], tuple[float, list[str]]] = {}
        self._lock = threading.Lock()

    def resolve(self, host: str, port: int) -> list[str]:
        key = (host, port)
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(key)
            if hit and now - hit[0] < self.ttl_s:
                return hit[1]
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise DNSLookupError(f"cannot resolve {host}: {exc}") from exc
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
        with self._lock:
            self._entries[key] = (now, addresses)
        return addresses


def _guarded(connection_cls, dns: DNSCache, allow_private: bool):
    """A urllib3 connection class that connects only to allowed, cached-resolved addresses."""

    class Guarded(connection_cls):
        def _new_conn(self):
            addresses = dns.resolve(self.host, self.port)
            allowed = [a for a in addresses if allow_private or is_public_address(a)]
            if not allowed:
                raise BlockedAddressError(f"{self.host} resolves to a non-public address ({addresses[0]})")
            # Connect to the checked address itself: the name is not resolved a second time,
            # so a DNS answer that changes in between (rebinding) cannot slip past the check.
            # TLS still verifies and sends SNI for self.host.
            self._dns_host = allowed[0]
            return super()._new_conn()

    return Guarded


class _GuardedAdapter(HTTPAdapter):
    def __init__(self, dns: DNSCache, allow_private: bool, pool_maxsize: int):
        self._dns, self._allow_private = dns, allow_private
        super().__init__(pool_connections=64, pool_maxsize=pool_maxsize, max_retries=0)

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        http_pool = type("GuardedHTTPPool", (HTTPConnectionPool,),
                         {"ConnectionCls": _guarded(HTTPConnection, self._dns, self._allow_private)})
        https_pool = type("GuardedHTTPSPool", (HTTPSConnectionPool,),
                          {"ConnectionCls": _guarded(HTTPSConnection, self._dns, self._allow_private)})
        self.poolmanager.pool_classes_by_scheme = {"http": http_pool, "https": https_pool}
        self.poolmanager.key_fn_by_scheme = dict(self.poolmanager.key_fn_by_scheme)


@dataclass
class FetchResult:
    url: str                       # the URL asked for
    final_url: str                 # after redirects
    status: int | None = None      # last HTTP status seen
    headers: dict = field(default_factory=dict)
    body: bytes | None = None      # set on success only
    error: str | None = None       # None on success, else a reason (see REASONS) or "http_<status>"
    message: str = ""              # a human-readable detail for the status table
    attempts: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


def robots_tag_opts_out(header_value: str | None) -> bool:
    """True when an ``X-Robots-Tag`` header opts out of AI training (``noai`` / ``noimageai``)."""
    if not header_value:
        return False
    directives = {d.strip().lower().split(":")[-1].strip() for d in header_value.replace(";", ",").split(",")}
    return bool(directives & {"noai", "noimageai"})


class GuardedSession:
    """A pooled, guarded session; thread-safe for ``fetch``. Make one per worker with ``make_session``."""

    def __init__(self, *, allow_private_networks: bool = False, timeout: tuple[float, float] = DEFAULT_TIMEOUT,
                 retries: int = 2, backoff_s: float = 0.5, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_redirects: int = 5, per_host_limit: int = 16, pool_maxsize: int = 64,
                 user_agent: str = USER_AGENT, honour_noai: bool = True, dns_ttl_s: float = 300.0,
                 deadline_s: float | None = None):
        self.allow_private_networks = allow_private_networks
        self.timeout = timeout
        self.deadline_s = deadline_s if deadline_s is not None else 6 * timeout[1]
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self.honour_noai = honour_noai
        self.dns = DNSCache(dns_ttl_s)
        self._host_slots: dict[str, threading.BoundedSemaphore] = defaultdict(
            lambda: threading.BoundedSemaphore(per_host_limit))
        self._slots_lock = threading.Lock()
        self.session = requests.Session()
        self.session.headers["User-Agent"] = user_agent
        adapter = _GuardedAdapter(self.dns, allow_private_networks, pool_maxsize)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def close(self) -> None:
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _slot(self, host: str) -> threading.BoundedSemaphore:
        with self._slots_lock:
            return self._host_slots[host]

    def fetch(self, url: str, *, max_bytes: int | None = None) -> FetchResult:
        """GET ``url`` with retries; never raises for network trouble (see ``FetchResult.error``)."""
        result = FetchResult(url=url, final_url=url)
        for attempt in range(self.retries + 1):
            result = self._fetch_once(url, max_bytes or self.max_bytes)
            result.attempts = attempt + 1
            retryable = result.error == "timeout" or result.error == "connection_error" or (
                result.status in RETRY_STATUSES and result.error and result.error.startswith("http_"))
            if not retryable or attempt == self.retries:
                return result
            delay = self.backoff_s * (2 ** attempt) * (0.5 + random.random())
            retry_after = result.headers.get("Retry-After", "")
            if retry_after.isdigit():
                delay = min(float(retry_after), MAX_RETRY_AFTER_S)
            time.sleep(delay)
        return result

    def _fetch_once(self, url: str, max_bytes: int) -> FetchResult:
        current = url
        for _hop in range(self.max_redirects + 1):
            parts = urlsplit(current)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                return FetchResult(url, current, error="invalid_url", message=f"not an http(s) URL: {current[:200]}")
            try:
                with self._slot(parts.hostname):
                    deadline = time.monotonic() + self.deadline_s
                    response = self.session.get(current, timeout=self.timeout, stream=True, allow_redirects=False)
                    try:
                        result = self._read(url, current, response, max_bytes, deadline)
                    finally:
                        response.close()
            except BlockedAddressError as exc:
                return FetchResult(url, current, error="blocked_address", message=str(exc))
            except DNSLookupError as exc:
                return FetchResult(url, current, error="dns_error", message=str(exc))
            except (requests.Timeout, socket.timeout) as exc:
                return FetchResult(url, current, error="timeout", message=str(exc)[:300])
            except requests.RequestException as exc:
                return FetchResult(url, current, error="connection_error", message=str(exc)[:300])
            if result.status in (301, 302, 303, 307, 308) and result.headers.get("Location"):
                current = urljoin(current, result.headers["Location"])
                continue
            return result
        return FetchResult(url, current, error="too_many_redirects",
                           message=f"more than {self.max_redirects} redirects")

    def _read(self, url: str, current: str, response: requests.Response, max_bytes: int,
              deadline: float) -> FetchResult:
        headers = dict(response.headers)
        result = FetchResult(url, current, status=response.status_code, headers=headers)
        if response.status_code in (301, 302, 303, 307, 308):
            return result
        if response.status_code != 200:
            result.error, result.message = f"http_{response.status_code}", response.reason or ""
            return result
        if self.honour_noai and robots_tag_opts_out(headers.get("X-Robots-Tag")):
            result.error, result.message = "opted_out", f"X-Robots-Tag: {headers.get('X-Robots-Tag')}"
            return result
        declared = headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            result.error, result.message = "too_large", f"Content-Length {declared} > {max_bytes}"
            return result
        chunks, size = [], 0
        while True:
            try:   # read1: whatever has arrived (decoded), so the deadline is checked however slow the server
                chunk = response.raw.read1(65536, decode_content=True)
            except (urllib3.exceptions.ReadTimeoutError, socket.timeout) as exc:
                raise requests.Timeout(str(exc)) from exc
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise requests.ConnectionError(str(exc)) from exc
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                result.error, result.message = "too_large", f"body over {max_bytes} bytes"
                return result
            chunks.append(chunk)
            if time.monotonic() > deadline:
                result.error, result.message = "timeout", f"body not complete after {self.deadline_s:g} s"
                return result
        result.body = b"".join(chunks)
        return result


def make_session(**options) -> GuardedSession:
    """The factory every network user calls (see ``GuardedSession`` for the options)."""
    return GuardedSession(**options)


class RobotsCache:
    """robots.txt per origin, fetched once through a guarded session; unreachable robots.txt allows all
    (the usual crawler convention), a 401/403 disallows all."""

    def __init__(self, session: GuardedSession, user_agent: str = USER_AGENT):
        self.session, self.user_agent = session, user_agent
        self._parsers: dict[str, urllib.robotparser.RobotFileParser] = {}
        self._lock = threading.Lock()

    def allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        with self._lock:
            parser = self._parsers.get(origin)
        if parser is None:
            parser = urllib.robotparser.RobotFileParser(origin + "/robots.txt")
            fetched = self.session.fetch(origin + "/robots.txt", max_bytes=512 << 10)
            if fetched.ok:
                parser.parse(fetched.body.decode("utf-8", "replace").splitlines())
            elif fetched.status in (401, 403):
                parser.disallow_all = True
            else:
                parser.allow_all = True
            with self._lock:
                self._parsers[origin] = parser
        return parser.can_fetch(self.user_agent, url)

    def crawl_delay(self, url: str) -> float | None:
        parts = urlsplit(url)
        parser = self._parsers.get(f"{parts.scheme}://{parts.netloc}")
        delay = parser.crawl_delay(self.user_agent) if parser else None
        return float(delay) if delay is not None else None




def fetch_bytes(url: str, *, allow_private_networks: bool = False) -> bytes:
    """Read one remote input file (``fileio`` uses this for http(s) inputs); raises ``UserError`` on failure."""
    from .errors import UserError

    with make_session(allow_private_networks=allow_private_networks, max_bytes=8 << 30,
                      timeout=(10.0, 60.0)) as session:
        result = session.fetch(url)
    if not result.ok:
        raise UserError(f"cannot read {url}: {result.error} {result.message}".strip())
    return result.body
