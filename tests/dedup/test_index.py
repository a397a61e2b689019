"""The eval index: stop elements, LSH candidates against brute force, pickling, bookkeeping."""

from __future__ import annotations

import pickle

import numpy as np

from dedup.index import EvalEntry, IndexBuilder, clear_loaded, keys_by_set, load_index, save_index
from dedup.signatures import decode_canvas, eval_image_signature, image_codes, text_signature
from dedup.synthetic import distinct_image, jpeg_bytes, transformed_copy

WORDS = ["harbour", "lantern", "meadow", "granite", "orchid", "velvet", "thunder", "pepper", "canyon", "saffron",
         "glacier", "walnut", "copper", "ember", "willow", "quartz", "falcon", "juniper", "marble", "tundra"]


def caption(i: int) -> str:
    return f"{WORDS[i % 20]} {WORDS[(7 * i + 3) % 20]} and a {WORDS[(3 * i + 11) % 20]} at dusk"


def _index(n: int = 40):
    builder = IndexBuilder(image_threshold=0.15, text_threshold=0.7)
    for i in range(n):
        builder.add(EvalEntry("a" if i % 2 else "b", f"{i}.jpg"), eval_image_signature(jpeg_bytes(distinct_image(i))),
                    text_signature(caption(i)))
    return builder.build()


def test_lsh_candidates_are_verified_exactly_and_agree_with_brute_force():
    index = _index()
    assert index.lsh_params["image"] == (64, 2)   # weights=(0.2, 0.8) at 0.15: 64 bands of 2 rows
    for i in range(0, 40, 5):
        codes = image_codes(decode_canvas(transformed_copy(distinct_image(i), seed=i)))
        matches, checked = index.match(codes, None, 0.15)
        brute = index.brute_force_image(codes)
        assert checked >= len(matches)
        assert [m.key for m in matches] == [i]
        assert matches[0].similarity == brute[i]
        assert int(np.argmax(brute)) == i


def test_band_tables_answer_exactly_as_datasketch_minhashlsh():
    """Our sorted-array buckets against a real MinHashLSH holding the same hash values, on crowded buckets."""
    from datasketch import MinHashLSH

    from dedup.index import BandTables, MinHasher, _SetStore

    rng = np.random.default_rng(0)
    hasher = MinHasher()
    values = rng.integers(0, 6, (300, hasher.num_perm)).astype(np.uint32)    # few values: many shared buckets
    sets = [np.array([i], np.uint32) if i % 7 else np.array([], np.uint32) for i in range(300)]  # some empty
    for threshold, weights in ((0.15, (0.2, 0.8)), (0.5, (0.5, 0.5)), (0.8, (0.5, 0.5))):
        lsh = MinHashLSH(threshold=threshold, num_perm=hasher.num_perm, weights=weights)
        for key, row in enumerate(values):
            if len(sets[key]):
                lsh.insert(key, hasher.minhash(hashvalues=row))
        tables = BandTables.build(lsh.hashranges, values, _SetStore(sets))
        for query in list(values[:40]) + list(rng.integers(0, 6, (40, hasher.num_perm)).astype(np.uint32)):
            assert sorted(tables.query(query)) == sorted(lsh.query(hasher.minhash(hashvalues=query)))


def test_text_matches():
    index = _index(20)
    matches, _ = index.match(None, text_signature(caption(7).upper() + "!"), 0.7)
    assert [(m.key, m.kind, m.similarity) for m in matches] == [(7, "text", 1.0)]


def test_stop_elements_are_frequent_eval_elements():
    builder = IndexBuilder(image_threshold=0.15, text_threshold=0.7, stop_df=0.5, stop_min=1)
    common = np.array([1, 2, 3], np.uint32)
    for i in range(4):
        builder.add(EvalEntry("s", str(i)), np.concatenate([common, np.array([100 + i], np.uint32)]), None)
    assert builder.stop_codes().tolist() == [1, 2, 3]
    index = builder.build()
    assert index.prepare_image(np.array([3, 101, 1, 101], np.uint32)).tolist() == [101]


def test_index_round_trips_through_a_file(tmp_path):
    index = _index(10)
    path = str(tmp_path / "index.pkl")
    save_index(index, path)
    clear_loaded()
    loaded = load_index(path)
    assert load_index(path) is loaded                      # once per process
    assert "image_lsh" not in pickle.loads(open(path, "rb").read()).__getstate__()
    codes = image_codes(decode_canvas(jpeg_bytes(distinct_image(3))))
    assert loaded.match(codes, None, 0.1) == index.match(codes, None, 0.1)
    assert keys_by_set(loaded.entries) == {"b": [0, 2, 4, 6, 8], "a": [1, 3, 5, 7, 9]}
    clear_loaded()
