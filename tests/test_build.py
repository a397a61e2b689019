"""`wit build --config`: one file for every stage, flags override it, Beam options pass through."""

from __future__ import annotations

import pytest

from wit_pipeline.build import apply_overrides, flags, load_config, plan
from wit_pipeline.cli import main
from wit_pipeline.errors import UserError

CONFIG = """
output: {out}
seed: 3
beam: {{runner: DirectRunner, direct_num_workers: 2}}
queries: {{wikipedia: [dump.xml.bz2], pageviews: [a.gz, b.gz], min_count: 5, keep_case: false}}
candidates: {{source: wat, input: ["wat/*.warc.wat.gz"]}}
select: {{cap: 100}}
download: {{image_size: 64, allow_private_networks: true}}
"""


def test_config_sections_become_each_stages_flags(tmp_path):
    path = tmp_path / "wit.yaml"
    path.write_text(CONFIG.format(out=tmp_path / "run"))
    steps = plan(load_config(str(path)), ["--job_endpoint=localhost:1"])
    assert [s.stage for s in steps] == ["queries", "candidates", "select", "download"]
    queries, candidates, select, download = (s.argv for s in steps)
    root = str(tmp_path / "run")
    assert queries[:2] == ["queries", "build"]
    assert queries[2:] [:9] == ["--wikipedia", "dump.xml.bz2", "--pageviews", "a.gz", "b.gz", "--min-count", "5",
                                "--out", f"{root}/queries"]
    assert "--keep-case" not in queries
    assert select[:5] == ["select", "--candidates", f"{root}/candidates", "--queries", f"{root}/queries"]
    assert ["--seed", "3"] == select[5:7] and ["--cap", "100"] == select[7:9]
    assert download[:3] == ["download", "--input", f"{root}/select/selected"]
    assert "--allow-private-networks" in download
    for argv in (queries, candidates, select, download):  # Beam options reach every stage, CLI last
        assert argv[-3:] == ["--runner=DirectRunner", "--direct_num_workers=2", "--job_endpoint=localhost:1"]


def test_overrides_and_a_given_query_list(tmp_path):
    path = tmp_path / "wit.toml"
    path.write_text(f'output = "{tmp_path}"\n[queries]\npath = "my-queries.txt"\n[select]\ncap = 7\n')
    config = apply_overrides(load_config(str(path)), ["select.cap=20000", "select.match=substring",
                                                      "stages=[queries, select]"])
    steps = plan(config, [])
    assert [s.stage for s in steps] == ["select"]  # a given list needs no query build
    assert steps[0].argv[:5] == ["select", "--candidates", f"{tmp_path}/candidates", "--queries", "my-queries.txt"]
    assert flags(config["select"]) == ["--cap", "20000", "--match", "substring"]


@pytest.mark.parametrize("text, message", [
    ("output: x\nbogus: {}\n", "unknown section"),
    ("- just\n- a list\n", "must be a mapping"),
    ("output: [unclosed\n", "cannot parse config"),
    ("seed: 1\n", "needs an 'output' root"),
    ("output: x\nstages: [queries, train]\n", "unknown stage"),
    ("output: x\ndownload: {image_sise: 64}\n", "section 'download': unknown key 'image_sise'; did you mean "
                                                "'image_size'?"),
    ("output: x\nstages: [select]\nqueries: {min_cont: 5}\n", "did you mean 'min_count'?"),
    ("output: x\nstages: [embed, filter]\n", "stage 'embed' needs --checkpoint, which no stage this config runs "
                                             "writes: give it in its config section (embed: {checkpoint: PATH})"),
    ("output: x\nstages: [filter]\n", "(filter: {embeddings: PATH})"),
    ("output: x\nstages: [embed, filter]\nembed: {checkpoint: run}\nfilter: {clip_score_top: 2}\n",
     "config section 'filter': argument --clip-score-top: --clip-score-top must be at most 1"),
])
def test_config_mistakes_are_one_line_errors(tmp_path, capsys, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["build", "--config", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_bad_override_is_refused():
    with pytest.raises(UserError, match="SECTION.KEY=VALUE"):
        apply_overrides({}, ["select.cap"])


def test_a_switch_that_is_on_by_default_is_turned_off_from_the_config(tmp_path):
    # `save_exif: false` must reach the stage as --no-save-exif, not be dropped (its default is on).
    from wit_pipeline.build import plan

    steps = plan({"output": str(tmp_path), "stages": ["download"],
                  "download": {"save_exif": False, "strict": False}}, [])
    download = next(step for step in steps if step.stage == "download")
    assert "--no-save-exif" in download.argv and "--strict" not in download.argv


CHAIN_INPUTS = {"queries": {"wikipedia": "dump.xml.bz2"}, "candidates": {"source": "wat", "input": "x.warc.wat.gz"}}


def test_embed_and_filter_run_when_the_embed_section_names_a_checkpoint(tmp_path):
    config = {"output": str(tmp_path), "seed": 4, **CHAIN_INPUTS,
              "embed": {"checkpoint": "runs/filter-model", "device": "cpu"},
              "filter": {"clip_score_top": 0.75, "dedup": "near"}}
    steps = {step.stage: step.argv for step in plan(config, [])}
    assert list(steps) == ["queries", "candidates", "select", "download", "embed", "filter"]
    # The checkpoint is the section's own (wit build does not train); the shards are the download's.
    assert steps["embed"][:5] == ["embed", "--shards", f"{tmp_path}/shards", "--checkpoint", "runs/filter-model"]
    assert steps["embed"].count("--checkpoint") == 1 and ["--device", "cpu"] == steps["embed"][5:7]
    assert steps["filter"][:5] == ["filter", "--shards", f"{tmp_path}/shards", "--embeddings", f"{tmp_path}/embed"]
    assert steps["filter"][5:11] == ["--seed", "4", "--clip-score-top", "0.75", "--dedup", "near"]


def test_without_a_checkpoint_embed_and_filter_are_left_out_with_a_note(tmp_path, capsys):
    path = tmp_path / "wit.yaml"
    path.write_text(f"output: {tmp_path}\nqueries: {{wikipedia: dump.xml.bz2}}\n"
                    "candidates: {source: wat, input: x.warc.wat.gz}\nfilter: {dedup: near}\n")
    assert main(["build", "--config", str(path), "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert [line.split(":")[0] for line in out.splitlines()] == ["queries", "candidates", "select", "download"]
    assert err.strip() == ("wit build: not run: embed, filter (embed needs --checkpoint; filter needs --embeddings: "
                           "give it in the stage's config section)")


def test_filter_alone_reads_the_embeddings_its_section_gives(tmp_path):
    steps = plan({"output": str(tmp_path), "stages": ["filter"], "filter": {"embeddings": "emb", "dedup": "exact"}},
                 [])
    assert [s.stage for s in steps] == ["filter"]
    assert steps[0].argv[:5] == ["filter", "--shards", f"{tmp_path}/shards", "--embeddings", "emb"]
    assert steps[0].argv.count("--embeddings") == 1
