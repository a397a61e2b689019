"""The built-in sample web: a deterministic little web served on loopback.

``wit demo``, the tests and the benchmarks all run on it::

    with serve_sample_web(seed=0) as web:
        files = web.write_files("out/sampleweb")   # WAT/WARC, urls.parquet, eval set, wiki dumps ...
        web.base_url                               # http://127.0.0.1:PORT

See ``site.py`` (what exists; ``world.py``: its German, Chinese and Japanese part), ``server.py``
(routes), ``faults.py`` (fault kinds and their declared behaviour, the opt-out signals among them) and
``files.py`` (files on disk; ``wiki.py``, ``wikiworld.py``: the Wikipedia dumps in four languages).
``consent_web.py`` serves three origins for the consent and safety checks (``serve_consent_web``);
``signed_images.py`` makes images with an opt-out inside (XMP, C2PA).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from .faults import FAULTS, Fault
from .files import SampleFiles
from .server import SampleWebServer
from .site import Site, build_site

__all__ = ["FAULTS", "Fault", "SampleFiles", "SampleWebServer", "Site", "build_site", "serve_sample_web"]


@contextmanager
def serve_sample_web(seed: int = 0, *, faults: bool = True, latency_s: float = 0.0, slow_s: float = 3.0,
                     oversized_bytes: int = 32 << 20, n_images: int = 240, port: int = 0
                     ) -> Iterator[SampleWebServer]:
    """Serve the sample web for ``seed`` on 127.0.0.1 (a free port unless ``port``); stop it on exit."""
    server = SampleWebServer(build_site(seed, n_images=n_images), faults=faults, latency_s=latency_s,
                             slow_s=slow_s, oversized_bytes=oversized_bytes, port=port).start()
    try:
        yield server
    finally:
        server.stop()
