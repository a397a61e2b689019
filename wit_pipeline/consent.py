"""Machine-readable opt-outs honoured at crawl time (issue #16): the one home for their names, their
parsing (pure functions) and the per-origin cache of the signal files (``OriginSignals``).

Each signal has a name (``SIGNALS``, what ``--opt-out-signals all|none|LIST`` lists, ``parse_signals``)
and the status a refused row gets (``CONSENT_REASONS``: ``opt_out_<signal>``). Nothing of a refused image
is stored. ``metadata`` and ``c2pa`` are read from the image bytes (``download/``); the others are here.

Who we are. Requests send the ``User-Agent`` header ``wit-pipeline/VERSION (+URL)`` (``USER_AGENT``);
``--user-agent`` replaces the header. Rules are matched for the product token ``wit-pipeline``
(``PRODUCT_TOKEN``) always; when the given user agent starts with another product token (the text before
its first ``/``, space or ``(``), the rules written for that token are obeyed too: changing the header
can add rules, never lift ours. ``--robots-agents GPTBot,CCBot,Google-Extended`` adds more tokens: a path
refused for any obeyed token is refused (``obeyed_agents``). Every per-agent file below (robots.txt,
ai.txt) is read per RFC 9309 §2.2.1 for each obeyed token: the groups naming it exactly (case-insensitive;
``User-agent: wit-pipeline/1.0`` names it, ``User-agent: wit`` does not; several groups merged), else the
``*`` groups. (``protego``'s own group choice also matches a token inside a longer one, so we choose.)

Signals and their parsing:

- ``robots`` -> ``opt_out_robots``: the image origin's ``/robots.txt`` (RFC 9309). Group selection is ours
  (above); the Allow/Disallow matching inside the group is ``protego``'s: longest match wins, Allow wins a
  tie, ``*`` any characters, ``$`` end of the path, percent-encoding normalised, the path includes the query.
  ``/robots.txt`` itself is always allowed. At most 512 KiB is read (a longer file is parsed up to there,
  RFC 9309 §2.5). Errors (§2.3.1): 200 parsed; 4xx (including 401/403), any other non-200 status, more
  than 5 redirects or a malformed redirect = unavailable: no rules, everything allowed; 5xx, a timeout,
  a connection error or an unexpected failure = unreachable: everything disallowed (the row's message
  names the robots.txt failure). When the host does not resolve or resolves to a
  refused address (``dns_error``, ``blocked_address``), the row gets that reason, as the image request
  would: nothing is requested from it. Redirects are followed (at most 5, each checked by the session).
- ``noai`` -> ``opt_out_noai``: an ``X-Robots-Tag`` response header with ``noai`` or ``noimageai``, for
  any or no user-agent prefix (``otherbot: noai`` counts too). Checked on the image response's headers
  before its body is read.
- ``tdmrep`` -> ``opt_out_tdmrep`` (W3C TDMRep Community Group final report, 10 May 2024): the response header
  ``tdm-reservation: 1``; the origin's ``/.well-known/tdmrep.json``, a JSON array of
  ``{"location": PATTERN, "tdm-reservation": 0|1, "tdm-policy": URL}`` where the first entry whose
  ``location`` matches the image path (robots.txt pattern syntax: prefix match, ``*``, trailing ``$``;
  path with its query) decides (``1`` reserves); and ``<meta name="tdm-reservation" content="1">`` on a
  page, read by ``wit candidates`` (a page carrying it drops its pairs as ``opt_out_tdmrep``,
  ``page_reserves_tdm``). tdmrep.json errors: 2xx parsed (an entry that is not an object or has no string
  ``location`` is skipped); 4xx (and the other "unavailable" answers of robots.txt) = no declaration;
  a body that is not a JSON array (or over 512 KiB), 5xx or a network failure = every path reserved
  (we cannot tell, so we do not take).
- ``content_usage`` -> ``opt_out_content_usage``. IETF AI preferences (draft-ietf-aipref-vocab,
  draft-ietf-aipref-attach; https://datatracker.ietf.org/doc/draft-ietf-aipref-attach/): a
  ``Content-Usage`` response header, or ``Content-Usage: [PATH] PREFS`` lines in the robots.txt group that
  applies to us (PATH optional, robots.txt pattern syntax; of several lines the longest matching PATH
  decides, no PATH = ``/``). PREFS is an RFC 9651 dictionary such as ``train-ai=n, search=y``; a member
  that does not parse is skipped, the others are kept. Refused when ``train-ai`` is ``n``, or ``train-ai``
  is unstated and its parent category ``bots`` is ``n`` (the vocabulary's hierarchy). ``train-genai=n``
  alone does not refuse: it reserves generative training only. Cloudflare Content Signals Policy
  (https://contentsignals.org/, Sep 2025): a robots.txt ``Content-Signal: [PATH] search=yes, ai-train=no``
  line in the group that applies to us (same PATH rule); ``ai-train=no`` refuses. Both robots.txt lines are
  parsed here (protego ignores unknown lines), from the same robots.txt fetch, with its error policy
  (a robots.txt that cannot be read refuses as ``opt_out_robots``, or as ``opt_out_content_usage`` when
  only ``content_usage`` is chosen). The robots.txt lines are ours to honour as preferences attached to the
  paths; a ``Content-Usage`` header and a robots.txt line that disagree refuse (the most restrictive wins).
- ``ai_txt`` -> ``opt_out_ai_txt``: Spawning's ``/ai.txt``: robots.txt-shaped groups, chosen as above;
  ``Disallow``/``Allow`` patterns in robots.txt syntax, where a pattern ``*.EXT`` (no ``/``) matches a path
  ending in ``.EXT`` (case-insensitive, query ignored); longest pattern wins, Allow wins a tie. Same size
  bound and error policy as robots.txt (4xx: no rules; 5xx or network failure: everything refused).

The per-origin cache. ``OriginSignals`` fetches each file an enabled signal needs once per origin
(scheme, host, port) per worker, through the worker's guarded session (SSRF guard, timeouts, retries,
bounded size), concurrent rows of one origin waiting for the one fetch; it keeps the parsed rules of at
most ``MAX_ORIGINS`` origins (least recently used dropped). ``take_counts`` hands over, per file
(``robots``, ``tdmrep``, ``ai_txt``), how many origins' file was ``ok`` (parsed), ``missing`` (4xx or
another "unavailable" answer: no rules) or an ``error`` (every path refused, as above); the download
shows them as ``consent_files`` in ``stats.json``.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Iterable, Mapping
from urllib.parse import unquote, urlsplit

from protego import Protego

from . import USER_AGENT

SIGNALS = ("robots", "noai", "tdmrep", "content_usage", "ai_txt", "metadata", "c2pa")
CONSENT_REASONS = tuple(f"opt_out_{signal}" for signal in SIGNALS)
PRODUCT_TOKEN = "wit-pipeline"
# The signals read from the image response's headers (``header_refusal``), before its body.
HEADER_SIGNALS = ("noai", "tdmrep", "content_usage")
# Origin files: name -> (path, the signals that need it).
ORIGIN_FILES = {
    "robots": ("/robots.txt", ("robots", "content_usage")),
    "tdmrep": ("/.well-known/tdmrep.json", ("tdmrep",)),
    "ai_txt": ("/ai.txt", ("ai_txt",)),
}
FILE_OUTCOMES = ("ok", "missing", "error")
MAX_FILE_BYTES = 512 << 10
MAX_ORIGINS = 20_000
# The origin could not be reached at all: the row gets this reason rather than an opt-out (the image
# request would fail the same way).
UNREACHABLE = frozenset({"dns_error", "blocked_address", "invalid_url"})
# A signal file that cannot be read for these reasons (or a 5xx) refuses every path of its origin; any other
# failure (4xx, another non-200 status, too many or malformed redirects: RFC 9309 2.3.1.2) means no file.
FILE_ERRORS = frozenset({"timeout", "connection_error", "fetch_error", "too_large"})
Refusal = tuple[str, str]     # (status reason, message)


# -- choosing what to honour ----------------------------------------------------------------------------

def parse_signals(text: str) -> frozenset[str]:
    """``--opt-out-signals``: ``all``, ``none`` or a comma list of ``SIGNALS``; ``ValueError`` naming the
    known names otherwise."""
    words = [word.strip().lower() for word in str(text).split(",") if word.strip()]
    if words == ["all"]:
        return frozenset(SIGNALS)
    if words == ["none"]:
        return frozenset()
    unknown = [word for word in words if word not in SIGNALS]
    if unknown or not words:
        raise ValueError(f"unknown signal {(unknown or [text])[0]!r}; use all, none or a comma list of: "
                         + ", ".join(SIGNALS))
    return frozenset(words)


def product_token(user_agent: str) -> str:
    """The product token a User-Agent header starts with (``wit-pipeline/0.1 (+url)`` -> ``wit-pipeline``)."""
    match = re.match(r"\s*([A-Za-z0-9_-]+)", user_agent or "")
    return match.group(1).lower() if match else ""


def check_user_agent(text: str) -> str:
    """``--user-agent``: a non-empty header value without control characters; ``ValueError`` otherwise."""
    if not str(text).strip() or any(ord(c) < 0x20 or ord(c) == 0x7F for c in str(text)):
        raise ValueError(f"{text!r} is not a User-Agent header value (empty, or control characters)")
    return text


def parse_agents(text: str) -> tuple[str, ...]:
    """``--robots-agents GPTBot,CCBot``: product tokens, lower-cased; ``ValueError`` for a name that is not
    one (RFC 9309: letters, digits, ``_`` and ``-``)."""
    agents = [word.strip() for word in str(text).split(",") if word.strip()]
    bad = [agent for agent in agents if not re.fullmatch(r"[A-Za-z0-9_-]+", agent)]
    if bad:
        raise ValueError(f"{bad[0]!r} is not a robots.txt product token (letters, digits, _ and -)")
    return tuple(dict.fromkeys(agent.lower() for agent in agents))


def obeyed_agents(user_agent: str = USER_AGENT, robots_agents: Iterable[str] = ()) -> tuple[str, ...]:
    """The tokens whose rules we obey: ours, the ``--user-agent``'s own token, then ``--robots-agents``."""
    tokens = [PRODUCT_TOKEN, product_token(user_agent), *(agent.lower() for agent in robots_agents)]
    return tuple(dict.fromkeys(token for token in tokens if token))


# -- robots.txt-shaped files: groups and patterns -------------------------------------------------------

@dataclass
class Group:
    agents: list[str] = field(default_factory=list)
    lines: list[tuple[str, str]] = field(default_factory=list)     # (field lower-cased, value), in order


_LINE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_-]*)\s*:\s*(.*?)\s*$")


def parse_groups(text: str) -> list[Group]:
    """The groups of a robots.txt-shaped file (RFC 9309 §2.1): ``User-agent`` lines start a group (several in
    a row share it); the lines up to the next ``User-agent`` after a rule belong to it. Comments, lines before
    any group and lines without a ``field: value`` shape are ignored."""
    groups: list[Group] = []
    current: Group | None = None
    for raw in text.splitlines():
        match = _LINE.match(raw.split("#", 1)[0])
        if not match:
            continue
        name, value = match.group(1).lower(), match.group(2)
        if name in ("user-agent", "useragent"):
            if current is None or current.lines:
                current = Group()
                groups.append(current)
            current.agents.append(_agent_name(value))
        elif current is not None and name != "sitemap":
            current.lines.append((name, value))
    return groups


def _agent_name(value: str) -> str:
    value = value.strip()
    if value.startswith("*"):
        return "*"
    match = re.match(r"[A-Za-z0-9_-]+", value)
    return match.group(0).lower() if match else value.lower()


def group_lines(groups: list[Group], agent: str) -> list[tuple[str, str]]:
    """The lines that apply to ``agent`` (RFC 9309 §2.2.1): every group naming it exactly (merged), else
    every ``*`` group, else none."""
    agent = agent.lower()
    named = [line for group in groups if agent in group.agents for line in group.lines]
    if named:
        return named
    return [line for group in groups if "*" in group.agents for line in group.lines]


def url_path(url: str) -> str:
    """The path and query robots.txt-style patterns are matched against (``/`` when empty)."""
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def pattern_match_length(pattern: str, path: str) -> int:
    """How specific ``pattern`` is when it matches ``path`` (its length), or -1 when it does not. Robots.txt
    syntax (RFC 9309 §2.2.3): anchored at the start, ``*`` any characters, ``$`` at the end anchors the end;
    percent-encoding is undone on both sides. ``*.EXT`` (no ``/``) matches a path whose part before the
    query ends in ``.EXT``, case-insensitive (ai.txt's extension rules)."""
    if not pattern:
        return -1
    if re.fullmatch(r"\*\.[^/*$?]+", pattern):
        bare = unquote(path.split("?", 1)[0]).lower()
        return len(pattern) if bare.endswith(pattern[1:].lower()) else -1
    anchored = pattern.endswith("$")
    body = unquote(pattern[:-1] if anchored else pattern)
    regex = ".*".join(re.escape(piece) for piece in body.split("*")) + ("$" if anchored else "")
    return len(pattern) if re.match(regex, unquote(path), re.DOTALL) else -1


def longest_rule(rules: Iterable[tuple[str, str]], path: str) -> tuple[str, str] | None:
    """The ``(kind, pattern)`` rule whose pattern matches ``path`` longest; of equally long ones the first
    with kind ``allow`` (Allow wins a tie), else the first."""
    best, best_key = None, (-1, False)
    for kind, pattern in rules:
        length = pattern_match_length(pattern, path)
        key = (length, kind == "allow")
        if length >= 0 and key > best_key:
            best, best_key = (kind, pattern), key
    return best


def _scoped(value: str) -> tuple[str, str]:
    """``[PATH] REST`` -> ``(PATH or "/", REST)`` (Content-Usage and Content-Signal lines)."""
    head, _, rest = value.strip().partition(" ")
    if head.startswith("/"):
        return head, rest.strip()
    return "/", value.strip()


def parse_preferences(text: str, separator: str = "=") -> dict[str, str]:
    """A comma list of ``key=value`` members (an RFC 9651 dictionary, or Content-Signal's): keys and values
    lower-cased, parameters (``;...``) and quotes dropped, a member without ``=`` skipped, the last of a
    repeated key kept."""
    prefs = {}
    for member in text.split(","):
        member = member.split(";", 1)[0].strip()
        key, found, value = member.partition(separator)
        if found and key.strip():
            prefs[key.strip().lower()] = value.strip().strip('"').lower()
    return prefs


def content_usage_refuses(prefs: Mapping[str, str]) -> bool:
    """AI preferences refuse training: ``train-ai=n``, or ``train-ai`` unstated under ``bots=n``."""
    value = prefs.get("train-ai")
    if value in ("y", "n"):
        return value == "n"
    return prefs.get("bots") == "n"


def content_signal_refuses(prefs: Mapping[str, str]) -> bool:
    """Cloudflare content signals refuse training: ``ai-train=no``."""
    return prefs.get("ai-train") == "no"


def _scoped_refusal(lines: list[tuple[str, str]], name: str, path: str, refuses) -> str | None:
    """The line (of field ``name``) with the longest PATH matching ``path``, when it refuses."""
    scoped = [(_scoped(value), value) for field_name, value in lines if field_name == name]
    best, best_length = None, -1
    for (scope, prefs), value in scoped:
        length = pattern_match_length(scope, path)
        if length > best_length:
            best, best_length = (prefs, value), length
    if best is not None and refuses(parse_preferences(best[0])):
        return best[1]
    return None


class RobotsRules:
    """One robots.txt, read for the obeyed agents: ``refusal(url)`` for robots and content usage."""

    def __init__(self, text: str, agents: tuple[str, ...]):
        groups = parse_groups(text)
        self.agents = agents
        self.lines = {agent: group_lines(groups, agent) for agent in agents}
        self.parsers = {agent: Protego.parse("User-agent: *\n" + "".join(
            f"{name}: {value}\n" for name, value in lines if name in ("allow", "disallow", "crawl-delay")))
            for agent, lines in self.lines.items()}

    def disallowing_agent(self, url: str) -> str | None:
        """The first obeyed agent the rules refuse ``url`` for, or None."""
        return next((agent for agent, parser in self.parsers.items() if not parser.can_fetch(url, "*")), None)

    def crawl_delay(self) -> float | None:
        delays = [parser.crawl_delay("*") for parser in self.parsers.values()]
        delays = [float(d) for d in delays if d is not None]
        return max(delays) if delays else None

    def usage_refusal(self, path: str) -> str | None:
        """A ``Content-Usage`` or ``Content-Signal`` line that refuses training for ``path``, or None."""
        for lines in self.lines.values():
            for name, refuses in (("content-usage", content_usage_refuses),
                                  ("content-signal", content_signal_refuses)):
                line = _scoped_refusal(lines, name, path, refuses)
                if line is not None:
                    return f"robots.txt {name.title()}: {line}"
        return None


class AiTxtRules:
    """One ai.txt, read for the obeyed agents."""

    def __init__(self, text: str, agents: tuple[str, ...]):
        groups = parse_groups(text)
        self.rules = {agent: [(name, value) for name, value in group_lines(groups, agent)
                              if name in ("allow", "disallow") and value] for agent in agents}

    def refusal(self, path: str) -> str | None:
        for agent, rules in self.rules.items():
            rule = longest_rule(rules, path)
            if rule is not None and rule[0] == "disallow":
                return f"ai.txt Disallow: {rule[1]} (for {agent})"
        return None


def parse_tdmrep(body: bytes) -> list[tuple[str, bool]]:
    """``(location, reserved)`` of each usable entry of a tdmrep.json; ``ValueError`` when the body is not a
    JSON array."""
    entries = json.loads(body.decode("utf-8-sig"))
    if not isinstance(entries, list):
        raise ValueError("tdmrep.json is not a JSON array")
    rules = []
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("location"), str):
            rules.append((entry["location"].strip(), str(entry.get("tdm-reservation")).strip() == "1"))
    return rules


def tdmrep_refusal(rules: list[tuple[str, bool]], path: str) -> str | None:
    """The first entry whose location matches ``path`` decides."""
    for location, reserved in rules:
        if pattern_match_length(location, path) >= 0:
            return f"tdmrep.json location {location} has tdm-reservation 1" if reserved else None
    return None


# -- response headers ---------------------------------------------------------------------------------

def x_robots_tag_refuses(value: str | None) -> bool:
    """``X-Robots-Tag`` with ``noai`` or ``noimageai`` (after any ``agent:`` prefix)."""
    if not value:
        return False
    directives = {d.strip().lower().split(":")[-1].strip() for d in value.replace(";", ",").split(",")}
    return bool(directives & {"noai", "noimageai"})


def header_refusal(headers: Mapping[str, str], signals: Iterable[str]) -> Refusal | None:
    """The refusal an image response's headers carry for the enabled ``signals`` (case-insensitive
    ``headers``), or None: ``X-Robots-Tag`` noai, ``tdm-reservation: 1``, ``Content-Usage`` train-ai=n."""
    signals = frozenset(signals)
    tag = headers.get("X-Robots-Tag")
    if "noai" in signals and x_robots_tag_refuses(tag):
        return "opt_out_noai", f"X-Robots-Tag: {tag}"
    reservation = headers.get("tdm-reservation")
    if "tdmrep" in signals and reservation is not None and reservation.strip() == "1":
        return "opt_out_tdmrep", "tdm-reservation: 1"
    usage = headers.get("Content-Usage")
    if "content_usage" in signals and usage and content_usage_refuses(parse_preferences(usage)):
        return "opt_out_content_usage", f"Content-Usage: {usage}"[:300]
    return None


# -- pages --------------------------------------------------------------------------------------------

def page_reserves_tdm(metas: Iterable[tuple[str | None, str | None]]) -> bool:
    """A page's ``<meta name=... content=...>`` pairs include ``tdm-reservation`` = ``1``."""
    return any((name or "").strip().lower() == "tdm-reservation" and (content or "").strip() == "1"
               for name, content in metas)


# -- the per-origin cache ------------------------------------------------------------------------------

@dataclass
class _Entry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: bool = False
    rules: object = None             # the parsed file, or None when it is missing (4xx)
    failure: Refusal | None = None   # set when the file could not be read: every path refused


def _url_problem(url: str) -> str | None:
    from .http import url_problem  # here: http imports this module for its header checks

    return url_problem(url)


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL, or None."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    scheme = parts.scheme.lower()
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default = {"http": 80, "https": 443}[scheme]
    return f"{scheme}://{host}" + (f":{port}" if port and port != default else "")


class OriginSignals:
    """The signal files of each origin, fetched once per worker through ``session`` and parsed; thread-safe.

    ``refusal(url)`` is what the download asks before requesting an image; ``allowed``/``crawl_delay`` are
    the search crawl's robots.txt questions.
    """

    def __init__(self, session, signals: Iterable[str] = SIGNALS, agents: tuple[str, ...] = (PRODUCT_TOKEN,),
                 max_origins: int = MAX_ORIGINS):
        self.session, self.signals, self.agents = session, frozenset(signals), agents
        self.max_origins = max_origins
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._counts: Counter = Counter()

    def refusal(self, url: str) -> Refusal | None:
        """Why the origin's files refuse ``url`` (a status reason and a message), or None."""
        origin = origin_of(url)
        if origin is None or _url_problem(url):
            return None      # nothing to ask: the fetch itself reports the bad URL
        path = url_path(url)
        for kind, (_path, needs) in ORIGIN_FILES.items():
            if self.signals & set(needs):
                refused = self._check(kind, self._entry(origin, kind), url, path)
                if refused is not None:
                    return refused
        return None

    def _check(self, kind: str, entry: _Entry, url: str, path: str) -> Refusal | None:
        if entry.failure is not None:
            reason, message = entry.failure
            if reason == "opt_out_robots" and "robots" not in self.signals:
                return "opt_out_content_usage", message      # only its Content-Usage lines were asked for
            return entry.failure
        if entry.rules is None:
            return None
        if kind == "robots":
            agent = entry.rules.disallowing_agent(url) if "robots" in self.signals else None
            if agent is not None:
                return "opt_out_robots", f"robots.txt disallows {path[:200]} for {agent}"
            usage = entry.rules.usage_refusal(path) if "content_usage" in self.signals else None
            return ("opt_out_content_usage", usage[:300]) if usage else None
        found = entry.rules.refusal(path) if kind == "ai_txt" else tdmrep_refusal(entry.rules, path)
        return (f"opt_out_{kind}", found[:300]) if found else None

    def allowed(self, url: str) -> bool:
        """robots.txt allows ``url`` for every obeyed agent (an unreadable robots.txt allows nothing)."""
        origin = origin_of(url)
        if origin is None or _url_problem(url):
            return True      # nothing to ask: the fetch itself reports the bad URL
        entry = self._entry(origin, "robots")
        if entry.failure is not None:     # unreadable: disallowed, unless the host is unreachable anyway
            return entry.failure[0] in UNREACHABLE     # (the request itself then fails with that reason)
        return entry.rules is None or entry.rules.disallowing_agent(url) is None

    def crawl_delay(self, url: str) -> float | None:
        origin = origin_of(url)
        entry = self._entry(origin, "robots") if origin else None
        return entry.rules.crawl_delay() if entry is not None and entry.rules is not None else None

    def take_counts(self) -> Counter:
        """``{(file, outcome): origins}`` since the last call (``FILE_OUTCOMES``), then reset."""
        with self._lock:
            counts, self._counts = self._counts, Counter()
        return counts

    def _entry(self, origin: str, kind: str) -> _Entry:
        key = (origin, kind)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry()
                while len(self._entries) > self.max_origins * len(ORIGIN_FILES):
                    self._entries.popitem(last=False)
            else:
                self._entries.move_to_end(key)
        with entry.lock:       # the first row of an origin fetches; the others wait for its answer
            if not entry.done:
                outcome = self._load(origin, kind, entry)
                entry.done = True
                with self._lock:
                    self._counts[(kind, outcome)] += 1
        return entry

    def _load(self, origin: str, kind: str, entry: _Entry) -> str:
        """Fetch and parse one file into ``entry``; returns its outcome (``FILE_OUTCOMES``)."""
        path = ORIGIN_FILES[kind][0]
        result = self.session.fetch(origin + path, max_bytes=MAX_FILE_BYTES, truncate=kind != "tdmrep",
                                    header_signals=False)
        if result.ok:
            try:
                entry.rules = self._parse(kind, result.body)
                return "ok"
            except (ValueError, UnicodeDecodeError, RecursionError) as exc:
                entry.failure = (f"opt_out_{kind}", f"{path} unreadable ({type(exc).__name__}): every path "
                                 f"refused: {exc}"[:300])
                return "error"
        if result.error not in FILE_ERRORS and not result.error.startswith("http_5") \
                and result.error not in UNREACHABLE:
            return "missing"
        reason = result.error if result.error in UNREACHABLE else f"opt_out_{kind}"
        entry.failure = (reason, f"{path}: {result.error} {result.message}; every path refused".strip()[:300])
        return "error"

    def _parse(self, kind: str, body: bytes):
        if kind == "tdmrep":
            return parse_tdmrep(body)
        text = body.decode("utf-8", "replace")
        return RobotsRules(text, self.agents) if kind == "robots" else AiTxtRules(text, self.agents)


def consent_file_counts(counters: Mapping[str, int]) -> dict[str, dict[str, int]]:
    """``{file: {outcome: origins}}`` from the stage's ``signal_file_<file>_<outcome>`` counters."""
    return {kind: {outcome: int(counters.get(f"signal_file_{kind}_{outcome}", 0)) for outcome in FILE_OUTCOMES}
            for kind in ORIGIN_FILES}
