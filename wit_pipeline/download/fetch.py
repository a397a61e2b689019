"""Fetching image bodies through the project's one guarded HTTP session (``wit_pipeline/http.py``).

Everything network-related (SSRF guard at connect time and after every
redirect, DNS cache, keep-alive pool, per-host limit, retries with backoff and
``Retry-After``, bounded bodies, ``X-Robots-Tag: noai``) lives in the session;
this module only maps the download's options onto it, one session per worker.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..http import DEFAULT_MAX_BYTES, FetchResult, GuardedSession, make_session


@dataclass(frozen=True)
class FetchOptions:
    timeout: float = 10.0                 # seconds, for connecting and for each read
    retries: int = 2                      # extra attempts on timeouts, connection errors, 429 and 5xx
    max_bytes: int = DEFAULT_MAX_BYTES    # bodies are cut (and refused) past this
    allow_private_networks: bool = False  # only for loopback test servers such as the sample web
    per_host_limit: int = 16              # concurrent requests to one host, per worker
    threads: int = 32                     # the pool keeps one keep-alive connection per thread


def open_session(options: FetchOptions) -> GuardedSession:
    """One pooled, guarded session for a worker's thread pool."""
    return make_session(allow_private_networks=options.allow_private_networks,
                        timeout=(options.timeout, options.timeout), retries=options.retries,
                        max_bytes=options.max_bytes, per_host_limit=options.per_host_limit,
                        pool_maxsize=max(10, options.threads))


def fetch(session: GuardedSession, url: str) -> FetchResult:
    """GET one image URL; never raises for network trouble (``result.error`` names the reason)."""
    return session.fetch(url)
