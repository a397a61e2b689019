"""The learning-rate schedule: linear warmup, then cosine down to 0 at the last step."""

from __future__ import annotations

import math


def default_warmup(total_steps: int) -> int:
    """5% of the run, at least 1 step and at most 10,000."""
    return min(10_000, max(1, round(0.05 * total_steps)))


class CosineWithWarmup:
    """LR factor: linear warmup over ``warmup`` steps, then cosine down to 0 at ``total``.

    A callable object rather than a function, so ``LambdaLR.state_dict`` saves ``warmup`` and
    ``total`` with a checkpoint (a resumed run may then stretch ``total``).
    """

    def __init__(self, warmup: int, total: int):
        self.warmup, self.total = warmup, total

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        progress = (step - self.warmup) / max(1, self.total - self.warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
