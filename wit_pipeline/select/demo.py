"""The demo's select step, and the query list the demo's candidates and select steps share."""

from __future__ import annotations

import os

from ..sampleweb.draw import COLOURS, SHAPES
from .pipeline import SelectOptions, run_select

DEMO_CAP = 40   # the sample web is small: a cap this low shows the balancing at work on its head queries


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


def demo_step(ctx) -> None:
    """Select from every candidate directory against the query list, cap DEMO_CAP per query."""
    stats = run_select(SelectOptions(candidates=[ctx.outputs["candidates"]], queries=demo_queries(ctx),
                                     out=ctx.path("select"), cap=DEMO_CAP, seed=ctx.seed), ctx.beam_args)
    ctx.outputs["selected"] = stats["outputs"]["selected"]
    d = stats["dropped"]
    ctx.report("select", "candidates / matched / selected",
               f"{stats['in']} / {stats['matched']} / {stats['out']} "
               f"(no match {d['no_match']}, language {d['lang']}, duplicate {d['duplicate']}, cap {d['cap']})")
    ctx.report("select", "queries matched / capped",
               f"{stats['queries_matched']} / {stats['queries_capped']} of {stats['queries_total']} (cap {DEMO_CAP})")
    ctx.report("select", "langdetect calls", f"{stats['lang_detect_calls']} (distinct matched texts)")
    ctx.report("select", "summary", os.path.abspath(stats["outputs"]["summary"]))
