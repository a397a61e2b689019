"""Fetching image bodies through the project's one guarded HTTP session (``wit_pipeline/http.py``).

Everything network-related (SSRF guard at connect time and after every
redirect, DNS cache, keep-alive pool, per-host limit, retries with backoff and
``Retry-After``, bounded bodies, opt-out response headers) lives in the session;
this module only maps the download's options onto it, one session per worker
(``session.fetch(url)`` never raises for network trouble: ``result.error`` names the reason), and
the session's per-origin signal files onto ``consent.OriginSignals`` (``open_origin_signals``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import USER_AGENT
from ..consent import HEADER_SIGNALS, PRODUCT_TOKEN, SIGNALS, OriginSignals
from ..http import GuardedSession, make_session, warn_ignored_proxies


@dataclass(frozen=True)
class FetchOptions:
    """The session's settings, built from ``DownloadOptions`` (the one place their defaults live)."""
    timeout: float                  # seconds, for connecting and for each read
    retries: int                    # extra attempts on timeouts, connection errors, 429 and 5xx
    max_bytes: int                  # bodies are cut (and refused) past this
    allow_private_networks: bool    # only for loopback test servers such as the sample web
    allow_proxy: bool               # go through HTTP(S)_PROXY; each target is still checked before it is sent
    per_host_limit: int             # concurrent requests to one host, per worker
    threads: int                    # the pool keeps one keep-alive connection per thread
    user_agent: str = USER_AGENT    # the User-Agent header (--user-agent)
    signals: frozenset[str] = frozenset(SIGNALS)    # the opt-out signals honoured (--opt-out-signals)
    agents: tuple[str, ...] = (PRODUCT_TOKEN,)      # robots.txt/ai.txt product tokens obeyed (consent.obeyed_agents)

    def __post_init__(self):
        # Built on the driver: the one place a multi-process job can still tell the user (once).
        if not self.allow_proxy:
            warn_ignored_proxies()


def open_session(options: FetchOptions) -> GuardedSession:
    """One pooled, guarded session for a worker's thread pool."""
    return make_session(allow_private_networks=options.allow_private_networks, allow_proxy=options.allow_proxy,
                        timeout=(options.timeout, options.timeout), retries=options.retries,
                        max_bytes=options.max_bytes, per_host_limit=options.per_host_limit,
                        pool_maxsize=max(10, options.threads), user_agent=options.user_agent,
                        header_signals=options.signals & set(HEADER_SIGNALS))


def open_origin_signals(session: GuardedSession, options: FetchOptions) -> OriginSignals:
    """The worker's per-origin cache of robots.txt, tdmrep.json and ai.txt, fetched through ``session``."""
    return OriginSignals(session, options.signals, options.agents)

