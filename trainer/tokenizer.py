"""Lower-cased byte-level BPE, trained from the shards' captions and saved with the checkpoint.

Text is normalised (Unicode NFC, lower case, runs of whitespace to one space),
split into words (a word keeps its leading space, so decoding is exact), and
every word's UTF-8 bytes are merged by the learned pair ranks. Token ids:
``0..255`` are the bytes, then one id per merge, then ``[SOS]`` and ``[EOS]``;
``[EOS]`` is the largest id, so the text encoder finds it with ``argmax``.
Nothing is downloaded: the vocabulary is learned here or loaded from a file
(``tokenizer.json`` beside the checkpoints, or inside a checkpoint).
"""

from __future__ import annotations

import heapq
import json
import re
import unicodedata
from collections import Counter
from typing import Iterable, Sequence

import numpy as np

SOS = "<|startoftext|>"
EOS = "<|endoftext|>"
FORMAT_VERSION = 1

# Contractions, letter runs, up to 3 digits, punctuation runs; each may carry one leading space.
_WORDS = re.compile(r"""'(?:s|t|re|ve|m|ll|d)\b| ?[^\W\d_]+| ?\d{1,3}| ?(?:[^\s\w]|_)+|\s+""")
_SPACES = re.compile(r"\s+")


def normalize(text: str) -> str:
    """The text the tokenizer sees: NFC, lower case, single spaces, no leading/trailing space."""
    return _SPACES.sub(" ", unicodedata.normalize("NFC", text).lower()).strip()


def words(text: str) -> list[bytes]:
    return [w.encode("utf-8") for w in _WORDS.findall(normalize(text))]


class Tokenizer:
    """Byte-level BPE with ``[SOS]``/``[EOS]``; ``tokenizer(texts)`` gives an ``[N, context]`` int array."""

    def __init__(self, merges: Sequence[tuple[int, int]], context_length: int = 77):
        self.merges = [tuple(m) for m in merges]
        self.context_length = context_length
        self.ranks = {pair: rank for rank, pair in enumerate(self.merges)}
        # Every token's bytes, for decoding.
        self.token_bytes: list[bytes] = [bytes([b]) for b in range(256)]
        for a, b in self.merges:
            self.token_bytes.append(self.token_bytes[a] + self.token_bytes[b])
        self.sos_id = 256 + len(self.merges)
        self.eos_id = self.sos_id + 1
        self.pad_id = 0
        self._cache: dict[bytes, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        return self.eos_id + 1

    # -- training ---------------------------------------------------------------------------
    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, context_length: int = 77,
              min_frequency: int = 2) -> "Tokenizer":
        """Learn merges from ``texts`` until ``vocab_size`` (bytes + merges + 2 specials) or no pair
        occurs ``min_frequency`` times. Deterministic: ties go to the smallest pair of ids."""
        if vocab_size < 258:
            raise ValueError(f"vocab_size must be at least 258 (256 bytes + [SOS] + [EOS]), got {vocab_size}")
        counts: Counter[bytes] = Counter()
        for text in texts:
            counts.update(words(text))
        seqs = [list(word) for word in sorted(counts)]
        freqs = [counts[word] for word in sorted(counts)]
        pair_counts: Counter[tuple[int, int]] = Counter()
        where: dict[tuple[int, int], set[int]] = {}
        for index, seq in enumerate(seqs):
            for pair in zip(seq, seq[1:], strict=False):
                pair_counts[pair] += freqs[index]
                where.setdefault(pair, set()).add(index)
        heap = [(-count, pair) for pair, count in pair_counts.items()]
        heapq.heapify(heap)
        merges: list[tuple[int, int]] = []
        while 256 + len(merges) + 2 < vocab_size and heap:
            negative, pair = heapq.heappop(heap)
            if pair_counts.get(pair, 0) != -negative:
                continue  # stale heap entry
            if -negative < min_frequency:
                break
            new_id = 256 + len(merges)
            merges.append(pair)
            changed: set[tuple[int, int]] = set()
            for index in sorted(where.pop(pair, ())):
                seq, freq = seqs[index], freqs[index]
                for old in zip(seq, seq[1:], strict=False):
                    pair_counts[old] -= freq
                    changed.add(old)
                merged = _merge_pair(seq, pair, new_id)
                seqs[index] = merged
                for new in zip(merged, merged[1:], strict=False):
                    pair_counts[new] += freq
                    where.setdefault(new, set()).add(index)
                    changed.add(new)
            pair_counts.pop(pair, None)
            for changed_pair in changed:
                count = pair_counts.get(changed_pair, 0)
                if count > 0:
                    heapq.heappush(heap, (-count, changed_pair))
                else:
                    pair_counts.pop(changed_pair, None)
        return cls(merges, context_length=context_length)

    # -- encoding / decoding ----------------------------------------------------------------
    def _bpe(self, word: bytes) -> list[int]:
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        seq = list(word)
        ranks = self.ranks
        while len(seq) > 1:
            best = min(zip(seq, seq[1:], strict=False), key=lambda p: ranks.get(p, 1 << 62))
            rank = ranks.get(best)
            if rank is None:
                break
            seq = _merge_pair(seq, best, 256 + rank)
        if len(self._cache) < 200_000:
            self._cache[word] = seq
        return seq

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without special tokens."""
        ids: list[int] = []
        for word in words(text):
            ids.extend(self._bpe(word))
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``; ``[SOS]`` is skipped and decoding stops at ``[EOS]``."""
        out = bytearray()
        for token in ids:
            token = int(token)
            if token == self.eos_id:
                break
            if token == self.sos_id:
                continue
            out += self.token_bytes[token]
        return out.decode("utf-8", errors="replace")

    def __call__(self, texts: str | Sequence[str], context_length: int | None = None) -> np.ndarray:
        """``[SOS] tokens [EOS]`` per text, cut to fit (the ``[EOS]`` always stays), padded with 0."""
        if isinstance(texts, str):
            texts = [texts]
        length = context_length or self.context_length
        result = np.zeros((len(texts), length), dtype=np.int64)
        for row, text in enumerate(texts):
            ids = [self.sos_id] + self.encode(text)[: length - 2] + [self.eos_id]
            result[row, : len(ids)] = ids
        return result

    # -- persistence --------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": "wit-bpe", "version": FORMAT_VERSION, "lowercase": True,
                "context_length": self.context_length, "special_tokens": [SOS, EOS],
                "merges": [list(m) for m in self.merges]}

    @classmethod
    def from_dict(cls, data: dict) -> "Tokenizer":
        if data.get("format") != "wit-bpe" or data.get("version") != FORMAT_VERSION:
            raise ValueError(f"not a wit-bpe v{FORMAT_VERSION} tokenizer: format={data.get('format')!r} "
                             f"version={data.get('version')!r}")
        return cls([tuple(m) for m in data["merges"]], context_length=int(data["context_length"]))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":")) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "Tokenizer":
        return cls.from_dict(json.loads(text))

    def __eq__(self, other) -> bool:
        return isinstance(other, Tokenizer) and self.to_dict() == other.to_dict()

    def __getstate__(self):
        return self.to_dict()

    def __setstate__(self, state):
        self.__init__([tuple(m) for m in state["merges"]], context_length=state["context_length"])


def _merge_pair(seq: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """``seq`` with every non-overlapping occurrence of ``pair``, left to right, replaced by ``new_id``:
    one merge step, the same in training and in encoding."""
    merged, i = [], 0
    while i < len(seq):
        if i + 1 < len(seq) and (seq[i], seq[i + 1]) == pair:
            merged.append(new_id)
            i += 2
        else:
            merged.append(seq[i])
            i += 1
    return merged
