"""The filter rules as pure functions: thresholds, duplicate groups, k-means and clusters.

Every function takes plain values (keys, scores, arrays) and returns decisions; ``pipeline.py`` wires them
into Beam. The rules and their order (a dropped sample gets the first that drops it):

1. ``no_embedding``: the embeddings folder has no row for the sample.
2. ``low_clip_score``: below ``--clip-score-min``, or below the threshold that keeps the top fraction
   ``--clip-score-top`` of the whole set (``top_fraction_threshold``).
3. ``exact_duplicate``: same sha256 of the image bytes as a sample kept before it (by key).
4. ``near_duplicate``: a re-encoded, resized or slightly cropped copy of a sample kept before it
   (``near_duplicates``: dedup/'s crop-stable region hashes, MinHash LSH, exact Jaccard).
5. ``semantic_duplicate``: SemDeDup, cosine of image embeddings above ``1 - eps`` to a sample kept
   before it in the same k-means cluster (``semantic_duplicates``).
6. ``off_distribution``: the sample's nearest centroid is none of the eval images' nearest centroids
   (``eval_centroids``, DataComp's image-based filter).

Each step sees only the samples the steps before it kept, so a duplicate group keeps its first surviving
member and never loses all of them to two different rules.
"""

from __future__ import annotations

import hashlib
import math
from typing import Iterable, Sequence

import numpy as np

from dedup.index import EvalEntry, IndexBuilder
from dedup.signatures import BadImage, decode_pixels, stable_codes

REASONS = ("no_embedding", "low_clip_score", "exact_duplicate", "near_duplicate", "semantic_duplicate",
           "off_distribution")

# Near duplicates (measured on 96-128 px colour-shape images, docs/filter.md): both sides are signed with
# dedup's crop-stable codes; an element in more than STOP_DF of the set is a stop element.
NEAR_THRESHOLD = 0.17
NEAR_STOP_DF = 0.1
NEAR_REPORT_FRACTION = 0.5        # pairs from this fraction of the threshold up are kept for filter.html
KMEANS_SAMPLE = 100_000           # the k-means is fitted on at most this many embeddings (a key-hash sample)
KMEANS_ITERATIONS = 25


# -- CLIP score ---------------------------------------------------------------------------------------------

def top_fraction_threshold(scores: Sequence[float], fraction: float) -> float:
    """The score that keeps the top ``fraction`` of ``scores``: samples at or above it are kept (ties at the
    threshold are all kept). ``-inf`` for no scores or a fraction of 1."""
    if len(scores) == 0 or fraction >= 1.0:
        return -math.inf
    ordered = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    keep = max(1, math.ceil(fraction * len(ordered)))
    return float(ordered[keep - 1])


def clip_score_problem(score: float, minimum: float | None, threshold: float | None) -> str | None:
    """Why ``score`` is too low (the message of ``low_clip_score``), or None."""
    if minimum is not None and score < minimum:
        return f"clip_score {score:.4f} < --clip-score-min {minimum:g}"
    if threshold is not None and score < threshold:
        return f"clip_score {score:.4f} < {threshold:.4f} (the --clip-score-top threshold)"
    return None


# -- exact and near duplicates --------------------------------------------------------------------------------

def first_by_key(keys: Iterable[str]) -> tuple[str, list[str]]:
    """One duplicate group: the key kept (the first) and the keys dropped."""
    ordered = sorted(keys)
    return ordered[0], ordered[1:]


def near_signature(image: bytes) -> np.ndarray | None:
    """The crop-stable region elements of an image (``dedup.signatures.stable_codes``), None if it does not
    decode. Both sides of an in-set comparison are copies of each other, so both get the stable codes."""
    try:
        return stable_codes(decode_pixels(image))
    except BadImage:
        return None


def near_duplicates(signatures: Sequence[tuple[str, np.ndarray]], threshold: float = NEAR_THRESHOLD,
                    stop_df: float = NEAR_STOP_DF, report_fraction: float = NEAR_REPORT_FRACTION
                    ) -> tuple[dict[str, tuple[str, float]], list[tuple[str, str, float]]]:
    """Near duplicates among ``(key, region elements)``: ``{dropped key: (kept key, similarity)}`` and the
    pairs from ``report_fraction * threshold`` up (``(key, other, similarity)``, for filter.html).

    The samples are indexed once (stop elements, MinHash LSH: ``dedup.index``), then visited in key order:
    a sample whose exact Jaccard with an already kept one reaches ``threshold`` is dropped."""
    ordered = sorted(signatures, key=lambda item: item[0])
    if not ordered:
        return {}, []
    floor = threshold * report_fraction
    builder = IndexBuilder(image_threshold=floor, text_threshold=1.0, stop_df=stop_df)
    for key, codes in ordered:
        builder.add(EvalEntry("set", key), codes, None)
    index = builder.build()
    kept: set[int] = set()
    dropped: dict[str, tuple[str, float]] = {}
    pairs: list[tuple[str, str, float]] = []
    for position, (key, codes) in enumerate(ordered):
        matches, _ = index.match(codes, None, floor)
        earlier = [(m.similarity, m.key) for m in matches if m.key < position]
        pairs += [(ordered[other][0], key, similarity) for similarity, other in earlier]
        hits = [(similarity, other) for similarity, other in earlier if other in kept and similarity >= threshold]
        if hits:
            similarity, other = max(hits)
            dropped[key] = (ordered[other][0], similarity)
        else:
            kept.add(position)
    return dropped, pairs


# -- k-means, SemDeDup, eval clusters -------------------------------------------------------------------------

def sample_rank(key: str) -> int:
    """A key's place in the k-means sample: the ``KMEANS_SAMPLE`` smallest ranks are fitted on, so the
    sample is the same whatever the order or the split of the input (and mergeable in a combine)."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big")


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def default_clusters(samples: int) -> int:
    """``--clusters`` when not given: about the square root of the number of samples."""
    return max(1, round(math.sqrt(samples)))


def kmeans(vectors: np.ndarray, clusters: int, seed: int = 0, iterations: int = KMEANS_ITERATIONS) -> np.ndarray:
    """Spherical k-means (cosine) of L2-normalised ``vectors``: ``(clusters, d)`` unit centroids.

    Seeded k-means++ start, then Lloyd steps; an empty cluster takes the point farthest from its centroid."""
    points = normalise(vectors)
    count = len(points)
    clusters = max(1, min(clusters, count))
    rng = np.random.default_rng(seed)
    centroids = np.empty((clusters, points.shape[1]), np.float32)
    centroids[0] = points[rng.integers(count)]
    distance = 1.0 - points @ centroids[0]
    for index in range(1, clusters):
        weights = np.maximum(distance, 0.0) ** 2
        total = float(weights.sum())
        choice = rng.choice(count, p=weights / total) if total > 0 else rng.integers(count)
        centroids[index] = points[choice]
        distance = np.minimum(distance, 1.0 - points @ centroids[index])
    for _ in range(iterations):
        similarity = points @ centroids.T
        labels = similarity.argmax(axis=1)
        updated = np.zeros_like(centroids)
        np.add.at(updated, labels, points)
        empty = np.flatnonzero(np.bincount(labels, minlength=clusters) == 0)
        if len(empty):
            worst = np.argsort(similarity[np.arange(count), labels])[:len(empty)]
            updated[empty] = points[worst]
        updated = normalise(updated)
        if np.allclose(updated, centroids, atol=1e-6):
            break
        centroids = updated
    return centroids


def nearest_centroid(vectors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Each vector's nearest centroid by cosine."""
    if len(vectors) == 0:
        return np.zeros(0, np.int64)
    return (normalise(vectors) @ centroids.T).argmax(axis=1)


def eval_centroids(eval_vectors: np.ndarray, centroids: np.ndarray) -> set[int]:
    """The centroids nearest to some eval image (DataComp's image-based filter keeps their clusters)."""
    return {int(c) for c in nearest_centroid(eval_vectors, centroids)}


def semantic_duplicates(members: Sequence[tuple[str, np.ndarray]], eps: float
                        ) -> tuple[dict[str, tuple[str, float]], list[tuple[str, str, float]]]:
    """SemDeDup within one cluster: ``{dropped key: (kept key, cosine)}`` for samples whose cosine to an
    already kept one (in key order) exceeds ``1 - eps``, and each sample's nearest earlier kept neighbour
    as ``(kept, key, cosine)`` (for filter.html)."""
    ordered = sorted(members, key=lambda item: item[0])
    if not ordered:
        return {}, []
    vectors = normalise(np.stack([vector for _, vector in ordered]))
    limit = 1.0 - eps
    kept: list[int] = []
    dropped: dict[str, tuple[str, float]] = {}
    nearest: list[tuple[str, str, float]] = []
    for position, (key, _) in enumerate(ordered):
        if kept:
            similarity = vectors[kept] @ vectors[position]
            best = int(similarity.argmax())
            cosine = float(similarity[best])
            nearest.append((ordered[kept[best]][0], key, cosine))
            if cosine > limit:
                dropped[key] = (ordered[kept[best]][0], cosine)
                continue
        kept.append(position)
    return dropped, nearest
