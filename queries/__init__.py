"""The query list: Wikipedia words, high-PMI bigrams, popular article titles and WordNet lemmas.

Build it with ``wit queries build`` (``queries.pipeline.run_queries(QueryOptions(...))``); later
stages read it with ``load_queries(path)``, which takes a queries DIR, a ``queries.parquet`` or a
plain text file with one query per line.

One build may hold several languages (``--wikipedia LANG=PATH``); each row carries its ``lang``.

Modules, by role: ``wikidump`` (reading dumps in byte ranges), ``wikitext`` (markup -> prose),
``namespaces`` (each wiki's names of the File/Media/Category namespaces), ``pageviews``,
``wordnet`` (wndb and Open Multilingual Wordnet files), ``languages`` (``LANG=PATH`` values,
per-language thresholds, language-keyed counts), ``counting`` (pure counting/selection
rules, PMI; words per language through ``wit_pipeline.segment``),
``transforms`` (the graph's named Beam steps and their counters), ``pipeline`` (``QueryOptions``,
the graph, ``run_queries``), ``output`` (files on disk, loader), ``cli`` (``wit queries``),
``demo`` (``wit demo``'s step).
"""

from .output import load_queries

__all__ = ["load_queries"]
