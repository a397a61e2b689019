"""``wit filter``: curation by model scores and in-set duplicates (issue #15).

- ``pipeline.py``: ``FilterOptions`` and ``run_filter`` (the Beam job, its output format);
- ``rules.py``: the rules as pure functions (CLIP-score threshold, exact/near duplicates, k-means,
  SemDeDup, eval clusters) and their order (``REASONS``);
- ``embeddings.py``: reading ``wit embed``'s embeddings folder;
- ``report.py``: ``filter.html``, the samples just above and below each threshold;
- ``cli.py``: the command.
"""
