"""The stage chain, listed once: ``wit --help``, ``wit build`` and ``wit demo`` all read ``STAGES``.

Each ``Stage`` record names, in chain order:

- the module whose ``register(subparsers)`` adds its ``wit`` command (``cli``);
- the jobs it runs (``jobs``: the command line words, the ``run_x`` entry point and the options
  class, as ``"module:attr"`` strings imported only when used, so ``wit --help`` stays light);
- its output folder under a build or demo root (``folder``) and the outputs later stages read
  (``outputs``: name -> path inside that folder);
- what it reads from earlier stages (``inputs``: the flag that takes an upstream output);
- whether ``wit build`` runs it (``built``) and its ``wit demo`` step (``demo``).

Adding a stage is one record here (plus its package); ``COMMANDS`` lists the commands that are not
stages of the chain.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Job:
    """One command of a stage that writes output: ``wit COMMAND...`` runs ``run(options, beam_args)``."""

    name: str                     # the stage name its stats.json carries
    command: tuple[str, ...]      # the `wit` words that run it, e.g. ("queries", "build")
    run: str                      # "module:function"
    options: str                  # "module:OptionsClass"


@dataclass(frozen=True)
class Input:
    """An upstream output a stage reads: ``flag`` takes ``stage``'s output named ``output``."""

    flag: str
    stage: str
    output: str


@dataclass(frozen=True)
class Stage:
    name: str
    cli: str                                          # module with register(subparsers)
    jobs: tuple[Job, ...] = ()
    folder: str | None = None                         # output folder under a build/demo root
    outputs: dict[str, str] = field(default_factory=dict)   # name -> path inside the folder ("" = the folder)
    inputs: tuple[Input, ...] = ()
    built: bool = False                               # `wit build` runs its first job
    seeded: bool = False                              # `wit build` passes its seed as --seed
    given: str | None = None    # config key naming an existing output instead of building it
    demo: str | None = None                           # "module:demo_step" for `wit demo`

    @property
    def job(self) -> Job:
        """The job ``wit build`` runs (the first)."""
        return self.jobs[0]


@dataclass(frozen=True)
class Command:
    """A ``wit`` command outside the chain."""

    name: str
    cli: str


STAGES: tuple[Stage, ...] = (
    Stage(
        "queries", cli="queries.cli",
        jobs=(Job("queries", ("queries", "build"), "queries.pipeline:run_queries", "queries.pipeline:QueryOptions"),),
        folder="queries", outputs={"queries": ""},
        built=True, given="path", demo="queries.demo:demo_step"),
    Stage(
        "candidates", cli="wit_pipeline.candidates.cli",
        jobs=(Job("candidates", ("candidates",), "wit_pipeline.candidates.pipeline:run_candidates",
                  "wit_pipeline.candidates.pipeline:CandidateOptions"),),
        folder="candidates", outputs={"pairs": ""},
        built=True, demo="wit_pipeline.candidates.demo:demo_step"),
    Stage(
        "select", cli="wit_pipeline.select.cli",
        jobs=(Job("select", ("select",), "wit_pipeline.select.pipeline:run_select",
                  "wit_pipeline.select.pipeline:SelectOptions"),),
        folder="select", outputs={"selected": "selected"},
        inputs=(Input("--candidates", "candidates", "pairs"), Input("--queries", "queries", "queries")),
        built=True, seeded=True, demo="wit_pipeline.select.demo:demo_step"),
    Stage(
        "download", cli="wit_pipeline.download.cli",
        jobs=(Job("download", ("download",), "wit_pipeline.download.pipeline:run_download",
                  "wit_pipeline.download.pipeline:DownloadOptions"),),
        folder="shards", outputs={"shards": ""},
        inputs=(Input("--input", "select", "selected"),),
        built=True, demo="wit_pipeline.download.demo:demo_step"),
    Stage("shards", cli="wit_pipeline.download.shards_cli"),
    Stage(
        "train", cli="trainer.cli",
        jobs=(Job("train", ("train",), "trainer.train:run_train", "trainer.options:TrainOptions"),),
        folder="train", outputs={"run": ""},
        inputs=(Input("--shards", "download", "shards"),),
        demo="trainer.demo:demo_step"),
    Stage(
        "overlap", cli="dedup.cli",
        jobs=(Job("overlap", ("overlap", "scan"), "dedup.scan:run_overlap_scan", "dedup.scan:OverlapScanOptions"),
              Job("overlap_filter", ("overlap", "filter"), "dedup.filter:run_overlap_filter",
                  "dedup.filter:OverlapFilterOptions")),
        folder="overlap", outputs={"report": ""},
        inputs=(Input("--shards", "download", "shards"),),
        demo="dedup.demo:demo_step"),
    Stage(
        "embed", cli="wit_pipeline.embed.cli",
        jobs=(Job("embed", ("embed",), "wit_pipeline.embed.pipeline:run_embed",
                  "wit_pipeline.embed.pipeline:EmbedOptions"),),
        folder="embed", outputs={"embeddings": ""},
        inputs=(Input("--shards", "download", "shards"), Input("--checkpoint", "train", "run")),
        built=True, demo="wit_pipeline.embed.demo:demo_step"),
    Stage(
        "filter", cli="wit_pipeline.filter.cli",
        jobs=(Job("filter", ("filter",), "wit_pipeline.filter.pipeline:run_filter",
                  "wit_pipeline.filter.pipeline:FilterOptions"),),
        folder="filter", outputs={"shards": ""},
        inputs=(Input("--shards", "download", "shards"), Input("--embeddings", "embed", "embeddings")),
        built=True, seeded=True, demo="wit_pipeline.filter.demo:demo_step"),
)

COMMANDS: tuple[Command, ...] = (
    Command("build", "wit_pipeline.build"),
    Command("demo", "wit_pipeline.demo"),
    Command("sampleweb", "wit_pipeline.sampleweb.cli"),
)


def load(reference: str) -> Any:
    """The object a ``"module:attr"`` reference names (imports the module)."""
    module, _, attr = reference.partition(":")
    return getattr(importlib.import_module(module), attr)


def stage(name: str) -> Stage:
    for record in STAGES:
        if record.name == name:
            return record
    raise KeyError(name)


def built_stages() -> tuple[Stage, ...]:
    """The stages ``wit build`` runs, in chain order."""
    return tuple(s for s in STAGES if s.built)


def cli_modules() -> list[str]:
    """Every command module, in the order ``wit --help`` lists them: the chain, then the other commands."""
    return [s.cli for s in STAGES] + [c.cli for c in COMMANDS]
