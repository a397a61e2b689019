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


def test_flag_bounds_refuse_values_where_parsed_and_for_library_callers():
    import dataclasses

    from wit_pipeline.options import add_options, check_values, option

    @dataclasses.dataclass
    class Knobs:
        rate: float = option(1.0, above=0, maximum=10)
        beta: float = option(0.5, minimum=0, below=1)

    parser = argparse.ArgumentParser(prog="knobs")
    add_options(parser, Knobs)
    for argv, message in ((["--rate", "0"], "--rate must be greater than 0"),
                          (["--rate", "11"], "--rate must be at most 10"),
                          (["--rate", "inf"], "--rate must be a finite number"),
                          (["--beta", "1"], "--beta must be less than 1"),
                          (["--beta", "-0.1"], "--beta must be at least 0")):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)
        with pytest.raises(UserError, match=message):
            check_values(Knobs(**{argv[0][2:]: float(argv[1])}))
    check_values(Knobs(rate=10.0, beta=0.0))


def test_every_numeric_flag_refuses_nan():
    # A NaN compares false with every bound, so it would pass a range check and switch a filter off.
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    parsers = []
    for sub in subparsers.choices.values():
        nested = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
        parsers += list(nested[0].choices.values()) if nested else [sub]
    floats = [(p, a) for p in parsers for a in p._actions if a.type is not None and a.type.__name__ == "float"]
    assert len(floats) > 10
    for _parser, action in floats:
        with pytest.raises(argparse.ArgumentTypeError):
            action.type("nan")


def test_a_worker_disk_error_is_found_in_the_runner_text_and_reported_in_one_line(tmp_path):
    from wit_pipeline.beam import find_disk_error
    from wit_pipeline.errors import disk_error_message

    worker = RuntimeError("Traceback ...\n  File \"x.py\", line 1\nOSError: [Errno 28] No space left on device "
                          "[while running 'Download']\n")
    found = find_disk_error(worker)
    assert found is not None and found.errno == 28 and found.filename is None
    message = disk_error_message(found, str(tmp_path / "out"))
    assert message.startswith(f"no space left on device writing {tmp_path / 'out'} (")
    assert message.endswith("bytes free): free space and rerun; completed work is kept")
    read_only = find_disk_error(RuntimeError("OSError: [Errno 30] Read-only file system: '/ro/out/x.tar'"))
    assert disk_error_message(read_only) == "read-only file system: cannot write /ro/out/x.tar: choose a writable --out"
    assert find_disk_error(RuntimeError("OSError: [Errno 2] No such file or directory: 'x'")) is None
