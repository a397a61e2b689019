"""``wit embed``: image and text embeddings of a shard set, for curation by model (``wit filter``).

- ``options.py``: ``EmbedOptions`` (the flags; no torch, so ``wit --help`` stays light).
- ``models.py``: the model, found on the driver (``describe_model``: a ``wit train`` checkpoint or an
  OpenCLIP model from a local file) and run on the workers (``load_embedder``: prepare, tokenize, encode).
- ``parts.py``: the embeddings folder (clip-retrieval's layout), one atomic part per shard, ``embed.json``.
- ``pipeline.py``: ``run_embed`` and the Beam job (one shard per element, loader threads, batches).
- ``cli.py``: the ``wit embed`` command.
"""
