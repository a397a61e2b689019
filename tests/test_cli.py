"""The `wit` command: help, one-line errors with a non-zero exit, Beam options passed through."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from wit_pipeline.beam import pipeline_options
from wit_pipeline.cli import build_parser, main
from wit_pipeline.errors import UserError
from wit_pipeline.stages import COMMANDS, STAGES


def _wit(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    return subprocess.run([sys.executable, "-m", "wit_pipeline", *args], capture_output=True, text=True,
                          timeout=120, env=env, cwd=cwd)


def _subcommands(parser: argparse.ArgumentParser) -> list[str]:
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(subparsers.choices)


def test_help_lists_every_stage():
    result = _wit("--help")
    assert result.returncode == 0
    for command in ("demo", "sampleweb", "build", "queries", "overlap", "train"):
        assert f"    {command}" in result.stdout


def test_help_lists_the_chain_in_order_then_the_other_commands():
    # Stage names are their commands, except that `wit train` also adds `wit eval`.
    commands = [name for name in _subcommands(build_parser()) if name != "eval"]
    assert commands == [s.name for s in STAGES] + [c.name for c in COMMANDS]


def test_help_does_not_import_torch():
    # `wit --help` must stay quick: the trainer's torch is imported when a command needs it.
    code = "import sys; from wit_pipeline.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr[-2000:]


def test_every_command_has_help(capsys):
    for name in _subcommands(build_parser()):
        with pytest.raises(SystemExit) as exit_:
            main([name, "--help"])
        assert exit_.value.code == 0, name
        assert "usage: wit" in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: wit" in capsys.readouterr().out


def test_unknown_command_is_a_one_line_error():
    result = _wit("no-such-stage")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "invalid choice" in result.stderr


def test_unknown_flag_on_a_non_beam_command_is_refused():
    result = _wit("sampleweb", "write", "/tmp/x", "--bogus")
    assert result.returncode == 2 and "unrecognized arguments: --bogus" in result.stderr


def test_unusable_output_path_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = _wit("demo", "--out", str(blocker))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "not a directory" in result.stderr


def test_unknown_beam_option_is_refused_not_ignored():
    with pytest.raises(UserError, match="--no_such_beam_flag"):
        pipeline_options(["--no_such_beam_flag=1"])
    result = _wit("demo", "--out", "/tmp/wit-never-written", "--no_such_beam_flag=1")
    assert result.returncode == 2 and "unknown Beam pipeline option" in result.stderr
    assert not os.path.exists("/tmp/wit-never-written/sampleweb")


def test_beam_options_default_to_direct_runner_and_pass_through(monkeypatch):
    monkeypatch.delenv("WIT_DIRECT_RUNNING_MODE")
    options = pipeline_options([]).get_all_options()
    assert options["runner"] == "DirectRunner"
    assert options["direct_running_mode"] == "multi_processing"
    assert options["direct_num_workers"] == (os.cpu_count() or 1)
    options = pipeline_options(["--direct_running_mode=in_memory", "--direct_num_workers", "1"]).get_all_options()
    assert (options["direct_running_mode"], options["direct_num_workers"]) == ("in_memory", 1)
    options = pipeline_options(["--runner", "PortableRunner", "--job_endpoint", "localhost:1"]).get_all_options()
    assert options["runner"] == "PortableRunner" and options["job_endpoint"] == "localhost:1"


def test_version():
    result = _wit("--version")
    assert result.returncode == 0 and result.stdout.startswith("wit-pipeline ")


def test_a_closed_pipe_ends_output_quietly(tmp_path):
    # `wit ... | head -1`-style use: the reader has gone when the command prints; no traceback.
    wit = subprocess.Popen([sys.executable, "-m", "wit_pipeline", "sampleweb", "write", str(tmp_path)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ})
    wit.stdout.close()
    _, err = wit.communicate(timeout=60)
    assert b"Traceback" not in err and b"BrokenPipe" not in err
    assert wit.returncode == 141
