import os

import pytest

from queries.wordnet import data_files, iter_synsets, parse_data_line
from wit_pipeline.errors import UserError
from wit_pipeline.sampleweb.draw import COLOURS, SHAPES
from wit_pipeline.sampleweb.wiki import write_wordnet


def test_parse_data_line():
    line = "00001740 00 a 03 red 0 reddish 0 blood-red(a) 0 001 & 00001234 a 0000 | having the colour of blood  "
    synset = parse_data_line(line, 1740)
    assert synset.lemmas == ("red", "reddish", "blood-red") and synset.pos == "a" and synset.offset_ok
    noun = parse_data_line("00002000 25 n 02 primary_colour 0 primary_color 0 000 | a colour", 5)
    assert noun.lemmas == ("primary colour", "primary color") and not noun.offset_ok
    with pytest.raises(ValueError):
        parse_data_line("00002000 25 q 01 x 0 000 | bad type")


def test_sample_wndb_offsets_are_byte_offsets(tmp_path):
    directory = str(tmp_path / "wn")
    write_wordnet(directory)
    lemmas = set()
    for path in data_files(directory):
        raw = open(path, "rb").read()
        for synset in iter_synsets(path):
            assert not isinstance(synset, str), synset
            assert synset.offset_ok
            assert raw[synset.offset:synset.offset + 8] == b"%08d" % synset.offset
            lemmas.update(synset.lemmas)
    assert set(COLOURS) <= lemmas and set(SHAPES) <= lemmas
    # index.* lines point at synsets that hold their lemma.
    data = open(os.path.join(directory, "data.noun"), "rb").read()
    for line in open(os.path.join(directory, "index.noun")):
        if line.startswith("  "):
            continue
        fields = line.split()
        lemma, synset_count = fields[0], int(fields[2])
        for offset in fields[-synset_count:]:
            target = data[int(offset):data.index(b"\n", int(offset))].decode()
            assert f" {lemma} " in target.lower().replace("(a)", "")


def test_missing_wordnet_dir_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="has none of data.noun"):
        data_files(str(tmp_path))


def test_sample_wiki_inputs_are_deterministic(tmp_path):
    from wit_pipeline.sampleweb.wiki import write_wiki_inputs

    first = write_wiki_inputs(str(tmp_path / "a"), seed=3)
    again = write_wiki_inputs(str(tmp_path / "b"), seed=3)
    other = write_wiki_inputs(str(tmp_path / "c"), seed=4)
    assert {"wikipedia", "pageviews", "wordnet"} <= set(first) and len(first["pageviews"]) == 3

    def content(paths):
        return [open(p, "rb").read() for p in paths["wikipedia"] + paths["pageviews"]]

    assert content(first) == content(again)
    assert content(first)[0] != content(other)[0]
