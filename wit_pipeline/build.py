"""``wit build --config FILE``: the whole chain (queries, candidates, select, download, embed, filter) from one file.

The config holds one section per stage whose keys are that stage's own command-line flags
(``min_count: 100`` is ``--min-count 100``; a list repeats values, ``true`` is a bare flag), so
the file and the commands can never drift apart, and every stage's validation applies; a key that
is no flag of its stage's options class is refused before anything runs, and so is a value its
stage's command line would refuse (each planned command line is parsed up front, ``--dry-run`` too).
The stages, their order, their output folders and which earlier output each reads come from
``wit_pipeline.stages``. A stage's section may give an input itself (``embed: {checkpoint: RUN}``, the flag's
name as key); a stage reading something no stage of the build writes (``embed``'s ``--checkpoint``: `wit build`
does not train) runs only when its section gives it, and the stages reading its output with it (``filter``):
without one they are left out, with a note, unless ``stages`` names them (then it is an error). Each stage
writes under the output root (local, ``gs://`` or ``s3://``), so
a failed stage can be re-run alone with ``--stages``. Beam pipeline options come from the config's
``beam`` section and from the trailing command line (which wins), and reach every stage unchanged.

Example (YAML; TOML with the same structure works too)::

    output: gs://my-bucket/wit
    seed: 0
    beam: {runner: DataflowRunner, project: my-project, region: us-central1,
           temp_location: gs://my-bucket/tmp, sdk_container_image: REGISTRY/wit-pipeline:0.1.0}
    queries:   {wikipedia: [gs://my-bucket/enwiki-pages-articles-multistream.xml.bz2],
                pageviews: ["gs://my-bucket/pageviews/*.gz"], wordnet: /usr/share/wordnet}
    candidates: {source: wat, input: ["gs://my-bucket/wat/*.warc.wat.gz"]}
    select:    {cap: 20000}
    download:  {image_size: 256, processes: 16, threads: 64}
    embed:     {checkpoint: gs://my-bucket/runs/filter-model, device: cuda}   # optional: a `wit train` run
    filter:    {clip_score_top: 0.75, dedup: near}
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import io
import logging
import sys
from dataclasses import dataclass

import yaml

from . import fileio
from .errors import UserError
from .options import flag_names, negatable_names
from .stages import Input, Stage, built_stages, load

log = logging.getLogger(__name__)

STAGES = tuple(s.name for s in built_stages())     # the stages `wit build` runs, in order
TOP_LEVEL_KEYS = {"output", "seed", "beam", "stages", *STAGES}


def load_config(path: str) -> dict:
    """Parse a YAML or TOML config (by extension; YAML otherwise) into a dict."""
    text = fileio.read_text(path)      # not UTF-8: a UserError naming the line
    try:
        if path.endswith(".toml"):
            import tomllib  # Python 3.11+; imported here so YAML configs still work on 3.10

            config = tomllib.loads(text)
        else:
            config = yaml.safe_load(text)
    except Exception as exc:  # both parsers say where the error is: keep that, in one line
        raise UserError(f"cannot parse config {path!r}: {' '.join(str(exc).split())}") from exc
    if not isinstance(config, dict):
        raise UserError(f"config {path!r} must be a mapping of sections")
    unknown = set(config) - TOP_LEVEL_KEYS
    if unknown:
        raise UserError(f"config {path!r}: unknown section(s) {', '.join(sorted(unknown))}; "
                        f"expected {', '.join(sorted(TOP_LEVEL_KEYS))}")
    return config


def apply_overrides(config: dict, overrides: list[str]) -> dict:
    """``SECTION.KEY=VALUE`` overrides (VALUE parsed as YAML: numbers, lists, booleans)."""
    config = {k: (dict(v) if isinstance(v, dict) else v) for k, v in config.items()}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--set expects SECTION.KEY=VALUE, got {item!r}")
        section, _, name = key.partition(".")
        if section not in TOP_LEVEL_KEYS:
            raise UserError(f"--set {item!r}: unknown section {section!r}")
        parsed = yaml.safe_load(value) if value else ""
        if name:
            config.setdefault(section, {})
            if not isinstance(config[section], dict):
                raise UserError(f"--set {item!r}: {section!r} is not a section")
            config[section][name] = parsed
        else:
            config[section] = parsed
    return config


def flags(section: dict, negatable: frozenset[str] = frozenset()) -> list[str]:
    """A config section as command-line flags: ``{min_count: 5, keep_case: true}`` -> ``--min-count 5 --keep-case``.

    ``false`` leaves a flag out (its default holds), except for the ``negatable`` keys, on-by-default switches
    with a ``--no-`` form (``save_exif: false`` -> ``--no-save-exif``)."""
    argv: list[str] = []
    for key, value in section.items():
        flag = "--" + str(key).replace("_", "-")
        if value is False and str(key).replace("-", "_") in negatable:
            argv.append("--no-" + flag[2:])
            continue
        if value is None or value is False:
            continue
        if value is True:
            argv.append(flag)
        elif isinstance(value, (list, tuple)):
            argv += [flag, *map(str, value)]
        else:
            argv += [flag, str(value)]
    return argv


def beam_flags(beam: dict | list | None) -> list[str]:
    """Beam options keep Beam's own spelling (``temp_location``), unlike stage flags."""
    if not beam:
        return []
    if isinstance(beam, list):
        return [str(x) for x in beam]
    return [f"--{key}={str(value).lower() if isinstance(value, bool) else value}" for key, value in beam.items()]


@dataclass
class StagePlan:
    stage: str
    argv: list[str]     # the `wit` command line that runs it
    out: str


def _section(config: dict, name: str) -> dict:
    value = config.get(name) or {}
    if not isinstance(value, dict):
        raise UserError(f"config section {name!r} must be a mapping of flags")
    return dict(value)


def _chosen_stages(config: dict) -> list[Stage]:
    names = config.get("stages") or list(STAGES)
    if isinstance(names, str):
        names = [s.strip() for s in names.split(",") if s.strip()]
    unknown = [s for s in names if s not in STAGES]
    if unknown:
        raise UserError(f"unknown stage(s) {', '.join(map(str, unknown))}; stages are {', '.join(STAGES)}")
    return [s for s in built_stages() if s.name in names]


def _config_key(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def check_keys(config: dict) -> None:
    """Refuse a config key that is no flag of its stage: one line, naming the nearest known key.

    A stage whose options class declares no ``option()`` fields has nothing to check against: its
    keys reach the stage's own argument parser unchecked.
    """
    for record in built_stages():
        section = config.get(record.name)
        if not isinstance(section, dict) or not section:
            continue
        options = load(record.job.options)
        if not dataclasses.is_dataclass(options) or not flag_names(options):
            continue
        keys = {_config_key(flag) for flag in flag_names(options)} | ({record.given} if record.given else set())
        for key in section:
            if str(key).replace("-", "_") not in keys:
                nearest = difflib.get_close_matches(str(key), sorted(keys), n=1)
                hint = f"did you mean {nearest[0]!r}?" if nearest else f"known keys: {', '.join(sorted(keys))}"
                raise UserError(f"config section {record.name!r}: unknown key {key!r}; {hint}")


def _negatable(record: Stage) -> frozenset[str]:
    options = load(record.job.options)
    return negatable_names(options) if dataclasses.is_dataclass(options) else frozenset()


def _input_key(wanted: Input) -> str:
    """The config key that gives an input itself (``--checkpoint`` -> ``checkpoint``)."""
    return _config_key(wanted.flag)


def _missing_inputs(record: Stage, section: dict, paths: dict[tuple[str, str], str]) -> list[str]:
    """The input flags of ``record`` that neither its config section gives nor an earlier stage offers."""
    return [i.flag for i in record.inputs if _input_key(i) not in section and (i.stage, i.output) not in paths]


def _output_paths(config: dict, root: str) -> dict[tuple[str, str], str]:
    """``(stage, output name) -> path`` of every output a built stage offers (a given one as given).

    A stage reading something no built stage makes (``embed``'s ``--checkpoint``: `wit build` does not
    train) offers its outputs only when its section gives that input, and so on down the chain."""
    paths: dict[tuple[str, str], str] = {}
    for record in built_stages():
        section = _section(config, record.name)
        supplied = section.get(record.given) if record.given else None
        if not supplied and _missing_inputs(record, section, paths):
            continue
        folder = fileio.join(root, record.folder)
        for name, relative in record.outputs.items():
            paths[record.name, name] = supplied or (fileio.join(folder, relative) if relative else folder)
    return paths


def left_out(config: dict) -> dict[str, list[str]]:
    """The stages the config leaves out because it does not give what they read: stage -> missing flags.

    Naming such a stage in ``stages`` is a mistake (``plan`` refuses it); otherwise it is an optional stage
    that runs once its section gives its inputs (``embed: {checkpoint: RUN_DIR}``)."""
    outputs = _output_paths(config, str(config.get("output") or "."))
    missing = {}
    for record in _chosen_stages(config):
        section = _section(config, record.name)
        if not (record.given and record.given in section) and _missing_inputs(record, section, outputs):
            missing[record.name] = _missing_inputs(record, section, outputs)
    return missing


def _needs_inputs(name: str, flags_: list[str]) -> str:
    keys = ", ".join(f"{_config_key(flag)}: PATH" for flag in flags_)
    return (f"stage {name!r} needs {', '.join(flags_)}, which no stage this config runs writes: give it in its "
            f"config section ({name}: {{{keys}}})")


def _input_words(record: Stage, options: dict, outputs: dict[tuple[str, str], str]) -> list[str]:
    """One flag and path per input: the section's own value (taken out of ``options``) or the upstream output."""
    words = []
    for wanted in record.inputs:
        given = options.pop(_input_key(wanted), None)
        words += [wanted.flag, str(given) if given is not None else outputs[wanted.stage, wanted.output]]
    return words


def plan(config: dict, beam_args: list[str]) -> list[StagePlan]:
    """The command line of every stage to run, in chain order, each reading its inputs' outputs.

    A stage's line is its command, one flag per input (the section's own value for it, else an earlier
    stage's output), its config section as flags (``seed`` first where the stage takes one), ``--out``
    and the Beam options. A stage ``left_out`` is skipped, or refused when ``stages`` names it.
    """
    root = config.get("output")
    if not root:
        raise UserError("the config needs an 'output' root (local path, gs:// or s3://)")
    stages = _chosen_stages(config)
    check_keys(config)
    passthrough = beam_flags(config.get("beam")) + list(beam_args)
    outputs = _output_paths(config, root)
    missing = left_out(config)
    if config.get("stages") and missing:
        raise UserError(_needs_inputs(*next(iter(missing.items()))))
    plans: list[StagePlan] = []
    for record in stages:
        options = _section(config, record.name)
        if record.given and record.given in options:
            continue  # an existing output was given: nothing to build
        if record.name in missing:
            continue  # an optional stage whose section does not give its inputs
        inputs = _input_words(record, options, outputs)
        if record.seeded:
            options = {"seed": str(config.get("seed", 0)), **options}
        out = fileio.join(root, record.folder)
        argv = [*record.job.command, *inputs, *flags(options, _negatable(record)), "--out", out, *passthrough]
        plans.append(StagePlan(record.name, argv, out))
    for step in plans:
        check_stage_line(step)
    return plans


def check_stage_line(step: StagePlan) -> None:
    """Parse a planned stage's command line as that stage will, so a bad value (``image_size: -1``) or an
    unknown Beam option fails before the first stage runs, in one line naming the config section."""
    from .beam import pipeline_options
    from .cli import build_parser  # cli imports every command module, this one included: import it when used

    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            args, extra = build_parser().parse_known_args(step.argv)
    except SystemExit:
        errors = [line for line in captured.getvalue().splitlines() if ": error: " in line]
        message = errors[-1].split(": error: ", 1)[1] if errors else captured.getvalue().strip()
        raise UserError(f"config section {step.stage!r}: {message}") from None
    extra = [arg for arg in extra if arg != "--"]
    if extra and not getattr(args, "beam", False):
        raise UserError(f"config section {step.stage!r}: unrecognized arguments: {' '.join(extra)}")
    try:
        pipeline_options(extra)
    except UserError as exc:
        raise UserError(f"beam options: {exc}") from None


def run_build(config: dict, beam_args: list[str] | None = None) -> list[StagePlan]:
    """Run the planned stages one after another through the same entry point as the CLI."""
    from .cli import main  # cli imports every command module, this one included: import it when used

    plans = plan(config, list(beam_args or []))
    for step in plans:
        log.info("wit build: %s", " ".join(step.argv))
        print(f"wit build: running {step.stage}: wit {' '.join(step.argv)}", flush=True)
        status = main(step.argv)
        if status != 0:
            raise UserError(f"stage {step.stage!r} failed (exit {status}); fix it and re-run with "
                            f"--stages {','.join(p.stage for p in plans[plans.index(step):])}")
    return plans


def _cmd_build(args: argparse.Namespace) -> int:
    config = apply_overrides(load_config(args.config), args.set or [])
    if args.out:
        config["output"] = args.out
    if args.seed is not None:
        config["seed"] = args.seed
    if args.stages:
        config["stages"] = args.stages
    if args.dry_run:
        for step in plan(config, args.beam_args):
            print(f"{step.stage}: wit {' '.join(step.argv)}")
        _note_left_out(config)
        return 0
    plans = run_build(config, args.beam_args)
    _note_left_out(config)
    print(f"wit build: done; outputs under {config['output']}: "
          + ", ".join(f"{p.stage} -> {p.out}" for p in plans))
    return 0


def _note_left_out(config: dict) -> None:
    """Say which optional stages did not run and what their sections would need (stderr: not a plan line)."""
    missing = left_out(config)
    if missing:
        needs = "; ".join(f"{name} needs {', '.join(flags_)}" for name, flags_ in missing.items())
        print(f"wit build: not run: {', '.join(missing)} ({needs}: give it in the stage's config section)",
              file=sys.stderr, flush=True)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "build", help=f"run the whole chain ({', '.join(STAGES)}) from one config file",
        description=f"Run {' -> '.join(STAGES)} as Beam jobs, with every stage's "
        "options in one YAML or TOML file (sections named after the stages, keys are their flags). "
        "Flags here override the file; trailing Beam pipeline options reach every stage.")
    parser.add_argument("--config", required=True, help="YAML or TOML config file (local or remote)")
    parser.add_argument("--out", help="output root (overrides the config's 'output')")
    parser.add_argument("--seed", type=int, help="seed (overrides the config's 'seed')")
    parser.add_argument("--stages", help=f"comma-separated subset of {','.join(STAGES)}, e.g. to re-run one")
    parser.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                        help="override one config value, e.g. --set download.image_size=224 (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="print each stage's command line and stop")
    parser.set_defaults(func=_cmd_build, beam=True)
