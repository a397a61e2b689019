from wit_pipeline.text import canonical, normalize_text, padded, sentences, words


def test_normalisation_folds_unicode_case_and_space():
    assert normalize_text("  Ｒｅｄ\tCIRCLE\n on\u00a0blue ") == "red circle on blue"
    assert normalize_text("Red Circle", keep_case=True) == "Red Circle"
    assert normalize_text("ﬁsh\x00bowl") == "fish bowl"  # ligature folded, control char is a space


def test_words_keep_inner_apostrophes_and_hyphens_only():
    assert words("Don't stop: x-ray, l’eau -- 'quoted' snake_case 42nd") == [
        "don't", "stop", "x-ray", "l'eau", "quoted", "snake", "case", "42nd"]
    assert words("Café, naïve; Ελληνικά!") == ["café", "naïve", "ελληνικά"]


def test_canonical_and_padded_give_whole_word_matching():
    caption = padded("A RED circle, on a blue background!")
    assert " red circle " in caption
    assert " circle on " in caption
    assert " red circ " not in caption
    assert canonical("AC/DC") == "ac dc"


def test_sentences_split_on_terminal_punctuation_and_newlines():
    assert sentences("Red is a colour. Blue too!\nGreen? yes") == ["Red is a colour.", "Blue too!", "Green?", "yes"]
