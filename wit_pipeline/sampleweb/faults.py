"""The sample web's switchable faults, each with the behaviour it declares.

``FAULTS`` is the contract: the server implements each kind at its path, the
download stage names the failure reason given in ``expected`` (or succeeds,
for ``unavailable_then_ok`` and ``robots_other_ai``), and tests/test_sampleweb.py
checks every kind behaves as declared here. The two page-level kinds (``is_image``
false) are met by ``wit candidates``: ``robots_disallowed`` by its search crawl,
``tdm_meta_page`` (also written into the WAT and WARC files) by its page readers.

Besides broken responses, every opt-out signal of issue #16 is a fault kind (a
refusal, ``opt_out_<signal>``): its image is a valid JPEG of its own (distinct
bytes, so a test can look for them), and the origin-level ones are rules in the
origin's files: ``ROBOTS_TXT``, ``TDMREP_JSON`` (``/.well-known/tdmrep.json``)
and ``AI_TXT`` (``/ai.txt``), each scoped to its fault's path so the rest of the
site stays allowed.
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
    Fault("noai", "/fault/noai.jpg", "200 valid JPEG with `X-Robots-Tag: noai`", "opt_out_noai"),
    Fault("noimageai", "/fault/noimageai.jpg", "200 valid JPEG with `X-Robots-Tag: noimageai`", "opt_out_noai"),
    Fault("robots_disallowed", "/private/v1/images/?q=circle",
          "an Openverse-shaped search endpoint that robots.txt disallows for every agent: a crawler that "
          "honours robots.txt never requests it", "robots_disallowed", is_image=False),
    # Opt-out signals (issue #16): each a valid JPEG that a consenting crawler must not keep.
    Fault("robots_ours", "/fault/robots/wit-pipeline.jpg",
          "robots.txt disallows the path for the product token `wit-pipeline` only", "opt_out_robots"),
    Fault("robots_other_ai", "/fault/robots/gptbot.jpg",
          "robots.txt disallows the path for `GPTBot` only: kept by default, `opt_out_robots` with "
          "`--robots-agents GPTBot`", "success"),
    Fault("tdm_header", "/fault/tdm-reservation.jpg", "200 valid JPEG with `tdm-reservation: 1`",
          "opt_out_tdmrep"),
    Fault("tdmrep_json", "/fault/tdmrep/reserved.jpg",
          "`/.well-known/tdmrep.json` reserves TDM rights for `/fault/tdmrep/*`", "opt_out_tdmrep"),
    Fault("content_usage_header", "/fault/content-usage.jpg", "200 valid JPEG with `Content-Usage: train-ai=n`",
          "opt_out_content_usage"),
    Fault("content_usage_robots", "/fault/content-usage/robots.jpg",
          "robots.txt `Content-Usage: /fault/content-usage/ train-ai=n` (path-scoped) in the group for every agent",
          "opt_out_content_usage"),
    Fault("ai_txt", "/fault/ai-txt.jpeg", "`/ai.txt` disallows the `.jpeg` extension for every agent",
          "opt_out_ai_txt"),
    Fault("xmp_datamining", "/fault/xmp-datamining.jpg",
          "200 JPEG whose XMP says `plus:DataMining` `DMI-PROHIBITED-AIMLTRAINING`", "opt_out_metadata"),
    Fault("c2pa_not_allowed", "/fault/c2pa-not-allowed.jpg",
          "200 JPEG with a C2PA manifest whose `cawg.training-mining` assertion says `notAllowed`", "opt_out_c2pa"),
    Fault("tdm_meta_page", "/fault/tdm-reserved.html",
          "an HTML page with `<meta name=\"tdm-reservation\" content=\"1\">` linking two site images, also in the "
          "first WAT and WARC file: `wit candidates` drops its pairs", "opt_out_tdmrep", is_image=False),
)}

# The faults whose image is refused (or, for ``robots_other_ai``, kept) because of an opt-out signal.
SIGNAL_FAULTS = ("noai", "noimageai", "robots_ours", "robots_other_ai", "tdm_header", "tdmrep_json",
                 "content_usage_header", "content_usage_robots", "ai_txt", "xmp_datamining", "c2pa_not_allowed")

FAULT_CAPTIONS = {kind: f"a white {('circle', 'square', 'star')[i % 3]} on a black background ({kind})"
                  for i, kind in enumerate(FAULTS)}

# RFC 9309: a crawler obeys only the most specific group naming it, so the groups for `wit-pipeline` and
# `GPTBot` repeat the rules for every agent.
ROBOTS_TXT = """User-agent: *
Disallow: /private/
Content-Usage: /fault/content-usage/ train-ai=n
Crawl-delay: 0

User-agent: wit-pipeline
Disallow: /private/
Disallow: /fault/robots/wit-pipeline.jpg
Content-Usage: /fault/content-usage/ train-ai=n

User-agent: GPTBot
Disallow: /private/
Disallow: /fault/robots/gptbot.jpg
Content-Usage: /fault/content-usage/ train-ai=n
"""
# W3C TDMRep: a JSON array of {location, tdm-reservation, tdm-policy}.
TDMREP_JSON = ('[{"location": "/fault/tdmrep/*", "tdm-reservation": 1, '
               '"tdm-policy": "https://example.org/tdm-policy.json"}]\n')
# Spawning's ai.txt: robots.txt-shaped groups; an extension pattern refuses every file with that extension.
AI_TXT = "# ai.txt of the sample web\nUser-Agent: *\nDisallow: *.jpeg\n"
