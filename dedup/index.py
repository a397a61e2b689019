"""The eval index: datasketch MinHash + MinHashLSH over the eval sets' signatures, with exact verification.

Built once on the driver (``IndexBuilder``), saved to one file, and loaded once
per worker process (``load_index``); training samples are then checked one at
a time with ``OverlapIndex.match``:

1. Drop *stop elements*: region hashes found in more than ``stop_df`` of the
   eval images (at least ``stop_min`` of them). Like stop words, they are
   shared by unrelated images (a plain edge, a gradient) and only make
   unrelated pairs look alike; dropping them is the idf idea of Chum et al.'s
   min-hash near-duplicate detection, in its simplest form.
2. MinHash the remaining set (``num_perm`` permutations, datasketch's
   ``affine32`` scheme, computed in one numpy pass) and look up its LSH buckets:
   datasketch's ``MinHashLSH`` chooses the bands (``b`` x ``r`` for the
   threshold and weights), and ``BandTables`` holds its buckets as one sorted
   array, which answers exactly as ``MinHashLSH.query`` in ~1/20 of the memory
   and pickles as it is, so workers load it instead of rebuilding it.
3. Verify every candidate with the *exact* Jaccard similarity of the two sets
   and keep pairs at or above ``floor``.

Why the LSH is built with ``weights=(0.2, 0.8)`` at the lowest threshold in
use: datasketch picks bands x rows to balance false positives and false
negatives equally, which at our similarity levels makes a pair at the
threshold a candidate well under half the time. Weighting false negatives
four times as heavily picks 64 bands of 2 rows at 0.15 (a pair at 0.2 is a
candidate 93% of the time, at 0.3 99.7%); the extra candidates cost only the
exact check.
"""

from __future__ import annotations

import functools
import logging
import pickle
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from wit_pipeline import fileio

from .signatures import CODE_BITS

if TYPE_CHECKING:
    import datasketch

log = logging.getLogger(__name__)

NUM_PERM = 128
SEED = 1


def _datasketch():
    """datasketch, imported on first use: it imports scipy.integrate (~1 s of CPU), which every ``wit``
    command would otherwise pay when the CLI registers ``wit overlap``."""
    import datasketch

    return datasketch


LSH_WEIGHTS = (0.2, 0.8)          # (false positive, false negative) weights for datasketch's band choice
MIN_LSH_THRESHOLD = 0.15          # below this datasketch picks 1-row bands: a candidate list the size of the index
STOP_DF = 0.02                    # an image element in more than 2% of eval images is a stop element
STOP_MIN = 3                      # ... and in at least this many of them
_UINT32_MAX = np.uint32(0xFFFFFFFF)


def identity_hash(value) -> int:
    """The MinHash hash function for our elements: they are already well-spread 32-bit integers."""
    return int(value)


def _fmix32(values: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer, exactly as datasketch's ``affine32`` scheme pre-mixes inputs."""
    h = values.astype(np.uint32)
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h


class MinHasher:
    """Vectorised datasketch MinHash: ``minhash(codes)`` equals
    ``MinHash(num_perm, seed, hashfunc=identity_hash)`` updated with ``codes``
    (``tests/dedup/test_index.py`` checks it), at a fraction of the cost."""

    def __init__(self, num_perm: int = NUM_PERM, seed: int = SEED):
        self.num_perm = num_perm
        self.seed = seed
        template = _datasketch().MinHash(num_perm=num_perm, seed=seed, hashfunc=identity_hash)
        self.permutations = template.permutations
        self._a = np.ascontiguousarray(self.permutations[0], dtype=np.uint32)
        self._b_column = np.ascontiguousarray(self.permutations[1][:, None], dtype=np.uint32)

    def hashvalues(self, codes: np.ndarray) -> np.ndarray:
        if len(codes) == 0:
            return np.full(self.num_perm, _UINT32_MAX, dtype=np.uint32)
        mixed = _fmix32(np.asarray(codes))
        out = None
        # One row per permutation: each multiply is a scalar times a contiguous vector and each min a
        # reduction along a contiguous row, numpy's fastest layout for both.
        for start in range(0, len(mixed), 4096):  # bounded memory for very large sets
            values = np.multiply.outer(self._a, mixed[start:start + 4096])
            values += self._b_column
            chunk_min = values.min(axis=1)
            out = chunk_min if out is None else np.minimum(out, chunk_min, out=out)
        return out

    def minhash(self, codes: np.ndarray = None, hashvalues: np.ndarray | None = None) -> datasketch.MinHash:
        if hashvalues is None:
            hashvalues = self.hashvalues(codes)
        return _datasketch().MinHash(num_perm=self.num_perm, seed=self.seed, hashfunc=identity_hash,
                                     hashvalues=hashvalues, permutations=self.permutations, scheme="affine32")


@dataclass
class EvalEntry:
    set_name: str
    eval_id: str
    label: str | None = None
    source: str | None = None     # the file the image can be read from again (an image file, or a tar)
    member: str | None = None     # the sample key inside ``source`` when it is a tar


@dataclass
class Match:
    key: int                      # index into OverlapIndex.entries
    kind: str                     # "image" or "text"
    similarity: float             # exact Jaccard of the two sets


class _SetStore:
    """Many sorted uint32 sets in one array (compact to pickle, quick to slice)."""

    def __init__(self, sets: Sequence[np.ndarray]):
        lengths = np.array([len(s) for s in sets], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        self.codes = np.concatenate(list(sets)).astype(np.uint32) if len(sets) else np.zeros(0, np.uint32)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def get(self, key: int) -> np.ndarray:
        return self.codes[self.offsets[key]:self.offsets[key + 1]]

    def size(self, key: int) -> int:
        return int(self.offsets[key + 1] - self.offsets[key])


class OverlapIndex:
    """Eval-set signatures, their MinHashLSH indexes, and exact verification."""

    def __init__(self, entries: list[EvalEntry], image_sets: list[np.ndarray], text_sets: list[np.ndarray],
                 stop_codes: np.ndarray, image_threshold: float, text_threshold: float,
                 num_perm: int = NUM_PERM, seed: int = SEED, weights: tuple[float, float] = LSH_WEIGHTS):
        self.entries = entries
        self.image_threshold = float(image_threshold)   # the lowest similarity the image LSH is built for
        self.text_threshold = float(text_threshold)
        self.num_perm = num_perm
        self.seed = seed
        self.weights = tuple(weights)
        self.stop_codes = np.asarray(stop_codes, dtype=np.uint32)
        self.images = _SetStore(image_sets)
        self.texts = _SetStore(text_sets)
        self._prepare()
        self.image_hashvalues = np.stack([self.hasher.hashvalues(s) for s in image_sets]) if image_sets else \
            np.zeros((0, num_perm), np.uint32)
        self.text_hashvalues = np.stack([self.hasher.hashvalues(s) for s in text_sets]) if text_sets else \
            np.zeros((0, num_perm), np.uint32)
        self._build_lsh()

    # -- pickling: arrays only (the band tables included), nothing to rebuild on load

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_") and k != "hasher"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._prepare()

    def _prepare(self) -> None:
        self.hasher = MinHasher(self.num_perm, self.seed)
        self._stop_sorted = np.unique(self.stop_codes)   # searched, not masked: 4 bytes a stop element, not 1 MB
        self._local = threading.local()   # per-thread scratch: Beam may run DoFns in threads sharing this index

    def _member(self) -> np.ndarray:
        """A per-thread all-False membership array over the element universe (restored after each use)."""
        member = getattr(self._local, "member", None)
        if member is None:
            member = self._local.member = np.zeros(1 << CODE_BITS, dtype=bool)
        return member

    def _make_lsh(self, threshold: float) -> datasketch.MinHashLSH:
        return _datasketch().MinHashLSH(threshold=min(max(threshold, 0.01), 0.99), num_perm=self.num_perm,
                                        weights=self.weights)

    def _build_lsh(self) -> None:
        # Thresholds under MIN_LSH_THRESHOLD keep the 0.15 bands (64 x 2): a pair at 0.1 is then a
        # candidate about half the time, instead of every query verifying a large share of the index.
        image_lsh = self._make_lsh(max(self.image_threshold, MIN_LSH_THRESHOLD))
        text_lsh = self._make_lsh(self.text_threshold)
        self.lsh_params = {"image": (image_lsh.b, image_lsh.r), "text": (text_lsh.b, text_lsh.r)}
        self.image_bands = BandTables.build(image_lsh.hashranges, self.image_hashvalues, self.images)
        self.text_bands = BandTables.build(text_lsh.hashranges, self.text_hashvalues, self.texts)

    # -- queries

    def prepare_image(self, codes: np.ndarray) -> np.ndarray:
        """Raw region elements -> the sorted unique set the index compares (stop elements removed)."""
        codes = np.sort(codes)
        if len(codes) > 1:   # np.unique, without its general-purpose overhead (it is most of the cost here)
            first = np.empty(len(codes), dtype=bool)
            first[0] = True
            np.not_equal(codes[1:], codes[:-1], out=first[1:])
            codes = codes[first]
        stop = self._stop_sorted
        if len(stop) and len(codes):
            codes = codes[stop.take(np.searchsorted(stop, codes), mode="clip") != codes]
        return codes

    def image_candidates(self, image_codes: np.ndarray) -> list[int]:
        """LSH candidates for raw or prepared image elements."""
        return self._image_candidates(self.prepare_image(image_codes))

    def _image_candidates(self, image_set: np.ndarray) -> list[int]:
        if len(image_set) == 0:
            return []
        return self.image_bands.query(self.hasher.hashvalues(image_set))

    def text_candidates(self, text_set: np.ndarray) -> list[int]:
        if len(text_set) == 0:
            return []
        return self.text_bands.query(self.hasher.hashvalues(text_set))

    def image_similarities(self, image_set: np.ndarray, keys: Sequence[int]) -> np.ndarray:
        """Exact Jaccard between ``image_set`` (sorted unique) and the eval images ``keys``, in one vectorised pass."""
        if len(keys) == 0 or len(image_set) == 0:
            return np.zeros(len(keys))
        store = self.images
        keys = np.asarray(keys, dtype=np.int64)
        starts = store.offsets[keys]
        lengths = store.offsets[keys + 1] - starts
        if len(keys) == 1:
            gather = store.codes[starts[0]:starts[0] + lengths[0]]
        else:
            spans = zip(starts.tolist(), lengths.tolist(), strict=True)
            gather = np.concatenate([store.codes[s:s + n] for s, n in spans])
        if len(gather) > 16 * len(image_set):
            # Many candidates (a large index): one membership array over the element universe is cheapest.
            member = self._member()
            member[image_set] = True
            try:
                hits = member[gather]
            finally:
                member[image_set] = False
        else:
            # Few candidates (the usual case): binary search in the small sorted query set, which stays in
            # cache between images where the 1 MB membership array would not.
            hits = image_set.take(np.searchsorted(image_set, gather), mode="clip") == gather
        running = np.concatenate([[0], np.cumsum(hits)])
        ends = np.cumsum(lengths)
        inter = running[ends] - running[ends - lengths]
        return inter / (len(image_set) + lengths - inter)     # the union is at least len(image_set) > 0

    def text_similarities(self, text_set: np.ndarray, keys: Sequence[int]) -> np.ndarray:
        out = np.zeros(len(keys))
        for i, key in enumerate(keys):
            other = self.texts.get(key)
            if len(other) and len(text_set):
                inter = len(np.intersect1d(text_set, other, assume_unique=True))
                out[i] = inter / (len(text_set) + len(other) - inter)
        return out

    def match(self, image_codes: np.ndarray | None, text_set: np.ndarray | None, floor: float,
              text_floor: float | None = None) -> tuple[list[Match], int]:
        """Verified matches of one training sample, and how many LSH candidates were checked.

        ``image_codes`` are raw region elements (``signatures.image_codes``);
        ``text_set`` a text signature. Image pairs are kept from ``floor`` up,
        text pairs from ``text_floor`` (default: ``floor``).
        """
        matches: list[Match] = []
        checked = 0
        if image_codes is not None and len(image_codes):
            image_set = self.prepare_image(image_codes)
            keys = self._image_candidates(image_set)
            if keys:
                checked += len(keys)
                sims = self.image_similarities(image_set, keys)
                matches.extend(Match(int(k), "image", float(s)) for k, s in zip(keys, sims, strict=True) if s >= floor)
        if text_set is not None and len(text_set):
            keys = self.text_candidates(text_set)
            if keys:
                checked += len(keys)
                sims = self.text_similarities(text_set, keys)
                limit = floor if text_floor is None else text_floor
                matches.extend(Match(int(k), "text", float(s)) for k, s in zip(keys, sims, strict=True) if s >= limit)
        return matches, checked

    def brute_force_image(self, image_codes: np.ndarray) -> np.ndarray:
        """Exact Jaccard against *every* eval image (the all-pairs baseline of bench/ and the tests)."""
        image_set = self.prepare_image(image_codes)
        store = self.images
        if len(store) == 0 or len(image_set) == 0:
            return np.zeros(len(store))
        member = self._member()
        member[image_set] = True
        try:
            hits = member[store.codes].astype(np.int64)
        finally:
            member[image_set] = False
        lengths = np.diff(store.offsets)
        inter = np.add.reduceat(np.append(hits, 0), store.offsets[:-1])
        inter[lengths == 0] = 0
        union = len(image_set) + lengths - inter
        return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


class BandTables:
    """``MinHashLSH``'s buckets as one sorted array: the same candidates in ~1/20 of the memory.

    datasketch keeps each of the ``b`` bands as a dict from the band's hash values
    (big-endian bytes) to the set of keys that have them: ~18 KB per eval image at
    64 bands. Here each (key, band) is one fixed-width byte string, ``band number
    + the band's r values big-endian``, and all of them are sorted once, next to
    their keys: 4 + 2 + 4r bytes per key and band. A query makes its ``b`` strings
    and finds their runs with one vectorised ``searchsorted``; equal strings are
    exactly datasketch's equal bucket keys, so the candidates are
    ``MinHashLSH.query``'s (tests/dedup/test_index.py compares them).
    """

    def __init__(self, bands: int, rows: int, strings: np.ndarray, keys: np.ndarray):
        self.bands, self.rows = bands, rows
        self.strings, self.keys = strings, keys

    @classmethod
    def build(cls, hashranges, hashvalues: np.ndarray, store: "_SetStore") -> "BandTables":
        bands, rows = len(hashranges), hashranges[0][1] - hashranges[0][0]
        if [tuple(r) for r in hashranges] != [(i * rows, (i + 1) * rows) for i in range(bands)]:
            raise ValueError(f"unexpected LSH hash ranges {hashranges!r}")
        keys = np.array([key for key in range(len(store)) if store.size(key)], dtype=np.int32)
        strings = _band_strings(hashvalues[keys] if len(keys) else hashvalues[:0], bands, rows).ravel()
        order = np.argsort(strings, kind="stable")
        return cls(bands, rows, strings[order], np.repeat(keys, bands)[order])

    def query(self, hashvalues: np.ndarray) -> list[int]:
        """The keys sharing at least one band with ``hashvalues`` (``MinHashLSH.query``)."""
        wanted = _band_strings(hashvalues[None, :], self.bands, self.rows)[0]
        first = np.searchsorted(self.strings, wanted, side="left")
        last = np.searchsorted(self.strings, wanted, side="right")
        hits = np.flatnonzero(last > first)
        if len(hits) == 0:
            return []
        if len(hits) == 1:    # one bucket: its keys are distinct already
            return self.keys[first[hits[0]]:last[hits[0]]].tolist()
        starts, lengths = first[hits], last[hits] - first[hits]
        # Every position of every hit run in one go: run j covers starts[j] .. starts[j] + lengths[j] - 1.
        positions = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths) + np.arange(lengths.sum())
        return np.unique(self.keys[positions]).tolist()


@functools.lru_cache(maxsize=None)
def _band_numbers(bands: int) -> np.ndarray:
    """``[bands, 2]``: each band's number as 2 big-endian bytes (made once: every query needs them)."""
    return np.arange(bands, dtype=">u2").view(np.uint8).reshape(bands, 2)


def _band_strings(hashvalues: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """``[n, bands]`` byte strings: the band number (2 bytes) then the band's hash values, big-endian."""
    n = len(hashvalues)
    raw = np.empty((n, bands, 2 + 4 * rows), dtype=np.uint8)
    raw[:, :, :2] = _band_numbers(bands)
    raw[:, :, 2:] = (np.ascontiguousarray(hashvalues[:, :bands * rows], dtype=">u4")
                     .view(np.uint8).reshape(n, bands, 4 * rows))
    return raw.view(np.dtype((np.void, 2 + 4 * rows))).reshape(n, bands)


class IndexBuilder:
    """Collects eval signatures, then ``build()``s the ``OverlapIndex`` (stop elements, MinHash, LSH)."""

    def __init__(self, image_threshold: float, text_threshold: float, stop_df: float = STOP_DF,
                 stop_min: int = STOP_MIN, num_perm: int = NUM_PERM, seed: int = SEED,
                 weights: tuple[float, float] = LSH_WEIGHTS):
        self.image_threshold = image_threshold
        self.text_threshold = text_threshold
        self.stop_df = stop_df
        self.stop_min = stop_min
        self.num_perm = num_perm
        self.seed = seed
        self.weights = weights
        self.entries: list[EvalEntry] = []
        self._images: list[np.ndarray] = []
        self._texts: list[np.ndarray] = []

    def add(self, entry: EvalEntry, image_codes: np.ndarray | None, text_set: np.ndarray | None) -> int:
        """Add one eval example; returns its key. Either signature may be missing (unreadable, no text)."""
        self.entries.append(entry)
        self._images.append(np.unique(image_codes) if image_codes is not None else np.zeros(0, np.uint32))
        self._texts.append(text_set if text_set is not None else np.zeros(0, np.uint32))
        return len(self.entries) - 1

    def stop_codes(self) -> np.ndarray:
        with_images = [s for s in self._images if len(s)]
        if not with_images:
            return np.zeros(0, np.uint32)
        counts = np.bincount(np.concatenate(with_images), minlength=1 << CODE_BITS)
        limit = max(self.stop_min, self.stop_df * len(with_images))
        return np.flatnonzero(counts > limit).astype(np.uint32)

    def build(self) -> OverlapIndex:
        stop = self.stop_codes()
        mask = np.zeros(1 << CODE_BITS, dtype=bool)
        mask[stop] = True
        images = [s[~mask[s]] for s in self._images]
        log.info("eval index: %d entries, %d stop elements", len(self.entries), len(stop))
        return OverlapIndex(self.entries, images, self._texts, stop, self.image_threshold, self.text_threshold,
                            num_perm=self.num_perm, seed=self.seed, weights=self.weights)


def save_index(index: OverlapIndex, path: str) -> None:
    fileio.write_bytes_atomic(path, pickle.dumps(index, protocol=pickle.HIGHEST_PROTOCOL))


_LOADED: dict[str, OverlapIndex] = {}
_LOADING = threading.Lock()


def load_index(path: str) -> OverlapIndex:
    """Load an index once per process: every DoFn instance (and thread) on a worker shares it."""
    with _LOADING:
        index = _LOADED.get(path)
        if index is None:
            index = pickle.loads(fileio.read_bytes(path))
            _LOADED[path] = index
    return index


def clear_loaded() -> None:
    _LOADED.clear()


def keys_by_set(entries: Iterable[EvalEntry]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for key, entry in enumerate(entries):
        out.setdefault(entry.set_name, []).append(key)
    return out
