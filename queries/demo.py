"""``wit demo``'s query step: one query list from the sample web's mini dumps (English, German, Chinese,
Japanese), pageviews and WordNet."""

from __future__ import annotations

import os

from wit_pipeline.demo import counts_per_language
from wit_pipeline.errors import UserError

from .pipeline import QueryOptions, run_queries

# Thresholds for the sample web's mini dump (~5k words): the full-Wikipedia defaults would admit nothing.
DEMO_THRESHOLDS = {"min_count": 5, "min_pmi": 6.0, "min_bigram_count": 3, "min_views": 50}


def demo_step(ctx) -> None:
    """Build the query list into DEMO/queries from every language's dump (``--wikipedia LANG=PATH``); report
    its entries per source and per language, and the pages counted."""
    files = ctx.files
    if not getattr(files, "wikipedia", None):
        raise UserError("the sample web wrote no Wikipedia dump (SampleFiles.wikipedia is empty)")
    out = ctx.path("queries")
    dumps = getattr(files, "wikipedia_by_lang", None) or {"en": files.wikipedia[0]}
    options = QueryOptions(wikipedia=[f"{lang}={path}" for lang, path in dumps.items()],
                           pageviews=list(files.pageviews or []),
                           wordnet=files.wordnet or None, out=out, **DEMO_THRESHOLDS)
    stats = run_queries(options, beam_args=ctx.beam_args)
    ctx.outputs["queries"] = out
    ctx.report("queries", "entries", f"{stats['out']:,} ("
               + ", ".join(f"{k} {v}" for k, v in stats["by_source"].items()) + ")")
    ctx.report("queries", "per language", counts_per_language(os.path.join(out, "queries.parquet")))
    inputs = stats["inputs"]
    ctx.report("queries", "pages counted / read", f"{inputs['pages_counted']} / {inputs['pages_read']}")
    ctx.report("queries", "output", os.path.join(out, "queries.parquet"))
