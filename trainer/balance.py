"""Balancing in the loader (MetaCLIP 2's online curation) and caption sampling: the pure part (no torch, no I/O).

Every epoch re-draws which samples of a head query are used: a sample with
queries ``Q`` is kept with ``wit select``'s probabilistic rule
(``wit_pipeline.select.balancing.keep_probabilistic``: ``1 - Π_q (1 - T / max(count_q, T))``), its coin
``rank_unit`` of the *use id* ``"<epoch>/<key>"`` under the run's seed. The coin is a function of
``(seed, epoch, key)`` only, so a resumed run, another worker count or another rank layout draws the same
kept set. Samples without ``queries`` are always kept (``kept_without_queries``); a query the counts do not
know counts 0 (a tail: always kept).

``--caption-keys txt=0.7,json:recaption=0.3``: each use of a sample draws one of the fields with those
probabilities from another coin of the same ``(seed, epoch, key)`` (``"<epoch>/<key>/caption"``). A field
is ``txt`` (the ``.txt`` member), another member's extension (``recap.txt``), or ``json:NAME`` (a string
in the sample's json); a field that is missing or empty falls back to ``txt`` and is counted.

``EpochTally``: what one epoch read and kept (``seen``, ``kept``, ``per_query``, the kept keys, samples kept
without queries, caption fallbacks, kept samples the run ended before using, streams that finished the
epoch); tallies of streams and ranks add up (``merge``), and ``record`` is the epoch's
``OUT/balance/epoch-NNNN.json`` (see ``keys_sha256`` for the keys' digest).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from dataclasses import dataclass, field

from wit_pipeline.errors import UserError
from wit_pipeline.select.balancing import keep_probabilistic, keep_probability, rank_unit

CAPTION_FIELD = "txt"
JSON_PREFIX = "json:"


# ---------------------------------------------------------------------------------------------
# The coins
# ---------------------------------------------------------------------------------------------
def use_id(epoch: int, key: str) -> str:
    """The identity of one use of a sample: what its coins are drawn from (with the seed)."""
    return f"{epoch}/{key}"


def keeps(key: str, queries: list[str] | None, counts: dict[str, int], cap: int, seed: int, epoch: int) -> bool:
    """Whether epoch ``epoch`` uses the sample: select's probabilistic rule; no queries: always."""
    if not queries:
        return True
    return keep_probabilistic(use_id(epoch, key), [counts.get(q, 0) for q in queries], cap, seed)


def expected_kept(combos: dict[tuple[str, ...], int], counts: dict[str, int], cap: int) -> float:
    """Samples an epoch keeps in expectation; ``combos``: {sorted queries of a sample: samples with them}."""
    return sum(n * (keep_probability([counts.get(q, 0) for q in queries], cap) if queries else 1.0)
               for queries, n in combos.items())


def kept_fraction_of_matches(counts: dict[str, int], cap: int) -> float:
    """``Σ min(count, cap) / Σ count``: the share a cap keeps when each sample has one query (an estimate
    for shards whose per-sample queries were not read)."""
    total = sum(counts.values())
    return sum(min(count, cap) for count in counts.values()) / total if total else 1.0


# ---------------------------------------------------------------------------------------------
# Caption fields
# ---------------------------------------------------------------------------------------------
def parse_caption_keys(spec: str) -> tuple[tuple[str, float], ...]:
    """``txt=0.7,json:recaption=0.3`` -> ``(("txt", 0.7), ("json:recaption", 0.3))``; a ``UserError`` unless
    every field is named once with a finite probability > 0 and they sum to 1."""
    fields: list[tuple[str, float]] = []
    for part in spec.split(","):
        name, sep, value = part.strip().partition("=")
        name = name.strip()
        if not sep or not name or name == JSON_PREFIX or name.startswith("."):
            raise UserError(f"--caption-keys {spec!r}: {part.strip()!r} is not FIELD=PROBABILITY "
                            "(FIELD: txt, another member's extension, or json:NAME)")
        try:
            probability = float(value)
        except ValueError:
            probability = math.nan
        if not math.isfinite(probability) or probability <= 0:
            raise UserError(f"--caption-keys {spec!r}: {name}'s probability {value.strip()!r} is not a number > 0")
        if name in dict(fields):
            raise UserError(f"--caption-keys {spec!r}: {name} is named twice")
        fields.append((name, probability))
    total = sum(p for _, p in fields)
    if abs(total - 1) > 1e-6:
        raise UserError(f"--caption-keys {spec!r}: the probabilities sum to {total:g}, not 1")
    return tuple(fields)


def draw_caption_field(fields: tuple[tuple[str, float], ...], seed: int, epoch: int, key: str) -> str:
    """The field this use of the sample takes its caption from."""
    coin = rank_unit(use_id(epoch, key) + "/caption", seed)
    below = 0.0
    for name, probability in fields:
        below += probability
        if coin < below:
            return name
    return fields[-1][0]     # the coin fell in the rounding gap above the last cumulative sum


def field_text(sample: dict, name: str, metadata: dict | None) -> str | None:
    """The text of field ``name`` of a webdataset sample (``metadata``: its parsed json), ``None`` when the
    sample lacks it or it is empty."""
    if name.startswith(JSON_PREFIX):
        value = (metadata or {}).get(name[len(JSON_PREFIX):])
        return value if isinstance(value, str) and value.strip() else None
    data = sample.get(name)
    if not isinstance(data, bytes):
        return None
    text = data.decode("utf-8")
    return text if text.strip() else None


def sample_metadata(sample: dict) -> dict | None:
    """The sample's json as a dict (``{}`` when it has none); ``None`` when it is not a JSON object."""
    data = sample.get("json")
    if data is None:
        return {}
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def sample_queries(metadata: dict) -> list[str] | None:
    """The json's ``queries`` (``wit select``'s matches); ``None`` when absent or empty. A ``ValueError`` when
    it is not a list of strings."""
    queries = metadata.get("queries")
    if queries is None:
        return None
    if not isinstance(queries, list) or not all(isinstance(q, str) for q in queries):
        raise ValueError("its json's 'queries' is not a list of strings")
    return sorted(set(queries)) or None


# ---------------------------------------------------------------------------------------------
# What an epoch read and kept
# ---------------------------------------------------------------------------------------------
def keys_sha256(keys: list[str]) -> str:
    """sha256 of the kept keys sorted by code point, each followed by ``\\n`` (``"\\n".join(sorted(keys)) +
    "\\n"``; no keys: the empty string): ``LC_ALL=C sort keys.txt | sha256sum`` of a file of one key per line."""
    return hashlib.sha256("".join(key + "\n" for key in sorted(keys)).encode("utf-8")).hexdigest()


@dataclass
class EpochTally:
    seen: int = 0                    # samples read (kept or not, blocklisted and corrupt ones too)
    kept: int = 0                    # samples the coin kept that decoded into a batch
    kept_without_queries: int = 0
    per_query: Counter = field(default_factory=Counter)       # {query: kept samples listing it}
    keys: list[str] = field(default_factory=list)             # kept keys, in reading order
    caption_fallbacks: int = 0       # uses whose drawn caption field was missing: the .txt was used
    unused: int = 0                  # kept samples the run ended before training on (its last partial batch)
    streams_done: int = 0            # data streams that finished reading this epoch

    def add_kept(self, key: str, queries: list[str] | None) -> None:
        self.kept += 1
        self.keys.append(key)
        if queries:
            self.per_query.update(queries)
        else:
            self.kept_without_queries += 1

    def merge(self, other: EpochTally) -> None:
        self.seen += other.seen
        self.kept += other.kept
        self.kept_without_queries += other.kept_without_queries
        self.per_query.update(other.per_query)
        self.keys.extend(other.keys)
        self.caption_fallbacks += other.caption_fallbacks
        self.unused += other.unused
        self.streams_done += other.streams_done

    def to_dict(self) -> dict:
        """Plain containers for a checkpoint or a batch (the keys as one string: cheap to pickle and hash)."""
        return {"seen": self.seen, "kept": self.kept, "kept_without_queries": self.kept_without_queries,
                "per_query": dict(self.per_query), "keys": "\n".join(self.keys),
                "caption_fallbacks": self.caption_fallbacks, "unused": self.unused,
                "streams_done": self.streams_done}

    @classmethod
    def from_dict(cls, data: dict) -> EpochTally:
        return cls(data["seen"], data["kept"], data["kept_without_queries"], Counter(data["per_query"]),
                   data["keys"].split("\n") if data["keys"] else [], data["caption_fallbacks"], data["unused"],
                   data["streams_done"])

    def record(self, epoch: int, streams: int, balance: dict) -> dict:
        """``OUT/balance/epoch-NNNN.json``: ``complete`` when all ``streams`` finished reading the epoch."""
        return {"epoch": epoch, "seen": self.seen, "kept": self.kept, "kept_without_queries": self.kept_without_queries,
                "per_query": dict(sorted(self.per_query.items())), "keys_sha256": keys_sha256(self.keys),
                "caption_fallbacks": self.caption_fallbacks, "unused": self.unused,
                "complete": self.streams_done >= streams, **balance}


def merge_tallies(tallies: list[dict[int, dict]]) -> dict[int, EpochTally]:
    """Tallies in checkpoint form (``{epoch: to_dict()}``, one per stream or rank) added up per epoch."""
    merged: dict[int, EpochTally] = {}
    for tally in tallies:
        for epoch, data in tally.items():
            merged.setdefault(int(epoch), EpochTally()).merge(EpochTally.from_dict(data))
    return merged
