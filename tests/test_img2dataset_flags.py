"""img2dataset's option names on our commands: one line naming our flag, or saying there is none."""

from __future__ import annotations

import inspect

import img2dataset
import pytest

from wit_pipeline.cli import build_parser
from wit_pipeline.cli import main as wit
from wit_pipeline.img2dataset_options import DOWNLOAD_OPTIONS, hint, rows


def _download_flags() -> set[str]:
    parser = build_parser()
    download = next(action for action in parser._subparsers._group_actions if action.dest == "command")
    return set(download.choices["download"]._option_string_actions)


def test_every_img2dataset_download_option_is_mapped_in_its_order():
    assert list(DOWNLOAD_OPTIONS) == list(inspect.signature(img2dataset.download).parameters)


def test_every_mapped_flag_is_a_wit_download_flag():
    flags = _download_flags()
    assert [row["wit"] for row in rows() if row["wit"] and row["wit"] not in flags] == []


def test_rows_give_both_names_and_a_note_for_the_docs_table():
    table = {row["img2dataset"]: row for row in rows()}
    assert table["--image_size"]["wit"] == "--image-size"
    assert table["--enable_wandb"]["wit"] is None and table["--enable_wandb"]["note"]
    assert all(row["note"] for row in rows() if row["wit"] is None)


@pytest.mark.parametrize("args", [["--image_size", "64"], ["--image_size=64"]])
def test_an_img2dataset_flag_name_points_at_ours_in_one_line(tmp_path, capsys, args):
    code = wit(["download", "--input", str(tmp_path / "in.csv"), "--out", str(tmp_path / "o"), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err == "wit download: error: --image_size is img2dataset's name: use --image-size\n"
    assert not (tmp_path / "o").exists()


def test_an_img2dataset_option_without_an_equivalent_is_named_as_such(tmp_path, capsys):
    code = wit(["download", "--input", "in.csv", "--out", str(tmp_path / "o"), "--processes_count", "4",
                "--enable_wandb", "True"])
    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        "wit download: error: --processes_count is img2dataset's name: use --processes (Beam DirectRunner workers)"]
    assert wit(["download", "--input", "in.csv", "--out", str(tmp_path / "o"), "--enable_wandb", "True"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("wit download: error: img2dataset's --enable_wandb has no equivalent in wit download (")
    assert len(err.splitlines()) == 1


def test_candidates_points_img2dataset_column_names_at_ours(tmp_path, capsys):
    code = wit(["candidates", "--source", "table", "--input", "in.csv", "--out", str(tmp_path / "o"),
                "--caption_col", "caption"])
    assert code == 2
    assert capsys.readouterr().err.startswith("wit candidates: error: --caption_col is img2dataset's name: use "
                                              "--caption-col")


def test_the_hint_leaves_other_arguments_to_beam():
    assert hint("download", ["--runner", "DirectRunner", "--direct_num_workers=2"]) is None
    assert hint("candidates", ["--image_size", "64"]) is None   # no image options in candidates
    assert hint("select", ["--url_col", "u"]) is None
