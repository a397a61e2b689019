"""`wit embed`: the embeddings folder's layout, its numbers, and the shard sets it reads."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from trainer.checkpoint import load_checkpoint, model_from_checkpoint
from trainer.data import decode_image
from wit_pipeline.cli import main as wit_main
from wit_pipeline.embed.parts import part_suffix
from wit_pipeline.embed.pipeline import EmbedOptions, prepared_batches, run_embed
from wit_pipeline.errors import UserError
from wit_pipeline.shardset import iter_tar_samples


def _embed(shards: str, out, checkpoint: str, **extra) -> dict:
    return run_embed(EmbedOptions(shards=shards, out=str(out), checkpoint=checkpoint, batch_size=4, workers=2,
                                  **extra))


def _tar_samples(shards: str) -> list[tuple[str, str, dict]]:
    """``(shard path, key, members)`` of every sample, in sorted shard order."""
    found = []
    for name in sorted(n for n in os.listdir(shards) if n.endswith(".tar")):
        path = os.path.join(shards, name)
        found += [(path, key, members) for key, members in iter_tar_samples(path)]
    return found


def _read_folder(out) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    parts = sorted(os.listdir(os.path.join(out, "metadata")))
    images = [np.load(os.path.join(out, "img_emb", p.replace("metadata", "img_emb").replace(".parquet", ".npy")))
              for p in parts]
    texts = [np.load(os.path.join(out, "text_emb", p.replace("metadata", "text_emb").replace(".parquet", ".npy")))
             for p in parts]
    rows = [row for p in parts for row in pq.read_table(os.path.join(out, "metadata", p)).to_pylist()]
    return np.concatenate(images), np.concatenate(texts), rows


def test_the_folder_has_clip_retrievals_layout_with_unit_float16_rows_aligned_to_the_samples(
        embed_shards, tiny_run, tmp_path):
    stats = _embed(embed_shards, tmp_path / "emb", tiny_run)
    names = {folder: sorted(os.listdir(tmp_path / "emb" / folder)) for folder in ("img_emb", "text_emb", "metadata")}
    assert names == {"img_emb": ["img_emb_0.npy", "img_emb_1.npy", "img_emb_2.npy"],
                     "text_emb": ["text_emb_0.npy", "text_emb_1.npy", "text_emb_2.npy"],
                     "metadata": ["metadata_0.parquet", "metadata_1.parquet", "metadata_2.parquet"]}
    image, text, rows = _read_folder(tmp_path / "emb")
    samples = _tar_samples(embed_shards)
    assert image.dtype == text.dtype == np.float16 and image.shape == text.shape == (len(samples), 64)
    np.testing.assert_allclose(np.linalg.norm(image.astype(np.float32), axis=1), 1.0, atol=2e-3)
    np.testing.assert_allclose(np.linalg.norm(text.astype(np.float32), axis=1), 1.0, atol=2e-3)
    assert [(r["shard"], r["key"], r["caption"]) for r in rows] == [
        (path, key, members["txt"].decode()) for path, key, members in samples]
    assert all(r["url"] is None for r in rows)        # the synthetic shards carry no url
    schema = pq.read_schema(tmp_path / "emb" / "metadata" / "metadata_0.parquet")
    assert [(f.name, str(f.type)) for f in schema] == [("key", "string"), ("shard", "string"), ("url", "string"),
                                                      ("caption", "string"), ("clip_score", "float")]
    assert stats["accounted"] and stats["in"] == stats["out"] == len(samples) and stats["parts"] == 3
    assert stats["dim"] == 64 and stats["precision"] == "fp32" and stats["parts_resumed"] == 0
    described = json.loads((tmp_path / "emb" / "embed.json").read_text())
    assert described["model"]["kind"] == "wit" and described["model"]["path"].endswith("step-00000002.pt")
    assert described["dim"] == 64 and described["image_size"] == 32 and len(described["model"]["sha256"]) == 64


def test_clip_score_is_the_cosine_the_model_itself_computes(embed_shards, tiny_run, tmp_path):
    _embed(embed_shards, tmp_path / "emb", tiny_run)
    image, text, rows = _read_folder(tmp_path / "emb")
    model, tokenizer = model_from_checkpoint(load_checkpoint(tiny_run))
    samples = _tar_samples(embed_shards)
    pixels = torch.from_numpy(np.stack([decode_image(m["jpg"], model.config.image_size) for _, _, m in samples]))
    with torch.no_grad():
        direct_image = model.encode_image(pixels)
        direct_text = model.encode_text(torch.from_numpy(tokenizer([m["txt"].decode() for _, _, m in samples])))
    direct = (direct_image * direct_text).sum(-1).numpy()
    scores = np.array([r["clip_score"] for r in rows], dtype=np.float32)
    np.testing.assert_allclose(scores, direct, atol=1e-2)
    np.testing.assert_allclose(image.astype(np.float32), direct_image.numpy(), atol=1e-2)
    np.testing.assert_allclose(text.astype(np.float32), direct_text.numpy(), atol=1e-2)


def _tar(path, samples: list[tuple[str, dict[str, bytes]]]) -> None:
    with tarfile.open(path, "w") as tar:
        for key, members in samples:
            for ext, data in members.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def test_a_plain_tar_folder_without_manifest_is_embedded_and_bad_samples_are_counted(embed_shards, tiny_run,
                                                                                    tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    good = _tar_samples(embed_shards)[:3]
    _tar(plain / "b.tar", [(key, {"jpg": m["jpg"], "json": json.dumps({"caption": "from json", "url": "http://x/1"})
                                  .encode()}) for _, key, m in good[:2]])
    _tar(plain / "a.tar", [("k1", {"jpg": good[2][2]["jpg"], "txt": b"a red circle"}),
                           ("k2", {"txt": b"no image here"}),
                           ("k3", {"jpg": b"not a jpeg at all", "txt": b"broken"}),
                           ("k4", {"png": good[0][2]["jpg"]})])          # an image under another extension
    stats = _embed(str(plain), tmp_path / "emb", tiny_run)
    _, _, rows = _read_folder(tmp_path / "emb")
    assert [(os.path.basename(r["shard"]), r["key"], r["caption"], r["url"]) for r in rows] == [
        ("a.tar", "k1", "a red circle", None), ("a.tar", "k4", "", None),
        ("b.tar", good[0][1], "from json", "http://x/1"), ("b.tar", good[1][1], "from json", "http://x/1")]
    assert stats["dropped"] == {"missing_image": 1, "unreadable_image": 1, "damaged_shard": 0}
    assert stats["in"] == 6 and stats["out"] == 4 and stats["accounted"]
    assert stats["samples_without_caption"] == 1


def test_a_damaged_shard_keeps_the_samples_before_the_damage_and_is_redone_next_run(embed_shards, tiny_run,
                                                                                    tmp_path):
    shards = tmp_path / "shards"
    shutil.copytree(embed_shards, shards)
    data = (shards / "00001.tar").read_bytes()
    (shards / "00001.tar").write_bytes(data[: len(data) // 2])
    stats = _embed(str(shards), tmp_path / "emb", tiny_run)
    assert stats["dropped"]["damaged_shard"] == 1 and stats["accounted"]
    assert 0 < stats["out"] < 30 and stats["broken_shards"][0]["shard"].endswith("00001.tar")
    shutil.copy(os.path.join(embed_shards, "00001.tar"), shards / "00001.tar")      # the shard replaced
    again = _embed(str(shards), tmp_path / "emb", tiny_run)
    assert again["parts_resumed"] == 2 and again["out"] == 30 and again["dropped"]["damaged_shard"] == 0


def test_a_rerun_keeps_whole_parts_and_refuses_another_model(embed_shards, tiny_run, tmp_path):
    first = _embed(embed_shards, tmp_path / "emb", tiny_run)
    before = {p: os.stat(os.path.join(tmp_path, "emb", "img_emb", p)).st_mtime_ns
              for p in os.listdir(tmp_path / "emb" / "img_emb")}
    again = _embed(embed_shards, tmp_path / "emb", tiny_run)
    assert again["parts_resumed"] == 3 and again["out"] == first["out"] and again["accounted"]
    assert before == {p: os.stat(os.path.join(tmp_path, "emb", "img_emb", p)).st_mtime_ns for p in before}
    with pytest.raises(UserError, match=r"made with another precision .*use another --out"):
        _embed(embed_shards, tmp_path / "emb", tiny_run, precision="bf16")


def test_decoding_ahead_in_threads_keeps_the_shards_order():
    samples = [(f"k{i}", {"n": i}) for i in range(23)]
    with ThreadPoolExecutor(3) as pool:
        threaded = [b for b in prepared_batches(samples, lambda key, members: key, 5, pool)]
    assert threaded == [b for b in prepared_batches(samples, lambda key, members: key, 5, None)]
    assert [len(b) for b in threaded] == [5, 5, 5, 5, 3]


@pytest.mark.parametrize(("index", "parts", "expected"), [(0, 1, "0"), (8, 9, "8"), (7, 10, "07"), (7, 100, "007")])
def test_parts_are_padded_as_clip_retrieval_pads_them(index, parts, expected):
    assert part_suffix(index, parts) == expected


def test_the_command_prints_what_it_embedded(embed_shards, tiny_run, tmp_path, capsys):
    assert wit_main(["embed", "--shards", embed_shards, "--checkpoint", tiny_run, "--out", str(tmp_path / "emb"),
                     "--batch-size", "16", "--workers", "1"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("wit embed: 30 of 30 samples embedded (tiny, dim 64, fp32 on cpu; dropped: none); 3 parts")
    assert line.endswith(str(tmp_path / "emb"))
