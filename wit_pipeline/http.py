"""The one guarded HTTP session factory: every network request of the project goes through here.

What it guarantees, for the download, the search crawl, ``wit train``'s http(s) shards
(``open_url_stream``) and single http(s) input files (``fetch_bytes``) alike:

- **SSRF guard.** Every connection's target address is checked *when the socket
  is opened* (so after every redirect and whatever DNS answers next time):
  private, loopback, link-local, multicast, reserved and unspecified addresses
  are refused unless ``allow_private_networks``, and so are IPv6 forms carrying
  such an IPv4 address (mapped, compatible, 6to4, Teredo, NAT64: ``is_public_address``).
  Redirects are followed by us, one hop at a time, at most ``max_redirects``.
- **A DNS cache per session** (img2dataset's users hit resolver failures at
  scale), with a TTL.
- **Pooled keep-alive connections**, a per-host concurrency limit, connect/read
  timeouts, retries with exponential backoff and jitter on timeouts, connection
  errors, 429 and 5xx (``Retry-After`` honoured, capped).
- **Bounded bodies.** Responses are streamed and cut at ``max_bytes``; a larger
  declared ``Content-Length`` is refused before reading. Each attempt also has a
  total deadline (``deadline_s``, default six read timeouts): the read timeout
  alone lets a server that trickles a byte every few seconds hold a thread for hours.
- **Proxies.** By default the session ignores ``HTTP_PROXY``/``HTTPS_PROXY``/
  ``ALL_PROXY`` (``trust_env`` off; a warning is logged once when they are set):
  through a proxy the connect-time guard would only see the proxy's address.
  With ``allow_proxy`` requests go through the proxy the environment names
  (``NO_PROXY`` honoured), and the *target* host of the first request and of
  every redirect hop is resolved here and checked before the request is handed
  to the proxy: every address it resolves to must be public. Caveat: the proxy
  resolves the name again, so a DNS answer that changes in between (rebinding)
  is not seen; only the direct path pins the checked address.
- **Malformed URLs are results, not exceptions.** ``url_problem`` checks scheme,
  host, port, IPv6 literal, DNS labels and control characters before anything is
  sent (``invalid_url``), and every redirect ``Location`` the same way
  (``bad_redirect``).
- A user agent that names the project (``USER_AGENT``, or the caller's).
- **Opt-out headers** (``header_signals``, default ``consent.HEADER_SIGNALS``): a 200 response whose
  headers refuse AI training (``X-Robots-Tag: noai``, ``tdm-reservation: 1``, ``Content-Usage:
  train-ai=n``; parsed by ``consent.header_refusal``) is closed before its body is read, its error the
  ``opt_out_<signal>`` reason.

``fetch`` never raises: it returns a ``FetchResult`` whose ``error`` is one of the
reason names in ``REASONS`` (``fetch_error`` names an unexpected exception, with its
type in the message). ``open_stream`` is the streamed form for large files (the
trainer's http shards): same checks, it raises ``FetchFailed`` instead.
"""

from __future__ import annotations

import io
import ipaddress
import logging
import os
import random
import socket
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import IO, Callable, Iterable, Mapping
from urllib.parse import urljoin, urlsplit
from urllib.request import getproxies_environment

import idna
import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from . import USER_AGENT
from .consent import HEADER_SIGNALS, header_refusal

log = logging.getLogger(__name__)

# Failure reasons fetch() reports (the download stage adds its image reasons to these).
# A response whose headers carry an opt-out (``header_signals``) is refused with its ``consent`` reason
# (``opt_out_noai``, ``opt_out_tdmrep``, ``opt_out_content_usage``), listed with the consent reasons.
REASONS = ("invalid_url", "bad_redirect", "blocked_address", "dns_error", "connection_error", "timeout",
           "too_large", "too_many_redirects",
           "fetch_error")  # plus "http_<status>"; fetch_error: an unexpected exception (its type in the message)
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

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


class FetchFailed(Exception):
    """``open_stream`` could not open the URL; ``result`` says why (``result.error`` is a reason)."""

    def __init__(self, result: FetchResult, hint: str = ""):
        self.message = f"cannot read {result.url}: {result.error} {result.message}".strip() + hint
        super().__init__(self.message)
        self.result = result

    def __str__(self) -> str:    # the message, whatever a caller appends to args
        return self.message


_NAT64 = ipaddress.ip_network("64:ff9b::/96")             # well-known prefix: the IPv4 address is the last 32 bits
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")     # local-use prefixes: where the IPv4 sits varies
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")          # deprecated ::a.b.c.d


def _is_public_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified or ip.is_link_local)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[list[ipaddress.IPv4Address], bool] | None:
    """IPv4 addresses an IPv6 address carries, and whether the IPv6 form is only a translation of them
    (mapped, NAT64, IPv4-compatible: judged by the IPv4 alone); None when it carries none."""
    if ip.ipv4_mapped:
        return [ip.ipv4_mapped], True
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)], True
    if ip.sixtofour:
        return [ip.sixtofour], False
    if ip.teredo:
        server, client = ip.teredo        # ipaddress already undoes the client's XOR 0xffffffff
        return [server, client], False
    return None


def is_public_address(address: str) -> bool:
    """True for a globally routable unicast address.

    IPv6 forms that carry an IPv4 address are judged by it too: IPv4-mapped ``::ffff:a.b.c.d``,
    NAT64 ``64:ff9b::a.b.c.d``, IPv4-compatible ``::a.b.c.d``, 6to4 ``2002:AABB:CCDD::`` and Teredo
    ``2001:0:SERVER::CLIENT`` are public only when every IPv4 address inside is; NAT64 local-use
    ``64:ff9b:1::/48`` is refused outright.
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL:
            return False
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            inner, translation_only = embedded
            if not all(_is_public_ip(v4) for v4 in inner):
                return False
            if translation_only:
                return True
    return _is_public_ip(ip)


def _ascii_host(host: str) -> str:
    """The name as DNS sees it (IDNA 2008 with UTS 46 mapping, as requests encodes it)."""
    return host if host.isascii() else idna.encode(host, uts46=True).decode("ascii")


def _host_problem(host: str, bracketed: bool) -> str | None:
    if bracketed:
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            return f"invalid IPv6 address [{host}]"
        return None
    if any(c.isspace() for c in host):
        return "white space in the host name"
    try:
        name = _ascii_host(host)
    except (idna.IDNAError, UnicodeError, ValueError) as exc:
        return f"invalid host name ({type(exc).__name__}: {exc})"
    labels = name[:-1].split(".") if name.endswith(".") else name.split(".")
    if len(name) > 253 or any(not 0 < len(label) < 64 for label in labels):
        return "empty or over-long DNS label in the host name"
    return None


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be requested (not http(s), no host, a bad port, a bad IPv6 literal or DNS
    label, control characters), or None. No network. Spaces in the path are fine (they are quoted)."""
    if not isinstance(url, str):
        return f"not a string ({type(url).__name__})"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return "control character in the URL"
    try:
        parts = urlsplit(url)
        _port = parts.port      # ValueError for a port out of range or not a number
    except ValueError as exc:
        return str(exc)
    if parts.scheme.lower() not in ("http", "https"):
        return "not an http(s) URL"
    if not parts.hostname:
        return "no host"
    return _host_problem(parts.hostname, parts.netloc.rpartition("@")[2].startswith("["))


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


_proxy_warning = threading.Lock()
_proxy_warned = False


def environment_proxies() -> dict[str, str]:
    """The proxies the environment names (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``, any case)."""
    return {k: v for k, v in getproxies_environment().items() if k in ("http", "https", "all") and v}


def warn_ignored_proxies() -> None:
    """Once per process: a user behind a proxy learns why requests go direct (stages call it on the driver
    too: a worker process's warnings are not shown by default)."""
    global _proxy_warned
    with _proxy_warning:
        if _proxy_warned or not environment_proxies():
            return
        _proxy_warned = True
    log.warning("proxy settings in the environment (%s) are ignored: requests go direct so the address guard "
                "sees the real target; pass --allow-proxy (wit download, wit candidates) to use the proxy",
                ", ".join(sorted(k.upper() + "_PROXY" for k in environment_proxies())))


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
        except (socket.gaierror, UnicodeError) as exc:   # UnicodeError: a name the idna codec refuses
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
    headers: Mapping[str, str] = field(default_factory=dict)   # case-insensitive when from a response
    body: bytes | None = None      # set on success only
    error: str | None = None       # None on success, else a reason (see REASONS) or "http_<status>"
    message: str = ""              # a human-readable detail for the status table
    attempts: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


class _HopSession(requests.Session):
    """A ``requests.Session`` that leaves redirects alone: ``GuardedSession`` follows them one checked hop at
    a time, and requests would otherwise parse the ``Location`` (raising on a malformed one) even with
    ``allow_redirects=False``."""

    def resolve_redirects(self, *args, **kwargs):
        return iter(())


class GuardedSession:
    """A pooled, guarded session; thread-safe for ``fetch``. Make one per worker with ``make_session``."""

    def __init__(self, *, allow_private_networks: bool = False, timeout: tuple[float, float] = DEFAULT_TIMEOUT,
                 retries: int = 2, backoff_s: float = 0.5, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_redirects: int = 5, per_host_limit: int = 16, pool_maxsize: int = 64,
                 user_agent: str = USER_AGENT, header_signals: Iterable[str] = HEADER_SIGNALS, dns_ttl_s: float = 300.0,
                 deadline_s: float | None = None, allow_proxy: bool = False):
        self.allow_private_networks = allow_private_networks
        self.allow_proxy = allow_proxy
        self.timeout = timeout
        self.deadline_s = deadline_s if deadline_s is not None else 6 * timeout[1]
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self.header_signals = frozenset(header_signals)    # consent.HEADER_SIGNALS refused on sight
        self.dns = DNSCache(dns_ttl_s)
        self._host_slots: dict[str, threading.BoundedSemaphore] = defaultdict(
            lambda: threading.BoundedSemaphore(per_host_limit))
        self._slots_lock = threading.Lock()
        self.session = _HopSession()
        # No proxy or .netrc credentials from the environment: a proxy would take the connection (the guard
        # would check the proxy's address instead of the target's); proxies are added per request below.
        self.session.trust_env = False
        # The CA bundle is no risk, and a TLS-inspecting corporate proxy needs it.
        self.session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        if not allow_proxy:
            warn_ignored_proxies()
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

    def fetch(self, url: str, *, max_bytes: int | None = None, truncate: bool = False,
              header_signals: bool = True) -> FetchResult:
        """GET ``url`` with retries; never raises (see ``FetchResult.error``). ``truncate``: a body over
        ``max_bytes`` is cut there instead of refused (robots.txt is read up to a size). ``header_signals``
        off: opt-out headers are not asked about (the signal files themselves)."""
        result = FetchResult(url=url, final_url=url)
        reader = self._body_reader(max_bytes or self.max_bytes, truncate,
                                   self.header_signals if header_signals else frozenset())
        for attempt in range(self.retries + 1):
            try:
                result = self._follow(url, reader)
            except Exception as exc:  # one URL must never end the caller's job
                result = FetchResult(url, url, error="fetch_error", message=_clip(f"{type(exc).__name__}: {exc}", 300))
            result.attempts = attempt + 1
            if not _retryable(result) or attempt == self.retries:
                return result
            time.sleep(self._retry_delay(result, attempt))
        return result

    def _retry_delay(self, result: FetchResult, attempt: int) -> float:
        """Exponential backoff with jitter, or the server's ``Retry-After`` (capped)."""
        retry_after = result.headers.get("Retry-After", "")
        if retry_after.isdigit():
            return min(float(retry_after), MAX_RETRY_AFTER_S)
        return self.backoff_s * (2 ** attempt) * (0.5 + random.random())

    def open_stream(self, url: str, *, max_bytes: int | None = None) -> IO[bytes]:
        """A streamed read of ``url``'s body (redirects followed and checked, retries, as ``fetch``; no total
        deadline: the read timeout applies to each read); reading past ``max_bytes`` raises ``OSError``.
        Raises ``FetchFailed`` when the URL cannot be opened. The caller closes the stream."""
        attempt = 0
        while True:
            try:
                return self._open_once(url, max_bytes or self.max_bytes)
            except FetchFailed as failed:
                if not _retryable(failed.result) or attempt >= self.retries:
                    raise
                time.sleep(self._retry_delay(failed.result, attempt))
                attempt += 1

    def _open_once(self, url: str, limit: int) -> IO[bytes]:
        opened: list[requests.Response] = []

        def keep_open(url_: str, current: str, response: requests.Response) -> FetchResult:
            result = self._check_response(url_, current, response, limit)
            if result.error is None and response.status_code == 200:
                opened.append(response)
            else:
                response.close()
            return result

        try:
            result = self._follow(url, keep_open)
        except Exception as exc:  # reported as the reason it is, like fetch's
            result = FetchResult(url, url, error="fetch_error", message=_clip(f"{type(exc).__name__}: {exc}", 300))
        if not result.ok or not opened:
            raise FetchFailed(result)
        return io.BufferedReader(_BoundedBody(opened[0], limit, url), buffer_size=1 << 20)

    def _follow(self, url: str, handle: Callable[[str, str, requests.Response], FetchResult]) -> FetchResult:
        """Request ``url`` and follow its redirects one hop at a time, each target checked first;
        ``handle(url, current, response)`` turns the last response into the result (and closes it)."""
        problem = url_problem(url)
        if problem:
            return FetchResult(url, url if isinstance(url, str) else "", error="invalid_url",
                               message=f"{problem}: {_clip(repr(url))}")
        current = url
        for _hop in range(self.max_redirects + 1):
            result = self._exchange(url, current, handle)
            if result.error or result.status not in REDIRECT_STATUSES:
                return result
            location = result.headers.get("Location")
            if not location:
                return FetchResult(url, current, status=result.status, headers=result.headers, error="bad_redirect",
                                   message=f"HTTP {result.status} without a Location")
            try:
                target = urljoin(current, location)
                problem = url_problem(target)
            except ValueError as exc:
                problem = str(exc)
            if problem:
                return FetchResult(url, current, status=result.status, headers=result.headers, error="bad_redirect",
                                   message=f"Location {_clip(repr(location))}: {problem}")
            current = target
        return FetchResult(url, current, error="too_many_redirects",
                           message=f"more than {self.max_redirects} redirects")

    def _exchange(self, url: str, current: str, handle) -> FetchResult:
        """One GET of ``current`` (a checked URL), failures mapped to their reason."""
        parts = urlsplit(current)
        proxies = self._proxies_for(current)
        try:
            with self._slot(parts.hostname):
                if requests.utils.select_proxy(current, proxies):
                    self._check_target(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
                response = self.session.get(current, timeout=self.timeout, stream=True, allow_redirects=False,
                                            proxies=proxies)
                return handle(url, current, response)
        except BlockedAddressError as exc:
            return FetchResult(url, current, error="blocked_address", message=str(exc))
        except DNSLookupError as exc:
            return FetchResult(url, current, error="dns_error", message=str(exc))
        except (requests.Timeout, socket.timeout) as exc:
            return FetchResult(url, current, error="timeout", message=_clip(str(exc), 300))
        except (requests.exceptions.InvalidURL, urllib3.exceptions.LocationValueError, UnicodeError) as exc:
            # url_problem passed it, but requests or urllib3 refuse it: still this URL's (or Location's) fault
            reason = "invalid_url" if current == url else "bad_redirect"
            return FetchResult(url, current, error=reason, message=_clip(f"{type(exc).__name__}: {exc}", 300))
        except requests.RequestException as exc:
            return FetchResult(url, current, error="connection_error", message=_clip(str(exc), 300))

    def _proxies_for(self, url: str) -> dict[str, str]:
        """The proxies for ``url`` (none unless ``allow_proxy``; ``NO_PROXY`` honoured)."""
        return requests.utils.get_environ_proxies(url) if self.allow_proxy else {}

    def _check_target(self, host: str, port: int) -> None:
        """Before a request goes to a proxy: every address the target resolves to must be public."""
        if self.allow_private_networks:
            return
        addresses = self.dns.resolve(_ascii_host(host), port)
        refused = [a for a in addresses if not is_public_address(a)]
        if refused or not addresses:
            raise BlockedAddressError(f"{host} resolves to a non-public address ({(refused or ['none'])[0]}); "
                                      "not sent to the proxy")

    def _body_reader(self, max_bytes: int, truncate: bool = False, signals: frozenset[str] = frozenset()):
        def read(url: str, current: str, response: requests.Response) -> FetchResult:
            try:
                result = self._check_response(url, current, response, max_bytes, signals, truncate)
                if result.error or response.status_code != 200:
                    return result
                return self._read(result, response, max_bytes, time.monotonic() + self.deadline_s, truncate)
            finally:
                response.close()

        return read

    def _check_response(self, url: str, current: str, response: requests.Response, max_bytes: int,
                        signals: frozenset[str] | None = None, truncate: bool = False) -> FetchResult:
        """The result as far as status and headers tell: a redirect, an HTTP error, an opt-out (``signals``,
        by default the session's), too large."""
        headers = requests.structures.CaseInsensitiveDict(response.headers)
        result = FetchResult(url, current, status=response.status_code, headers=headers)
        if response.status_code in REDIRECT_STATUSES:
            return result
        if response.status_code != 200:
            result.error, result.message = f"http_{response.status_code}", response.reason or ""
            return result
        signals = self.header_signals if signals is None else signals
        refused = header_refusal(headers, signals) if signals else None
        if refused is not None:       # before the body is read: nothing of a refused image is received
            result.error, result.message = refused
            return result
        declared = headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > max_bytes and not truncate:
            result.error, result.message = "too_large", f"Content-Length {declared} > {max_bytes}"
        return result

    def _read(self, result: FetchResult, response: requests.Response, max_bytes: int, deadline: float,
              truncate: bool = False) -> FetchResult:
        """The body of a checked 200 response into ``result`` (bounded by ``max_bytes`` and ``deadline``)."""
        chunks, size = [], 0
        while True:
            chunk = _read_some(response)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes and truncate:
                chunks.append(chunk[:len(chunk) - (size - max_bytes)])
                break
            if size > max_bytes:
                result.error, result.message = "too_large", f"body over {max_bytes} bytes"
                return result
            chunks.append(chunk)
            if time.monotonic() > deadline:
                result.error, result.message = "timeout", f"body not complete after {self.deadline_s:g} s"
                return result
        result.body = b"".join(chunks)
        return result


def _retryable(result: FetchResult) -> bool:
    """Timeouts, connection errors, 429 and 5xx are worth another attempt."""
    return result.error in ("timeout", "connection_error") or bool(
        result.status in RETRY_STATUSES and result.error and result.error.startswith("http_"))


def _read_some(response: requests.Response, size: int = 65536) -> bytes:
    """Whatever has arrived (decoded; read1, so a caller's deadline is checked however slow the server),
    read errors raised as requests' own."""
    try:
        return response.raw.read1(size, decode_content=True)
    except (urllib3.exceptions.ReadTimeoutError, socket.timeout) as exc:
        raise requests.Timeout(str(exc)) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise requests.ConnectionError(str(exc)) from exc


class _BoundedBody(io.RawIOBase):
    """A response body as a raw stream that refuses to go past ``max_bytes`` (``open_stream``)."""

    def __init__(self, response: requests.Response, max_bytes: int, url: str):
        self.response, self.max_bytes, self.url, self.size = response, max_bytes, url, 0
        self.pending = b""
        self.on_close: Callable[[], None] | None = None     # e.g. the session that only this stream uses

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if not self.pending:
            try:
                self.pending = _read_some(self.response, max(len(buffer), 1))
            except requests.RequestException as exc:
                raise OSError(f"{self.url}: {type(exc).__name__}: {exc}") from exc
            self.size += len(self.pending)
            if self.size > self.max_bytes:
                raise OSError(f"{self.url}: body over {self.max_bytes} bytes")
        count = min(len(buffer), len(self.pending))
        buffer[:count] = self.pending[:count]
        self.pending = self.pending[count:]
        return count

    def close(self) -> None:
        if not self.closed:
            self.response.close()
            if self.on_close is not None:
                self.on_close()
        super().close()


def make_session(**options) -> GuardedSession:
    """The factory every network user calls (see ``GuardedSession`` for the options)."""
    return GuardedSession(**options)


def open_url_stream(url: str, *, allow_private_networks: bool = False, max_bytes: int = 1 << 40,
                    timeout: tuple[float, float] = (10.0, 60.0), retries: int = 2) -> IO[bytes]:
    """One large remote file, streamed through its own guarded session (closed with the stream); raises
    ``FetchFailed`` (a refused private address says which flag allows it)."""
    session = make_session(allow_private_networks=allow_private_networks, max_bytes=max_bytes, timeout=timeout,
                           retries=retries)
    try:
        stream = session.open_stream(url)
    except FetchFailed as failed:
        session.close()
        if failed.result.error == "blocked_address":
            raise FetchFailed(failed.result, "; pass --allow-private-networks if that host is yours") from None
        raise
    stream.raw.on_close = session.close
    return stream


def fetch_bytes(url: str, *, allow_private_networks: bool = False) -> bytes:
    """Read one remote input file (``fileio`` uses this for http(s) inputs); raises ``UserError`` on failure."""
    from .errors import UserError

    with make_session(allow_private_networks=allow_private_networks, max_bytes=8 << 30,
                      timeout=(10.0, 60.0)) as session:
        result = session.fetch(url)
    if not result.ok:
        raise UserError(f"cannot read {url}: {result.error} {result.message}".strip())
    return result.body
