"""The stage chain listed once (wit_pipeline/stages.py): its order, its references, and what reads it."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect

import pytest

from wit_pipeline import build, demo, fileio
from wit_pipeline.cli import build_parser, main
from wit_pipeline.errors import UserError
from wit_pipeline.options import flag_names, option
from wit_pipeline.stages import COMMANDS, STAGES, built_stages, load, stage


def test_the_chain_is_listed_in_order():
    assert [s.name for s in STAGES] == ["queries", "candidates", "select", "download", "shards", "train", "overlap",
                                        "embed", "filter"]
    assert [c.name for c in COMMANDS] == ["build", "demo", "sampleweb"]
    assert [s.name for s in built_stages()] == ["queries", "candidates", "select", "download", "embed", "filter"]


def test_every_command_module_registers_a_subcommand():
    for record in (*STAGES, *COMMANDS):
        assert callable(importlib.import_module(record.cli).register), record.cli


@pytest.mark.parametrize("job", [job for record in STAGES for job in record.jobs], ids=lambda job: job.name)
def test_every_job_names_an_entry_point_and_an_options_dataclass(job):
    run, options = load(job.run), load(job.options)
    assert callable(run) and dataclasses.is_dataclass(options)
    assert run.__name__.startswith("run_") and options.__name__.endswith("Options"), "run_x / XOptions"
    assert list(inspect.signature(run).parameters)[0] == "options"


def _subcommand(parser: argparse.ArgumentParser, words: tuple[str, ...]) -> argparse.ArgumentParser:
    for word in words:
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[word]
    return parser


def test_every_jobs_command_takes_exactly_its_options_flags():
    # So `wit build`'s key check (against the options class) refuses nothing the command accepts.
    parser = build_parser()
    for job in (job for record in STAGES for job in record.jobs):
        command = _subcommand(parser, job.command)
        given = {flag for action in command._actions for flag in action.option_strings
                 if flag.startswith("--") and flag != "--help"}
        assert given == flag_names(load(job.options)), job.name


@pytest.mark.parametrize("record", [s for s in STAGES if s.demo], ids=lambda s: s.name)
def test_every_demo_step_imports(record):
    assert record.demo.endswith(":demo_step") and callable(load(record.demo))


def test_inputs_read_outputs_that_earlier_stages_declare():
    seen: dict[str, dict[str, str]] = {}
    for record in STAGES:
        for wanted in record.inputs:
            assert wanted.output in seen.get(wanted.stage, {}), (record.name, wanted)
        seen[record.name] = record.outputs
    assert all(s.folder for s in STAGES if s.jobs), "every stage that writes output has a folder"


def test_the_demo_runs_the_chain_in_order_after_the_sample_web():
    assert [name for name, _ in demo.DEMO_STEPS] == [
        "sample web", "queries", "candidates", "select", "download", "train", "overlap", "embed", "filter"]
    assert [name for name, _ in demo.DEMO_STEPS[1:]] == [s.name for s in STAGES if s.demo]


def test_the_build_plan_follows_the_records(tmp_path):
    root = str(tmp_path / "run")
    # embed reads a `wit train` run, which no built stage makes: its section names one.
    steps = build.plan({"output": root, "queries": {"wikipedia": "enwiki-pages-articles.xml.bz2"},
                        "candidates": {"source": "wat", "input": "CC-MAIN-*.warc.wat.gz"},
                        "embed": {"checkpoint": "runs/model"}}, [])
    assert [step.stage for step in steps] == list(build.STAGES) == [s.name for s in built_stages()]
    for step in steps:
        record = stage(step.stage)
        assert step.out == fileio.join(root, record.folder)
        assert step.argv[:len(record.job.command)] == list(record.job.command)
        assert step.argv[-2:] == ["--out", step.out]
        for wanted in record.inputs:   # each input flag names the upstream stage's output under the root
            if not stage(wanted.stage).built:
                assert step.argv[step.argv.index(wanted.flag) + 1] == "runs/model"
                continue
            upstream = stage(wanted.stage)
            relative = upstream.outputs[wanted.output]
            folder = fileio.join(root, upstream.folder)
            assert step.argv[step.argv.index(wanted.flag) + 1] == (fileio.join(folder, relative) if relative
                                                                   else folder)


@dataclasses.dataclass
class _SelectLike:
    cap: int = option(20000, help="the per-query cap")
    keep_case: bool = option(False, help="match case-sensitively")


@dataclasses.dataclass
class _NotConverted:
    cap: int = 20000


def _options_of(select_class, monkeypatch):
    """``load`` for the build, with the select stage's options class replaced; the planned command lines
    are then not the real parser's, so their up-front parse is left out."""
    monkeypatch.setattr(build, "check_stage_line", lambda step: None)

    def fake_load(reference: str):
        return select_class if reference == stage("select").job.options else _NotConverted
    return fake_load


def test_a_misspelt_config_key_is_refused_with_the_nearest_one(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(build, "load", _options_of(_SelectLike, monkeypatch))
    config = {"output": str(tmp_path), "select": {"cap": 5, "keep_cases": True}}
    with pytest.raises(UserError, match=r"config section 'select': unknown key 'keep_cases'; did you mean "
                                        r"'keep_case'\?"):
        build.plan(config, [])
    build.plan({"output": str(tmp_path), "select": {"cap": 5, "keep-case": True}}, [])   # both spellings of a flag

    path = tmp_path / "wit.yaml"
    path.write_text(f"output: {tmp_path}\nselect: {{kep_case: true}}\n")
    assert main(["build", "--config", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'keep_case'?" in err and len(err.strip().splitlines()) == 1


def test_keys_of_a_stage_without_option_fields_are_left_to_its_parser(monkeypatch, tmp_path):
    monkeypatch.setattr(build, "load", _options_of(_NotConverted, monkeypatch))
    steps = build.plan({"output": str(tmp_path), "select": {"anything_goes": 1}}, [])
    assert "--anything-goes" in steps[2].argv


def test_a_given_query_list_is_a_known_key_and_skips_the_query_build(monkeypatch, tmp_path):
    monkeypatch.setattr(build, "load", lambda reference: _SelectLike if "queries" in reference else _NotConverted)
    monkeypatch.setattr(build, "check_stage_line", lambda step: None)
    steps = build.plan({"output": str(tmp_path), "queries": {"path": "my.txt"}}, [])
    assert [s.stage for s in steps] == ["candidates", "select", "download"]
    assert steps[1].argv[steps[1].argv.index("--queries") + 1] == "my.txt"
