"""``wit download``: selected (url, text) pairs -> WebDataset shards with per-shard status and a manifest.

One file per role (img2dataset's layout, with Beam where its distributor was):
``reader`` (streaming input, shard assignment), ``fetch`` (the guarded HTTP
session), ``images`` (decode and checks), ``resize`` (resize modes, JPEG),
``writer`` (tar, status parquet, manifest), ``downloader`` (one shard),
``pipeline`` (plan, Beam wiring, duplicates, manifest and stats),
``cli`` / ``shards_cli`` (the ``wit download`` and ``wit shards`` commands),
``shards`` (reading and checking a shard directory).
"""

from .pipeline import DownloadOptions, DownloadResult, download

__all__ = ["DownloadOptions", "DownloadResult", "download"]
