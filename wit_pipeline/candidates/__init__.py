"""``wit candidates``: (image URL, text) pairs from WAT, WARC, tables or image-search APIs.

- ``sources/``: the source registry ``SOURCES`` (``__init__.py``, with the Beam steps that read
  files or crawl) and one pure module per source: ``wat.py``, ``warc.py``, ``table.py``, ``search.py``.
- ``warc_records.py``: a fast, fault-tolerant WARC/WAT record reader (gzip member by member).
- ``filters.py``: text clean-up and the per-pair filter registry ``PAIR_FILTERS`` (pure, each
  switchable, each with its drop reason).
- ``pipeline.py``: ``CandidateOptions`` (every flag) and the Beam job ``run_candidates``, built from
  ``ReadSourceBatches``, ``CleanAndFilterBatches`` and ``wit_pipeline.pairs``' ``DedupTables`` /
  ``LanguageAndDedup`` (batches of rows, not rows, as elements).
- ``cli.py``: the command; ``demo.py``: the ``wit demo`` step.
"""
