"""dedup: near-duplicates of eval examples in the training shards, as in the CLIP paper's overlap analysis.

- ``signatures``: an image as a set of region hashes at three scales, a text as a set of character n-grams.
- ``index``: datasketch MinHash and MinHashLSH banding over the eval sets (buckets as sorted arrays), with exact
  verification of candidates.
- ``evalsets``: ImageFolder, WebDataset-tar and CSV/JSONL eval sets; WebDataset shard reading.
- ``scan``: the Beam job over training shards (``wit overlap scan``).
- ``report``: overlap.json / overlap.md / overlap.html / overlap.png.
- ``filter``: shards without the flagged samples (``wit overlap filter``).
- ``accuracy``: All / Clean / Overlap accuracy, Clopper-Pearson intervals, binomial tests (``wit overlap accuracy``).
"""
