"""The sample web's switchable faults, each with the behaviour it declares.

``FAULTS`` is the contract: the server implements each kind at its path, the
download stage names the failure reason given in ``expected`` (or succeeds,
for ``unavailable_then_ok``), and tests/test_sampleweb.py checks every kind
behaves as declared here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Fault:
    kind: str
    path: str
    behaviour: str
    expected: str      # the stage's outcome: "success" or its failure reason
    is_image: bool = True  # image faults are linked from pages and listed in urls.parquet


FAULTS: dict[str, Fault] = {f.kind: f for f in (
    Fault("not_found", "/fault/not-found.jpg", "404 Not Found", "http_404"),
    Fault("server_error", "/fault/server-error.jpg", "500 Internal Server Error on every request", "http_500"),
    Fault("unavailable_then_ok", "/fault/unavailable-then-ok.jpg",
          "503 with Retry-After: 0 on the first request for the path, then 200 with a valid JPEG", "success"),
    Fault("slow", "/fault/slow.jpg", "waits `slow_s` seconds (default 3) before answering", "timeout"),
    Fault("truncated", "/fault/truncated.jpg", "200 image/jpeg whose body is the first half of a JPEG",
          "decode_error"),
    Fault("corrupt", "/fault/corrupt.jpg", "200 image/jpeg: a JPEG header followed by random bytes",
          "decode_error"),
    Fault("html_as_image", "/fault/html-as-image.jpg", "200 image/jpeg whose body is an HTML page",
          "not_an_image"),
    Fault("decompression_bomb", "/fault/bomb.png",
          "a valid 1-bit PNG of 20000x20000 pixels (400 Mpx) in ~50 kB", "decompression_bomb"),
    Fault("oversized", "/fault/oversized.jpg",
          "200 with a body of `oversized_bytes` (default 32 MiB), streamed", "too_large"),
    Fault("redirect_loop", "/fault/redirect-loop.jpg", "302 to /fault/redirect-loop-2.jpg, which 302s back",
          "too_many_redirects"),
    Fault("noai", "/fault/noai.jpg", "200 valid JPEG with `X-Robots-Tag: noai`", "opted_out"),
    Fault("noimageai", "/fault/noimageai.jpg", "200 valid JPEG with `X-Robots-Tag: noimageai`", "opted_out"),
    Fault("robots_disallowed", "/private/v1/images/?q=circle",
          "an Openverse-shaped search endpoint that robots.txt disallows for every agent: a crawler that "
          "honours robots.txt never requests it", "robots_disallowed", is_image=False),
)}

FAULT_CAPTIONS = {kind: f"a white {('circle', 'square', 'star')[i % 3]} on a black background ({kind})"
                  for i, kind in enumerate(FAULTS)}

ROBOTS_TXT = "User-agent: *\nDisallow: /private/\nCrawl-delay: 0\n"
