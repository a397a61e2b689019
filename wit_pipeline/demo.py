"""``wit demo``: every stage, end to end, on the built-in sample web served on loopback.

The demo is a list of steps (``DEMO_STEPS``): the sample web's own, then the ``demo`` step of
every record in ``wit_pipeline.stages``, in chain order. Each step (``pkg/demo.py::demo_step``)
is a function taking the shared ``DemoContext``: it runs one stage through its library function
(the same one its CLI command wraps), stores what later steps need in ``ctx.outputs``, and adds
lines to the summary with ``ctx.report``.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections import Counter
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

import pyarrow.parquet as pq

from .beam import pipeline_options
from .errors import UserError
from .sampleweb import SampleFiles, SampleWebServer, serve_sample_web
from .sampleweb.draw import COLOURS, SHAPES
from .stages import STAGES, load

log = logging.getLogger(__name__)


@dataclass
class DemoContext:
    out: str                      # the demo's output root; each step writes under its own sub-folder
    seed: int
    web: SampleWebServer          # the running sample web (web.base_url)
    files: SampleFiles            # the sample web's files on disk (WAT/WARC, dumps, eval set, ...)
    beam_args: list[str]          # Beam pipeline options passed through to every Beam stage
    outputs: dict[str, str] = field(default_factory=dict)   # step outputs later steps read (name -> path)
    summary: list[tuple[str, str, str]] = field(default_factory=list)  # (step, what, value)

    def path(self, *parts: str) -> str:
        return os.path.join(self.out, *parts)

    def report(self, step: str, what: str, value) -> None:
        self.summary.append((step, what, str(value)))


DemoStep = Callable[[DemoContext], None]


def demo_queries(ctx) -> str:
    """The queries the demo matches: the queries step's output, or a list from the sample web's vocabulary."""
    if ctx.outputs.get("queries"):
        return ctx.outputs["queries"]
    path = ctx.path("select", "sample_queries.txt")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    words = list(SHAPES) + list(COLOURS) + [f"{c} {s}" for c in COLOURS for s in SHAPES]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(words) + "\n")
    ctx.outputs["queries"] = path
    ctx.report("select", "queries", f"no queries step output: {len(words)} queries from the sample vocabulary")
    return path


def counts_per_language(path: str) -> str:
    """``en 120, de 9, ...``: the rows per ``lang`` of a parquet file or directory, most first."""
    counts = Counter(pq.read_table(path, columns=["lang"]).column("lang").to_pylist())
    return ", ".join(f"{lang} {n}" for lang, n in sorted(counts.items(), key=lambda c: (-c[1], str(c[0]))))


def step_sample_web(ctx: DemoContext) -> None:
    site = ctx.web.site
    ctx.report("sample web", "served at", ctx.web.base_url)
    ctx.report("sample web", "pages / images", f"{len(site.pages)} / {len(site.images)}")
    ctx.report("sample web", "files", ctx.files.root)


# Steps in the order they run: the sample web's summary, then every stage with a demo step, in
# chain order (``wit_pipeline.stages``). A stage's step is a "module:function" reference, imported
# when the demo runs, so `wit --help` does not import the trainer.
DEMO_STEPS: list[tuple[str, DemoStep | str]] = [
    ("sample web", step_sample_web),
    *((record.name, record.demo) for record in STAGES if record.demo),
]


def resolve_step(step: DemoStep | str) -> DemoStep:
    return load(step) if isinstance(step, str) else step


def demo_steps() -> list[tuple[str, DemoStep]]:
    """``DEMO_STEPS`` with every reference imported."""
    return [(name, resolve_step(step)) for name, step in DEMO_STEPS]


@dataclass
class DemoResult:
    out: str
    summary: list[tuple[str, str, str]]
    seconds: float


# Page and image URLs contain the server's port, and every seeded choice downstream (the per-query
# cap's ranks, the shard order) depends on the URLs: a fixed port makes two demos of one seed agree.
DEMO_PORT = 8642


@contextmanager
def _serve_for_demo(seed: int) -> Iterator[SampleWebServer]:
    with ExitStack() as stack:
        try:
            web = stack.enter_context(serve_sample_web(seed=seed, port=DEMO_PORT))
        except OSError:
            log.warning("port %d is busy: serving the sample web on a free port (URLs, and so the "
                        "selection, will differ from a run on port %d)", DEMO_PORT, DEMO_PORT)
            web = stack.enter_context(serve_sample_web(seed=seed))
        yield web


def run_demo(out: str = "wit-demo", seed: int = 0, beam_args: list[str] | None = None) -> DemoResult:
    """Run every demo step on a freshly served sample web; returns the summary rows."""
    started = time.monotonic()
    # The sample is tiny: run its jobs in-process (starting worker processes would cost more than
    # the work) unless the user names a running mode or another runner.
    beam_args = list(beam_args or [])
    if not any(a.startswith(("--direct_running_mode", "--runner")) for a in beam_args):
        beam_args.append("--direct_running_mode=multi_threading")
    pipeline_options(beam_args)  # refuse bad Beam flags before any work is done
    os.makedirs(out, exist_ok=True)
    with _serve_for_demo(seed) as web:
        files = web.write_files(os.path.join(out, "sampleweb"))
        ctx = DemoContext(out=out, seed=seed, web=web, files=files, beam_args=beam_args)
        for name, step in DEMO_STEPS:
            log.info("demo step: %s", name)
            resolve_step(step)(ctx)   # each stage's modules are imported when its step comes
    return DemoResult(out=out, summary=ctx.summary, seconds=time.monotonic() - started)


def format_summary(result: DemoResult) -> str:
    width_step = max((len(s) for s, _, _ in result.summary), default=4)
    width_what = max((len(w) for _, w, _ in result.summary), default=4)
    lines = [f"wit demo: finished in {result.seconds:.1f} s; outputs under {os.path.abspath(result.out)}"]
    for step, what, value in result.summary:
        lines.append(f"  {step:<{width_step}}  {what:<{width_what}}  {value}")
    return "\n".join(lines)


def _cmd_demo(args: argparse.Namespace) -> int:
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UserError(f"--out {args.out!r} exists and is not a directory")
    result = run_demo(args.out, seed=args.seed, beam_args=args.beam_args)
    print(format_summary(result))
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the whole chain on the built-in sample web (loopback only)",
        description="Serve the built-in sample web on 127.0.0.1, then run every stage on it end to end "
        "with the default Beam runner, and print a summary with the output paths.",
    )
    parser.add_argument("--out", default="wit-demo", help="output directory (default: ./wit-demo)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample web and of every stage (default 0)")
    parser.set_defaults(func=_cmd_demo, beam=True)
