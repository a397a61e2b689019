"""The demo's candidates step: candidates from the sample web's WAT files and its search endpoint."""

from __future__ import annotations

import os

from ..demo import demo_queries
from .pipeline import CandidateOptions, run_candidates

DAMAGE = ("bad_gzip_member", "truncated_record", "wat_bad_json", "bad_record")


def demo_step(ctx) -> None:
    """Candidates from the sample web's WAT files and from its Openverse-shaped search endpoint.

    The search crawl expands each query of ``ctx.outputs["queries"]`` (from the queries step) into a
    crawl of the loopback endpoint.
    """
    root = ctx.path("candidates")
    wat = run_candidates(CandidateOptions(source="wat", inputs=list(ctx.files.wat) + list(ctx.files.broken_wat),
                                          out=os.path.join(root, "wat"), seed=ctx.seed), ctx.beam_args)
    queries = demo_queries(ctx)
    search = run_candidates(CandidateOptions(
        source="search", inputs=[queries], out=os.path.join(root, "search"), seed=ctx.seed, api="openverse",
        endpoint=ctx.web.base_url + "/v1/images/", per_query_cap=200, rate_per_host=0,
        allow_private_networks=True), ctx.beam_args)
    ctx.outputs["candidates"] = root
    damage = {k: v for k, v in wat["counters"].items() if k in DAMAGE and v}
    ctx.report("candidates", "WAT pairs in / out", f"{wat['in']} / {wat['out']} "
               f"(dropped: {', '.join(f'{k} {v}' for k, v in wat['dropped'].items() if v)})")
    ctx.report("candidates", "WAT damage skipped", ", ".join(f"{k} {v}" for k, v in damage.items()) or "none")
    c = search["counters"]
    ctx.report("candidates", "search crawl", f"{c.get('search_queries', 0)} queries, "
               f"{c.get('search_requests', 0)} requests, {search['out']} pairs kept")
    ctx.report("candidates", "output", root)
