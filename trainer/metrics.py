"""``metrics.jsonl`` (and TensorBoard under ``tensorboard/`` when installed), written by rank 0 only."""

from __future__ import annotations

import json
import os


class MetricsLog:
    """Appends one JSON object per line; on resume, first drops what the interrupted run logged past its checkpoint."""

    def __init__(self, out: str, enabled: bool, resume_step: int):
        self.enabled = enabled
        self.path = os.path.join(out, "metrics.jsonl")
        self.board = None
        if not enabled:
            return
        kept = []
        if resume_step and os.path.exists(self.path):
            with open(self.path, encoding="utf-8") as handle:
                kept = [line for line in handle if line.strip() and json.loads(line).get("step", 0) <= resume_step]
        with open(self.path, "w", encoding="utf-8") as handle:
            handle.writelines(kept)
        try:
            from torch.utils.tensorboard import SummaryWriter  # optional: tensorboard may not be installed

            self.board = SummaryWriter(os.path.join(out, "tensorboard"))
        except ImportError:
            pass

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
        if self.board is not None:
            prefix = f"eval/{record['eval']}/" if "eval" in record else "train/"
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "step":
                    self.board.add_scalar(prefix + key, value, record["step"])

    def close(self) -> None:
        if self.board is not None:
            self.board.close()
