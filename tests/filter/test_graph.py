"""The rules' composite transform, ``ApplyRules``, on facts in a TestPipeline."""

from __future__ import annotations

import apache_beam as beam
import numpy as np
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from wit_pipeline.filter.pipeline import ApplyRules, FilterOptions


def _fact(key: str, score: float, sha: str, axis: int) -> dict:
    vector = np.zeros(4, np.float32)
    vector[axis] = 1.0
    return {"shard": "00000.tar", "key": key, "caption": key, "score": score, "vector": vector, "sha256": sha,
            "codes": None}


def test_apply_rules_drops_in_order_and_keeps_the_rest():
    facts = [_fact("a", 0.9, "x", 0), _fact("b", 0.8, "x", 1), _fact("c", 0.1, "y", 2), _fact("d", 0.7, "z", 3)]
    options = FilterOptions(shards="unused", out="unused", embeddings="unused", clip_score_top=0.75, dedup="exact")
    with TestPipeline() as pipeline:
        kept, dropped, report = pipeline | beam.Create(facts) | ApplyRules(options, [])
        assert_that(kept | "Keys" >> beam.Map(lambda f: f["key"]), equal_to(["a", "d"]), label="kept")
        everything = tuple(dropped) | beam.Flatten() | "Reasons" >> beam.Map(lambda d: (d[1], d[2]))
        assert_that(everything, equal_to([("c", "low_clip_score"), ("b", "exact_duplicate")]), label="dropped")
        threshold = (tuple(report) | "Reports" >> beam.Flatten()
                     | beam.Filter(lambda r: r["rule"] == "clip_threshold") | beam.Map(lambda r: r["value"]))
        assert_that(threshold, equal_to([0.7]), label="threshold")
