"""The query list: Wikipedia words, high-PMI bigrams, popular article titles and WordNet lemmas.

Build it with ``wit queries build`` (``queries.pipeline.run_queries(QueryOptions(...))``); later
stages read it with ``load_queries(path)``, which takes a queries DIR, a ``queries.parquet`` or a
plain text file with one query per line.

Modules, by role: ``wikidump`` (reading dumps in byte ranges), ``wikitext`` (markup -> prose),
``pageviews``, ``wordnet`` (wndb files), ``counting`` (pure counting/selection rules, PMI),
``transforms`` (the graph's named Beam steps and their counters), ``pipeline`` (``QueryOptions``,
the graph, ``run_queries``), ``output`` (files on disk, loader), ``cli`` (``wit queries``),
``demo`` (``wit demo``'s step).
"""

from .output import load_queries

__all__ = ["load_queries"]
