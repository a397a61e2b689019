"""Quality of the overlap check on a labelled synthetic set (the numbers the README reports).

200 distinct eval images; 1,000 distinct training images (letterboxed to 256 px like the download stage's
default ``border`` resize); 100 training copies of eval images, transformed by a crop of up to 8% of each
side, a resize by 0.4-2x, small brightness/saturation shifts and JPEG quality 40-95 (a third of them also
letterboxed). Checked through the real path: eval signatures, stop elements, MinHash LSH, exact verification.
"""

from __future__ import annotations

import numpy as np
import pytest

from dedup.index import EvalEntry, IndexBuilder
from dedup.scan import DEFAULT_THRESHOLD
from dedup.signatures import decode_canvas, eval_image_signature, image_codes
from dedup.synthetic import distinct_image, jpeg_bytes, letterbox, transformed_copy

N_EVAL, N_DISTINCT, N_COPIES = 200, 1000, 100


@pytest.fixture(scope="module")
def outcome():
    evals = [distinct_image(seed) for seed in range(N_EVAL)]
    builder = IndexBuilder(image_threshold=DEFAULT_THRESHOLD, text_threshold=0.7)
    for i, picture in enumerate(evals):
        builder.add(EvalEntry("synthetic", f"{i:05d}.jpg"), eval_image_signature(jpeg_bytes(picture, 95)), None)
    index = builder.build()

    def best(data: bytes, floor: float = 0.01) -> dict[int, float]:
        matches, _ = index.match(image_codes(decode_canvas(data)), None, floor)
        return {m.key: m.similarity for m in matches}

    copies = [best(transformed_copy(evals[i], seed=10_000 + i, border=i % 3 == 0)) for i in range(N_COPIES)]
    distinct = [best(jpeg_bytes(letterbox(distinct_image(100_000 + j)))) for j in range(N_DISTINCT)]
    copy_sims = np.array([c.get(i, 0.0) for i, c in enumerate(copies)])
    wrong_sims = np.array([max([s for k, s in c.items() if k != i], default=0.0) for i, c in enumerate(copies)])
    distinct_sims = np.array([max(d.values(), default=0.0) for d in distinct])
    return copy_sims, wrong_sims, distinct_sims


def test_recall_of_planted_copies(outcome):
    copy_sims, _, _ = outcome
    recall = float(np.mean(copy_sims >= DEFAULT_THRESHOLD))
    assert recall >= 0.95, f"recall {recall:.3f}; lowest similarities {np.sort(copy_sims)[:8]}"


def test_false_positives_per_thousand_distinct_images(outcome):
    _, wrong_sims, distinct_sims = outcome
    false_positives = int(np.sum(distinct_sims >= DEFAULT_THRESHOLD))
    assert false_positives <= N_DISTINCT // 1000, f"{false_positives} of {N_DISTINCT}: {np.sort(distinct_sims)[-5:]}"
    assert int(np.sum(wrong_sims >= DEFAULT_THRESHOLD)) == 0     # a copy never matches another eval image


def test_threshold_trades_recall_for_margin(outcome):
    """How precision/recall move with --threshold (README): recall falls as the threshold rises."""
    copy_sims, _, distinct_sims = outcome
    recalls = [float(np.mean(copy_sims >= t)) for t in (0.1, 0.15, 0.2, 0.25, 0.3)]
    assert recalls == sorted(recalls, reverse=True)
    assert float(np.mean(distinct_sims >= 0.1)) <= 0.002
