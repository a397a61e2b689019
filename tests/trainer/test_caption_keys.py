"""--caption-keys: each use of a sample draws its caption field with the given probabilities; missing -> txt."""

from __future__ import annotations

import json
import os
from collections import Counter

import numpy as np
import pytest

from tests.trainer.query_shards import write_query_shards
from trainer.balance import draw_caption_field, parse_caption_keys
from trainer.data import ShardStream
from wit_pipeline.cli import main as wit_main
from wit_pipeline.errors import UserError

SPEC = "txt=0.7,json:recaption=0.3"


class RecordingTokenizer:
    """Stands in for the BPE: remembers every caption the stream tokenised."""

    def __init__(self):
        self.captions: list[str] = []

    def __call__(self, captions):
        self.captions.extend(captions)
        return np.zeros((len(captions), 4), dtype=np.int64)


def test_spec_parses_and_bad_specs_are_one_line_errors():
    assert parse_caption_keys(SPEC) == (("txt", 0.7), ("json:recaption", 0.3))
    assert parse_caption_keys("json:a=1") == (("json:a", 1.0),)
    for spec, message in [("txt=0.5", "sum to 0.5"), ("txt", "not FIELD=PROBABILITY"),
                          ("txt=x,json:a=1", "not a number"), ("txt=0.5,txt=0.5", "named twice"),
                          ("txt=-1,json:a=2", "not a number > 0"), ("json:=1", "not FIELD=PROBABILITY"),
                          ("txt=nan", "not a number > 0")]:
        with pytest.raises(UserError, match=message) as info:
            parse_caption_keys(spec)
        assert "\n" not in str(info.value)


def test_draw_frequencies_follow_the_probabilities_and_repeat_for_a_use():
    fields = parse_caption_keys("txt=0.7,json:recaption=0.2,json:alt=0.1")
    draws = Counter(draw_caption_field(fields, 0, 0, f"key{i}") for i in range(30_000))
    assert draws["txt"] / 30_000 == pytest.approx(0.7, abs=0.01)
    assert draws["json:recaption"] / 30_000 == pytest.approx(0.2, abs=0.01)
    assert draws["json:alt"] / 30_000 == pytest.approx(0.1, abs=0.01)
    first = [draw_caption_field(fields, 0, 0, f"key{i}") for i in range(200)]
    assert first == [draw_caption_field(fields, 0, 0, f"key{i}") for i in range(200)]     # same (seed, epoch, key)
    assert first != [draw_caption_field(fields, 0, 1, f"key{i}") for i in range(200)]     # another epoch
    assert first != [draw_caption_field(fields, 1, 0, f"key{i}") for i in range(200)]     # another seed


def _recaptioned_shards(out, samples=400):
    """Samples whose json has ``recaption`` for even indices only (odd ones must fall back to .txt)."""
    captions = {i: {"recaption": f"recaption {i}"} for i in range(0, samples, 2)}
    write_query_shards(out, [None] * samples, shards=2, captions=captions)


def test_stream_uses_the_drawn_field_and_counts_fallbacks(tmp_path):
    _recaptioned_shards(str(tmp_path))
    tokens = RecordingTokenizer()
    stream = ShardStream([str(tmp_path / "00000.tar"), str(tmp_path / "00001.tar")], tokens, batch_size=10,
                         image_size=8, epochs=1, caption_fields=parse_caption_keys(SPEC), shards_per_round=2)
    fallbacks = 0
    for batch in stream:
        fallbacks += batch["caption_fallbacks"]
        if batch["done"]:
            break
    assert len(tokens.captions) == 400
    recaptions = sum(c.startswith("recaption") for c in tokens.captions)
    # Every recaption use was drawn on an even sample; the odd ones that drew it fell back to .txt.
    assert recaptions + fallbacks == pytest.approx(0.3 * 400, abs=30)
    assert recaptions == pytest.approx(0.3 * 200, abs=25) and fallbacks == pytest.approx(0.3 * 200, abs=25)
    assert all(c.split()[1] == str(int(c.split()[1])) for c in tokens.captions)


def test_wit_train_reports_caption_fallbacks_in_metrics_and_epoch_records(tmp_path):
    _recaptioned_shards(str(tmp_path / "shards"), samples=96)
    out = tmp_path / "run"
    assert wit_main(["train", "--shards", str(tmp_path / "shards"), "--out", str(out), "--model", "tiny",
                     "--batch-size", "16", "--workers", "0", "--epochs", "1", "--caption-keys", SPEC,
                     "--tokenizer-captions", "100"]) == 0
    with open(out / "balance" / "epoch-0000.json") as handle:
        record = json.load(handle)
    with open(out / "metrics.jsonl") as handle:
        last = [json.loads(line) for line in handle][-1]
    assert record["seen"] == record["kept"] == 96 and record["caption_keys"] == SPEC
    assert 0 < record["caption_fallbacks"] == last["caption_fallbacks"] < 48
    assert os.path.exists(out / "checkpoints" / "step-00000006.pt")
