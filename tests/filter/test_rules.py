"""The filter rules as pure functions."""

from __future__ import annotations

import numpy as np

from wit_pipeline.filter import rules


def test_top_fraction_threshold_keeps_that_fraction_and_ties():
    scores = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    threshold = rules.top_fraction_threshold(scores, 0.25)
    assert threshold == 0.7
    assert sum(s >= threshold for s in scores) == 2
    assert rules.top_fraction_threshold([0.5, 0.5, 0.5, 0.1], 0.25) == 0.5      # ties at the threshold stay
    assert rules.top_fraction_threshold(scores, 1.0) == float("-inf")


def test_kmeans_is_seeded_and_finds_separated_groups():
    rng = np.random.default_rng(0)
    points = np.concatenate([np.eye(4)[i] + 0.05 * rng.normal(size=(20, 4)) for i in range(3)])
    first, again = rules.kmeans(points, 3, seed=5), rules.kmeans(points, 3, seed=5)
    assert np.array_equal(first, again)
    labels = rules.nearest_centroid(points, first)
    assert [len(set(labels[i * 20:(i + 1) * 20])) for i in range(3)] == [1, 1, 1]
    assert len(set(labels)) == 3
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)


def test_semantic_duplicates_compare_to_kept_samples_only():
    a = np.array([1.0, 0.0])
    b = np.array([0.999, 0.045])        # close to a
    c = np.array([0.995, 0.1])          # close to b, a little less close to a
    dropped, nearest = rules.semantic_duplicates([("c", c), ("a", a), ("b", b)], eps=0.002)
    assert set(dropped) == {"b"} and dropped["b"][0] == "a"
    assert "c" not in dropped                           # b, its nearest, was dropped: a is what counts
    assert [(kept, key) for kept, key, _ in nearest] == [("a", "b"), ("a", "c")]


def test_eval_centroids_are_each_eval_images_nearest():
    centroids = np.eye(3, dtype=np.float32)
    assert rules.eval_centroids(np.array([[0.9, 0.1, 0.0], [0.8, 0.0, 0.2]]), centroids) == {0}


def test_clip_score_problem_names_the_rule_that_dropped():
    assert "--clip-score-min" in rules.clip_score_problem(0.1, 0.2, None)
    assert "--clip-score-top" in rules.clip_score_problem(0.3, 0.2, 0.4)
    assert rules.clip_score_problem(0.5, 0.2, 0.4) is None
