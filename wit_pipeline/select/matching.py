"""Which queries a caption contains: one Aho–Corasick automaton over the whole query list.

Both sides are compared in ``wit_pipeline.text.canonical`` form (queries are
stored in it; captions are brought to it here), so case, punctuation, Unicode
forms and white space never decide a match.

- ``word`` (default, MetaCLIP's rule): a query matches when ``" " + query + " "``
  occurs in ``" " + canonical(caption) + " "`` — whole words only, so "cat"
  does not match "concatenate" but "red car" matches "a red car parked".
- ``substring`` (the CLIP paper's literal "text includes the query"): the query
  occurs anywhere in ``canonical(caption)``, inside words too.

The automaton finds every occurrence of every query in one pass over the
caption, so the cost per caption does not grow with the list (the naive
``for q in queries: q in text`` loop does ~500k substring searches per caption).

A query list with languages (queries.parquet's ``lang`` column) is matched by
``QueryIndex``: one automaton per language, the word rule where the language
is written with spaces (``segment.uses_spaces``) and the substring rule where
it is not (MetaCLIP's rule for Chinese, Japanese, Thai ...), and entries
without a language (a plain text list) matched by ``--match`` for every text.
Entries are numbered (``entry ids``) in (language, query) order; ``route``
keeps the ids of one language's list plus the language-neutral ones.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from operator import itemgetter

import ahocorasick

from .. import fileio
from ..querylist import load_query_lists
from ..segment import uses_spaces
from ..text import canonical, canonical_fast

_value = itemgetter(1)

MODES = ("word", "substring")


class QueryMatcher:
    """Match captions against ``queries`` (canonical strings); ``match(text)`` gives the sorted matches."""

    def __init__(self, queries: list[str], mode: str = "word", keep_case: bool = False):
        if mode not in MODES:
            raise ValueError(f"match mode must be one of {MODES}, not {mode!r}")
        self.mode, self.keep_case = mode, keep_case
        # Sorted, so ascending indices are also the queries in sorted order (match() needs no string sort).
        # A tuple of strings: the collector stops tracking it, so it never walks this list in a collection.
        self.queries = tuple(sorted(set(q for q in queries if q)))
        self.automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
        pad = " " if mode == "word" else ""
        for index, query in enumerate(self.queries):
            self.automaton.add_word(f"{pad}{query}{pad}", index)
        if self.queries:
            self.automaton.make_automaton()
        # A substring list of another script (a Chinese list, an English caption) cannot match a text
        # holding none of its queries' first characters: one C-level set test skips the automaton walk.
        self.first_chars = frozenset(q[0] for q in self.queries) if mode == "substring" else None

    def __len__(self) -> int:
        return len(self.queries)

    def match_indices(self, text: str) -> list[int]:
        """Indices (into ``self.queries``) of every query ``text`` contains, ascending."""
        if not self.queries:
            return []
        return self.match_form(canonical_fast(text, self.keep_case))

    def match_form(self, form: str) -> list[int]:
        """``match_indices`` of a text already in canonical form."""
        if not form or not self.queries or (self.first_chars is not None and self.first_chars.isdisjoint(form)):
            return []
        return sorted(set(map(_value, self.automaton.iter(f" {form} " if self.mode == "word" else form))))

    def match(self, text: str) -> list[str]:
        """The queries ``text`` contains, sorted."""
        return list(map(self.queries.__getitem__, self.match_indices(text)))


def naive_match(queries: list[str], text: str, mode: str = "word", keep_case: bool = False) -> list[str]:
    """The straightforward port (MetaCLIP's loop): one ``in`` test per query. The reference for tests."""
    form = canonical(text, keep_case)
    if mode == "word":
        haystack = f" {form} "
        return sorted({q for q in queries if q and f" {q} " in haystack})
    return sorted({q for q in queries if q and q in form})


def language_mode(lang: str | None, mode: str) -> str:
    """The rule a language's queries are matched by: ``word`` becomes ``substring`` for a language written
    without spaces (a word boundary is not in the text); a language-neutral list keeps ``mode``."""
    if lang is not None and mode == "word" and not uses_spaces(lang):
        return "substring"
    return mode


class QueryIndex:
    """Every entry ``(lang, query)`` of a query list, numbered, and one ``QueryMatcher`` per language.

    ``langs``: the languages whose lists are matched (``None``: all of them); a language-neutral entry
    (``lang`` None) is always matched. ``match_ids(text)`` gives the ids of every entry the text
    contains, ascending; ``route(ids, lang)`` those of ``lang``'s list and the neutral ones.
    """

    def __init__(self, lists: dict[str | None, list[str]], mode: str = "word", keep_case: bool = False,
                 langs: frozenset[str] | None = None):
        self.keep_case = keep_case
        entries: list[tuple[str | None, str]] = []
        self.matchers: list[tuple[int, QueryMatcher]] = []       # (first entry id, matcher)
        for lang in sorted(lists, key=lambda code: code or ""):   # neutral first: "" sorts first
            if lang is not None and langs is not None and lang not in langs:
                continue
            matcher = QueryMatcher(lists[lang], language_mode(lang, mode), keep_case)
            if matcher.queries:
                self.matchers.append((len(entries), matcher))
                entries.extend((lang, query) for query in matcher.queries)
        # Tuples of strings (and None): the collector stops tracking them, so its full collections, which
        # a job's many short-lived objects set off again and again, never walk these hundreds of thousands
        # of items (lists would be walked every time).
        self.entries = tuple(entries)
        self.entry_langs = tuple(lang for lang, _query in entries)
        self.entry_queries = tuple(query for _lang, query in entries)
        self.languages = frozenset(self.entry_langs)
        self.skipped: Counter = Counter()      # lines of the list left out by reason (shared_index sets it)
        self.version: tuple | None = None      # the list's files when read (shared_index sets it)

    def __len__(self) -> int:
        return len(self.entries)

    def match_ids(self, text: str) -> list[int]:
        """The ids of every entry ``text`` contains, ascending."""
        form = canonical_fast(text, self.keep_case)
        if not form:
            return []
        if len(self.matchers) == 1:
            first, matcher = self.matchers[0]
            found = matcher.match_form(form)
            return [first + i for i in found] if first else found
        return [first + i for first, matcher in self.matchers for i in matcher.match_form(form)]

    def route(self, ids: list[int], lang: str | None) -> list[int]:
        """The ids of ``lang``'s entries and of the language-neutral ones."""
        if self.languages <= {lang, None}:   # every entry is lang's or neutral (one list, the usual case)
            return ids
        langs = self.entry_langs
        return [i for i in ids if langs[i] is None or langs[i] == lang]

    def queries_of(self, ids: list[int]) -> list[str]:
        """The query strings of ``ids`` (ascending), sorted and distinct."""
        queries = [self.entry_queries[i] for i in ids]
        if len(self.matchers) == 1 or len(queries) < 2:   # one list's entries are numbered in query order
            return queries
        return sorted(set(queries))


_cache: dict[tuple, QueryIndex] = {}
_cache_lock = threading.Lock()


def _version(path: str) -> tuple:
    """What changes when a local query list is rewritten (its files' sizes and modification times), so a
    process that runs the job again after that builds the index again; () for a remote list."""
    if fileio.is_remote(path) or not os.path.exists(path):
        return ()
    paths = [os.path.join(path, name) for name in sorted(os.listdir(path))] if os.path.isdir(path) else [path]
    version = []
    for name in paths:
        stat = os.stat(name)
        version.append((name, stat.st_size, stat.st_mtime_ns))
    return tuple(version)


def shared_index(path: str, mode: str, keep_case: bool, langs: frozenset[str] | None = None) -> QueryIndex:
    """One ``QueryIndex`` per (query list, mode, case, languages) per process; ``index.skipped`` counts the
    list's lines left out (``querylist.load_query_lists``)."""
    key = ("index", path, mode, keep_case, langs)
    version = _version(path)
    with _cache_lock:
        index = _cache.get(key)
        if index is None or index.version not in (None, version):
            skipped = Counter()
            index = _cache[key] = QueryIndex(load_query_lists(path, keep_case, skipped), mode, keep_case, langs)
            index.skipped, index.version = skipped, version
        return index
