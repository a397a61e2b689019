import json

import pytest

from trainer.tokenizer import Tokenizer, normalize

CAPTIONS = ["a red circle on a blue background", "A Green Star on a white background!",
            "the square is yellow and the background is black", "photo of a purple diamond"] * 20


def test_round_trip_of_normalised_text():
    tok = Tokenizer.train(CAPTIONS, vocab_size=400)
    for text in CAPTIONS + ["Unseen WORDS, punctuation... & digits 12345", "naïve café — 東京 🙂", "don't  stop\n\tnow",
                            "under_score and 'quotes'", ""]:
        assert tok.decode(tok.encode(text)) == normalize(text)
        row = tok([text])[0]
        assert row[0] == tok.sos_id and tok.eos_id in row
        assert tok.decode(row) == normalize(text)


def test_learns_merges_and_compresses_captions():
    tok = Tokenizer.train(CAPTIONS, vocab_size=400)
    assert 258 < tok.vocab_size <= 400
    assert len(tok.encode("a red circle on a blue background")) < 10   # whole words, not bytes
    assert tok.eos_id == tok.vocab_size - 1 and tok.sos_id == tok.vocab_size - 2


def test_lower_cased():
    tok = Tokenizer.train(CAPTIONS, vocab_size=400)
    assert tok.encode("A RED Circle") == tok.encode("a red circle")


def test_context_truncation_keeps_eos_and_pads():
    tok = Tokenizer.train(CAPTIONS, vocab_size=300, context_length=8)
    row = tok(["red " * 50])[0]
    assert len(row) == 8 and row[0] == tok.sos_id and row[-1] == tok.eos_id
    short = list(tok(["red"])[0])
    end = short.index(tok.eos_id)
    assert end < 7 and short[end + 1:] == [0] * (7 - end) and max(short) == tok.eos_id


def test_save_load_and_determinism(tmp_path):
    tok = Tokenizer.train(CAPTIONS, vocab_size=350)
    again = Tokenizer.train(list(CAPTIONS), vocab_size=350)
    assert tok == again
    path = tmp_path / "tokenizer.json"
    path.write_text(tok.to_json())
    loaded = Tokenizer.from_json(path.read_text())
    assert loaded == tok and loaded.encode("blue star") == tok.encode("blue star")
    with pytest.raises(ValueError):
        Tokenizer.from_dict({**json.loads(tok.to_json()), "format": "other"})


def test_vocab_size_floor():
    with pytest.raises(ValueError):
        Tokenizer.train(CAPTIONS, vocab_size=100)
