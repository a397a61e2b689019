"""``wit demo``'s query step: the query list from the sample web's mini dump, pageviews and WordNet."""

from __future__ import annotations

import os

from wit_pipeline.errors import UserError

from .pipeline import QueryOptions, run_queries

# Thresholds for the sample web's mini dump (~5k words): the full-Wikipedia defaults would admit nothing.
DEMO_THRESHOLDS = {"min_count": 5, "min_pmi": 6.0, "min_bigram_count": 3, "min_views": 50}


def demo_step(ctx) -> None:
    """Build the query list into DEMO/queries; report its entries per source and the pages counted."""
    files = ctx.files
    if not getattr(files, "wikipedia", None):
        raise UserError("the sample web wrote no Wikipedia dump (SampleFiles.wikipedia is empty)")
    out = ctx.path("queries")
    options = QueryOptions(wikipedia=list(files.wikipedia), pageviews=list(files.pageviews or []),
                           wordnet=files.wordnet or None, out=out, **DEMO_THRESHOLDS)
    stats = run_queries(options, beam_args=ctx.beam_args)
    ctx.outputs["queries"] = out
    ctx.report("queries", "entries", f"{stats['out']:,} ("
               + ", ".join(f"{k} {v}" for k, v in stats["by_source"].items()) + ")")
    inputs = stats["inputs"]
    ctx.report("queries", "pages counted / read", f"{inputs['pages_counted']} / {inputs['pages_read']}")
    ctx.report("queries", "output", os.path.join(out, "queries.parquet"))
