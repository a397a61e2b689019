"""Opt-out signal parsing (wit_pipeline/consent.py): pure functions, table-driven."""

from __future__ import annotations

import io
import json

import pytest
from requests.structures import CaseInsensitiveDict

from wit_pipeline import USER_AGENT
from wit_pipeline.consent import (
    SIGNALS,
    AiTxtRules,
    RobotsRules,
    header_refusal,
    obeyed_agents,
    page_reserves_tdm,
    parse_agents,
    parse_preferences,
    parse_signals,
    parse_tdmrep,
    pattern_match_length,
    product_token,
    tdmrep_refusal,
    x_robots_tag_refuses,
)

OURS = ("wit-pipeline",)


@pytest.mark.parametrize("text, expected", [
    ("all", set(SIGNALS)), ("none", set()), ("robots", {"robots"}), ("robots, AI_TXT", {"robots", "ai_txt"}),
    ("c2pa,metadata", {"c2pa", "metadata"}),
])
def test_opt_out_signals_lists(text, expected):
    assert parse_signals(text) == expected


@pytest.mark.parametrize("text", ["robot", "all,robots", "", "robots,nope"])
def test_unknown_signal_names_are_refused_with_the_known_names(text):
    with pytest.raises(ValueError, match="content_usage"):
        parse_signals(text)


def test_agents_obeyed_are_ours_the_user_agents_token_and_the_named_ones():
    assert product_token(USER_AGENT) == "wit-pipeline"
    assert obeyed_agents(USER_AGENT, ()) == ("wit-pipeline",)
    assert obeyed_agents("MyLabBot/2.0 (+mailto:x@y)", parse_agents("GPTBot, CCBot")) == (
        "wit-pipeline", "mylabbot", "gptbot", "ccbot")
    with pytest.raises(ValueError, match="product token"):
        parse_agents("GPT Bot")


# -- robots.txt (RFC 9309) -------------------------------------------------------------------------------

ROBOTS_CASES = [
    # (robots.txt, agents, path, allowed)
    ("User-agent: *\nDisallow: /a\nAllow: /a/b\n", OURS, "/a/x", False),              # longest match
    ("User-agent: *\nDisallow: /a\nAllow: /a/b\n", OURS, "/a/b/c", True),
    ("User-agent: *\nAllow: /p\nDisallow: /p\n", OURS, "/p", True),                    # allow wins a tie
    ("User-agent: *\nDisallow: /*.jpg$\n", OURS, "/x/a.jpg", False),                   # * and $
    ("User-agent: *\nDisallow: /*.jpg$\n", OURS, "/x/a.jpg?size=2", True),             # $ ends the path+query
    ("User-agent: *\nDisallow: /private\n", OURS, "/privateer", False),                # prefix match
    ("User-agent: *\nDisallow: /%7Ea\n", OURS, "/~a/x.jpg", False),                    # percent-encoding
    ("User-agent: WIT-Pipeline\nDisallow: /x\n", OURS, "/x", False),                   # token case-insensitive
    ("User-agent: wit-pipeline/1.0\nDisallow: /x\n", OURS, "/x", False),               # version after the token
    ("User-agent: wit\nDisallow: /\nUser-agent: *\nAllow: /\n", OURS, "/x", True),     # not a prefix match
    ("User-agent: *\nDisallow: /\nUser-agent: wit-pipeline\nAllow: /\n", OURS, "/x", True),   # ours beats *
    ("User-agent: wit-pipeline\nDisallow: /x\n\nUser-agent: wit-pipeline\nDisallow: /y\n", OURS, "/y", False),
    ("User-agent: a\nUser-agent: wit-pipeline\nDisallow: /z\n", OURS, "/z", False),    # shared group
    ("User-agent: GPTBot\nDisallow: /\n", OURS, "/x", True),                           # another agent's rules
    ("User-agent: GPTBot\nDisallow: /\n", OURS + ("gptbot",), "/x", False),             # ... obeyed when named
    ("Disallow: /\n", OURS, "/x", True),                                               # no group: ignored
    ("User-agent: *\nDisallow: /\n", OURS, "/robots.txt", True),                       # robots.txt itself
    ("User-agent: *\nDisallow:\n", OURS, "/x", True),                                  # empty Disallow
    ("# comment\nUser-agent: * # all\nDisallow: /c # c\n", OURS, "/c/1", False),       # comments
]


@pytest.mark.parametrize("text, agents, path, allowed", ROBOTS_CASES)
def test_robots_txt_groups_precedence_and_wildcards(text, agents, path, allowed):
    assert (RobotsRules(text, agents).disallowing_agent("http://h.example" + path) is None) is allowed


def test_crawl_delay_is_the_largest_of_the_obeyed_groups():
    text = "User-agent: *\nCrawl-delay: 2\nUser-agent: gptbot\nCrawl-delay: 5\n"
    assert RobotsRules(text, OURS).crawl_delay() == 2.0
    assert RobotsRules(text, OURS + ("gptbot",)).crawl_delay() == 5.0


# -- Content-Usage (IETF aipref) and Content-Signal (Cloudflare) --------------------------------------------

@pytest.mark.parametrize("robots, path, refused", [
    ("User-agent: *\nContent-Usage: train-ai=n\n", "/a.jpg", True),
    ("User-agent: *\nContent-Usage: train-ai=y\n", "/a.jpg", False),
    ("User-agent: *\nContent-Usage: search=y, train-ai=n;note=1\n", "/a.jpg", True),
    ("User-agent: *\nContent-Usage: train-genai=n\n", "/a.jpg", False),                # generative only
    ("User-agent: *\nContent-Usage: bots=n\n", "/a.jpg", True),                        # inherited from bots
    ("User-agent: *\nContent-Usage: bots=n, train-ai=y\n", "/a.jpg", False),           # stated beats parent
    ("User-agent: *\nContent-Usage: /img/ train-ai=n\n", "/img/a.jpg", True),          # path-scoped
    ("User-agent: *\nContent-Usage: /img/ train-ai=n\n", "/page/a.jpg", False),
    ("User-agent: *\nContent-Usage: train-ai=n\nContent-Usage: /open/ train-ai=y\n", "/open/a.jpg", False),
    ("User-agent: *\nContent-Usage: train-ai=n\nContent-Usage: /open/ train-ai=y\n", "/shut/a.jpg", True),
    ("User-agent: other\nContent-Usage: train-ai=n\n", "/a.jpg", False),               # not our group
    ("User-agent: *\nContent-Signal: search=yes, ai-train=no\n", "/a.jpg", True),
    ("User-agent: *\nContent-signal: search=yes,ai-train=yes\n", "/a.jpg", False),
    ("User-agent: *\nContent-Signal: ai-input=no\n", "/a.jpg", False),
    ("User-agent: *\nContent-Signal: /img/ ai-train=no\n", "/img/a.jpg", True),
    ("User-agent: *\nAllow: /\n", "/a.jpg", False),
])
def test_robots_content_usage_and_content_signal_lines(robots, path, refused):
    assert (RobotsRules(robots, OURS).usage_refusal(path) is not None) is refused


def test_preference_dictionaries_skip_what_does_not_parse():
    assert parse_preferences('train-ai=N, garbage, search="y";p=1, =x') == {"train-ai": "n", "search": "y"}


@pytest.mark.parametrize("headers, expected", [
    ({"X-Robots-Tag": "noai"}, "opt_out_noai"),
    ({"x-robots-tag": "googlebot: noimageai"}, "opt_out_noai"),
    ({"X-Robots-Tag": "noindex, nofollow"}, None),
    ({"tdm-reservation": "1"}, "opt_out_tdmrep"),
    ({"TDM-Reservation": " 1 "}, "opt_out_tdmrep"),
    ({"tdm-reservation": "0"}, None),
    ({"Content-Usage": "train-ai=n"}, "opt_out_content_usage"),
    ({"Content-Usage": "train-ai=y, bots=n"}, None),
    ({"Content-Usage": "bots=n"}, "opt_out_content_usage"),
    ({}, None),
])
def test_response_header_signals(headers, expected):
    refused = header_refusal(CaseInsensitiveDict(headers), SIGNALS)
    assert (refused[0] if refused else None) == expected


def test_header_signals_not_chosen_are_not_honoured():
    headers = CaseInsensitiveDict({"X-Robots-Tag": "noai", "tdm-reservation": "1"})
    assert header_refusal(headers, {"tdmrep"})[0] == "opt_out_tdmrep"
    assert header_refusal(headers, {"robots", "content_usage"}) is None


@pytest.mark.parametrize("header, refused", [
    ("noai", True), ("noimageai", True), ("noindex, NoAI", True), ("otherbot: noai", True),
    ("noindex", False), (None, False), ("", False),
])
def test_x_robots_tag(header, refused):
    assert x_robots_tag_refuses(header) is refused


# -- TDMRep --------------------------------------------------------------------------------------------

TDMREP = b"""[
  {"location": "/open/*", "tdm-reservation": 0},
  {"location": "/images/*.jpg", "tdm-reservation": 1, "tdm-policy": "https://example.org/policy.json"},
  {"location": "/exact$", "tdm-reservation": "1"},
  {"location": "/", "tdm-reservation": 0},
  "not an object", {"tdm-reservation": 1}
]"""


@pytest.mark.parametrize("path, reserved", [
    ("/images/a.jpg", True), ("/images/sub/b.jpg?x=1", True), ("/images/a.png", False),
    ("/open/images/a.jpg", False),      # the first matching entry decides
    ("/exact", True), ("/exactly", False), ("/other.jpg", False),
])
def test_tdmrep_json_locations(path, reserved):
    assert (tdmrep_refusal(parse_tdmrep(TDMREP), path) is not None) is reserved


@pytest.mark.parametrize("body", [b"{}", b"not json", b'{"location": "/"}', b"\xff\xfe"])
def test_tdmrep_json_that_is_not_an_array_is_an_error(body):
    with pytest.raises((ValueError, UnicodeDecodeError)):
        parse_tdmrep(body)


@pytest.mark.parametrize("metas, reserved", [
    ([("tdm-reservation", "1")], True), ([("TDM-Reservation", " 1")], True),
    ([("tdm-reservation", "0")], False), ([("description", "1"), (None, None)], False), ([], False),
])
def test_page_meta_tdm_reservation(metas, reserved):
    assert page_reserves_tdm(metas) is reserved


# -- ai.txt --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, path, refused", [
    ("User-Agent: *\nDisallow: *.jpg\n", "/a/b.jpg", True),
    ("User-Agent: *\nDisallow: *.jpg\n", "/a/b.JPG?x=1", True),          # extension: case, query ignored
    ("User-Agent: *\nDisallow: *.jpg\n", "/a/b.jpeg", False),
    ("User-Agent: *\nDisallow: *.jpg\n", "/a.jpg/b.png", False),
    ("User-Agent: *\nDisallow: /\n", "/a.png", True),
    ("User-Agent: *\nDisallow: /\nAllow: *.png\n", "/a.png", False),     # Allow honoured (longer)
    ("User-Agent: *\nDisallow: /\nAllow: /public/\n", "/public/a.jpg", False),
    ("User-Agent: wit-pipeline\nDisallow: /\n", "/a.png", True),          # ours
    ("User-Agent: someone-else\nDisallow: /\n", "/a.png", False),
    ("# Spawning AI\n# comment only\n", "/a.png", False),
    ("User-Agent: *\nDisallow:\n", "/a.png", False),
])
def test_ai_txt_groups_extensions_and_allow(text, path, refused):
    assert (AiTxtRules(text, OURS).refusal(path) is not None) is refused


@pytest.mark.parametrize("pattern, path, matches", [
    ("/", "/x", True), ("/a*b", "/a/x/b", True), ("/a$", "/a", True), ("/a$", "/ab", False),
    ("*.gif", "/x.gif", True), ("*.gif", "/x.gifv", False), ("", "/x", False), ("/a", "/b/a", False),
])
def test_pattern_matching(pattern, path, matches):
    assert (pattern_match_length(pattern, path) >= 0) is matches


# -- pages in wit candidates: <meta name="tdm-reservation" content="1"> -----------------------------------

RESERVED_HTML = ('<html><head><meta name="tdm-reservation" content="1"></head><body>'
                 '<img src="/a.jpg" alt="a kite over the sea"><img src="/b.jpg" alt="a red boat in a harbour">'
                 '</body></html>')


def test_warc_page_that_reserves_tdm_is_known():
    from wit_pipeline.candidates.sources.warc import parse_page

    pairs, _broken, reserved = parse_page(RESERVED_HTML, "https://example.org/p")
    assert reserved and len(pairs) == 2
    assert not parse_page(RESERVED_HTML.replace('content="1"', 'content="0"'), "https://example.org/p")[2]


def test_wat_record_of_a_reserved_page_gives_no_pairs_and_counts_them():
    from collections import Counter

    from wit_pipeline.candidates.sources.wat import parse_wat_record

    def record(metas):
        html = {"Head": {"Metas": metas}, "Links": [{"path": "IMG@/src", "url": "/a.jpg", "alt": "a kite"},
                                                    {"path": "IMG@/src", "url": "/b.jpg", "alt": "a boat"}]}
        envelope = {"Envelope": {"WARC-Header-Metadata": {"WARC-Target-URI": "https://example.org/p"},
                                 "Payload-Metadata": {"HTTP-Response-Metadata": {"HTML-Metadata": html}}}}
        return json.dumps(envelope).encode()

    counts = Counter()
    assert parse_wat_record({"WARC-Type": "metadata"}, record([{"name": "tdm-reservation", "content": "1"}]),
                            counts)[1] == []
    assert counts["in"] == 2 and counts["dropped_opt_out_tdmrep"] == 2
    assert len(parse_wat_record({"WARC-Type": "metadata"}, record([{"name": "robots", "content": "1"}]),
                                counts)[1]) == 2


def test_candidates_from_warc_drop_reserved_pages_as_counted_opt_outs(tmp_path):
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    from wit_pipeline.candidates.pipeline import CandidateOptions, run_candidates

    path = tmp_path / "pages.warc.gz"
    with open(path, "wb") as handle:
        writer = WARCWriter(handle, gzip=True)
        for name, html in (("reserved", RESERVED_HTML), ("open", RESERVED_HTML.replace('content="1"', 'content="0"'))):
            headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(f"https://example.org/{name}", "response",
                                                          payload=io.BytesIO(html.encode()), http_headers=headers))
    stats = run_candidates(CandidateOptions(source="warc", inputs=[str(path)], out=str(tmp_path / "out")))
    assert stats["in"] == 4 and stats["out"] == 2 and stats["dropped"]["opt_out_tdmrep"] == 2 and stats["accounted"]


@pytest.mark.parametrize("url, origin", [
    ("https://Example.org/a.jpg", "https://example.org"), ("https://example.org:443/a", "https://example.org"),
    ("http://example.org:8080/a", "http://example.org:8080"), ("http://[::1]:81/a", "http://[::1]:81"),
    ("ftp://example.org/a", None), ("http:///a", None), ("http://example.org:99999/a", None),
])
def test_origins_are_scheme_host_and_port(url, origin):
    from wit_pipeline.consent import origin_of

    assert origin_of(url) == origin
