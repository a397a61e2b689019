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
"""

from __future__ import annotations

import threading
from operator import itemgetter

import ahocorasick

from ..querylist import load_query_list
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
        self.queries = sorted(set(q for q in queries if q))
        self.automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
        pad = " " if mode == "word" else ""
        for index, query in enumerate(self.queries):
            self.automaton.add_word(f"{pad}{query}{pad}", index)
        if self.queries:
            self.automaton.make_automaton()

    def __len__(self) -> int:
        return len(self.queries)

    def match_indices(self, text: str) -> list[int]:
        """Indices (into ``self.queries``) of every query ``text`` contains, ascending."""
        if not self.queries:
            return []
        form = canonical_fast(text, self.keep_case)
        if not form:
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


_cache: dict[tuple, QueryMatcher] = {}
_cache_lock = threading.Lock()


def shared_matcher(path: str, mode: str, keep_case: bool) -> QueryMatcher:
    """One matcher per (queries path, mode, case) per process: Beam workers build the automaton once."""
    key = (path, mode, keep_case)
    with _cache_lock:
        matcher = _cache.get(key)
        if matcher is None:
            matcher = _cache[key] = QueryMatcher(load_query_list(path, keep_case), mode, keep_case)
        return matcher
