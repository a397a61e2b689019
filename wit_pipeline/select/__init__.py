"""``wit select``: match candidate texts against the query list and cap the pairs kept per query.

- ``matching.py``: Aho–Corasick matching over canonical text, word or substring (pure).
- ``balancing.py``: the per-query cap ``CapPerQuery``, deterministic top-``cap`` or MetaCLIP's probabilistic rule.
- ``plot.py``: the matched-vs-selected head/tail plot and the HTML summary.
- ``pipeline.py``: ``SelectOptions`` (every flag) and the Beam job ``run_select``, built from
  ``ReadCandidates``, ``MatchQueries``, ``OnePerPair``, ``CapPerQuery``, ``KeepSelected`` and ``CountPerQuery``.
- ``cli.py``: the command; ``demo.py``: the ``wit demo`` step.

The query list is read by ``wit_pipeline/querylist.py`` (shared with the search source).
"""
