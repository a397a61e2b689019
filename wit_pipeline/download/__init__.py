"""``wit download``: selected (url, text) pairs -> WebDataset shards with per-shard status and a manifest.

One file per role (img2dataset's layout, with Beam where its distributor was):
``reader`` (streaming input, shard assignment), ``fetch`` (the guarded HTTP
session), ``images`` (decode and checks), ``resize`` (resize modes, JPEG, ``--blur-bbox-col``),
``image_signals`` (opt-outs inside the file: XMP ``plus:DataMining``, C2PA), ``blocklist``
(``--blocklist-hashes``: sha256, md5 and PDQ matches),
``writer`` (a shard's tar and status parquet), ``downloader`` (one shard),
``pipeline`` (``DownloadOptions``, ``run_download``: plan, Beam wiring, duplicates,
manifest and stats), ``cli`` / ``shards_cli`` (the ``wit download`` and ``wit shards``
commands), ``shards`` (reading and checking a shard directory), ``demo`` (its
``wit demo`` step). The tar and manifest format is ``wit_pipeline.shardset``; the
status table's schema and reasons are ``wit_pipeline.schemas`` (``STATUS_SCHEMA``,
``STATUS_REASONS``).
"""
