"""``wit select``: match candidate texts against the query list and cap the pairs kept per query.

- ``queries_io.py``: reading a query list (a queries directory or a text file).
- ``matching.py``: Aho–Corasick matching over canonical text, word or substring (pure).
- ``balancing.py``: the per-query cap, deterministic top-``cap`` or MetaCLIP's probabilistic rule.
- ``plot.py``: the matched-vs-selected head/tail plot and the HTML summary.
- ``pipeline.py``: the Beam job; ``cli.py``: the command.
"""
