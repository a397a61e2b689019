"""``wit select``: match candidate texts against the query list and cap the pairs kept per query.

- ``matching.py``: Aho–Corasick matching over canonical text, word or substring (pure); ``QueryIndex``: one
  automaton per language of the list, its entries numbered.
- ``balancing.py``: the per-query cap, deterministic top-``cap`` (as one rank threshold per query) or MetaCLIP's
  probabilistic rule; the lifted combines over numpy arrays that compute them.
- ``caps.py``: the cap of each language, ``same`` or MetaCLIP 2's tail-share rule (pure).
- ``plot.py``: the matched-vs-selected head/tail plot (a curve and cap per language) and the HTML summary.
- ``pipeline.py``: ``SelectOptions`` (every flag) and the Beam job ``run_select``: ``candidate_batches`` (a
  candidate file by column), ``MatchFileFn`` (compact records of matched rows), ``DecideFn`` (language,
  routing, one pair per uid, as ``Survivors`` batches of numpy columns), ``CapFn`` and ``ReadSelectedFn``
  (kept rows read again from their files).
- ``cli.py``: the command; ``demo.py``: the ``wit demo`` step.

The query list is read by ``wit_pipeline/querylist.py`` (shared with the search source).
"""
