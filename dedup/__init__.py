"""The ``wit overlap`` command: eval-set overlap analysis (not pair de-duplication, which is candidates' ``dedup``
filter, nor ``wit download --drop-duplicates``). It finds near-duplicates of eval examples in the training shards,
as in the CLIP paper's overlap analysis.

- ``signatures``: an image as a set of region hashes at three scales, a text as a set of character n-grams.
- ``index``: datasketch MinHash and MinHashLSH banding over the eval sets (buckets as sorted arrays), with exact
  verification of candidates.
- ``evalsets``: ImageFolder, WebDataset-tar and CSV/JSONL eval sets; listing the training shards.
- ``scan``: ``OverlapScanOptions`` and ``run_overlap_scan``, the Beam job over training shards (``wit overlap scan``,
  stage ``overlap``).
- ``report``: overlap.json / overlap.md / overlap.html / overlap.png.
- ``filter``: shards without the flagged samples (``wit overlap filter``, stage ``overlap_filter``).
- ``accuracy``: All / Clean / Overlap accuracy, Clopper-Pearson intervals, binomial tests (``wit overlap accuracy``).
- ``cli``: the ``wit overlap`` subcommands; ``demo``: ``wit demo``'s overlap step.
"""
