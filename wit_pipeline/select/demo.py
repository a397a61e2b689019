"""The demo's select step: every language of the sample web, each text against its own language's queries."""

from __future__ import annotations

import os

from ..demo import counts_per_language, demo_queries
from .pipeline import SelectOptions, run_select

DEMO_CAP = 40   # the sample web is small: a cap this low shows the balancing at work on its head queries


def demo_step(ctx) -> None:
    """Select from every candidate directory against the query list (``--lang all``), cap DEMO_CAP per query."""
    stats = run_select(SelectOptions(candidates=[ctx.outputs["candidates"]], queries=demo_queries(ctx),
                                     out=ctx.path("select"), cap=DEMO_CAP, seed=ctx.seed, lang="all"),
                       ctx.beam_args)
    ctx.outputs["selected"] = stats["outputs"]["selected"]
    d = stats["dropped"]
    ctx.report("select", "candidates / matched / selected",
               f"{stats['in']} / {stats['matched']} / {stats['out']} "
               f"(no match {d['no_match']}, language {d['lang']}, duplicate {d['duplicate']}, cap {d['cap']})")
    ctx.report("select", "queries matched / capped",
               f"{stats['queries_matched']} / {stats['queries_capped']} of {stats['queries_total']} (cap {DEMO_CAP})")
    ctx.report("select", "selected per language", counts_per_language(stats["outputs"]["selected"]))
    ctx.report("select", "langdetect calls", f"{stats['lang_detect_calls']} (distinct matched texts)")
    ctx.report("select", "summary", os.path.abspath(stats["outputs"]["summary"]))
