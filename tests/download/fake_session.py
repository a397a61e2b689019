"""A session that serves fixed bodies, for per-row download tests without a network."""

from __future__ import annotations

import io
import os

import pyarrow.parquet as pq
from PIL import Image

from wit_pipeline.download.downloader import process_shard
from wit_pipeline.download.pipeline import DownloadOptions
from wit_pipeline.download.reader import InputRow
from wit_pipeline.http import FetchResult
from wit_pipeline.shardset import iter_tar_samples


class FakeSession:
    """``fetch(url)`` answers 200 with ``bodies[url]``, 404 for any other URL (robots.txt, ai.txt ...: none)."""

    def __init__(self, bodies: dict[str, bytes]):
        self.bodies = bodies

    def fetch(self, url: str, **_options) -> FetchResult:
        if url not in self.bodies:
            return FetchResult(url, url, 404, {}, None, "http_404", "not found")
        return FetchResult(url, url, 200, {}, self.bodies[url])


def config(**options):
    """A ``DownloadConfig`` from ``DownloadOptions`` flags (small images allowed, one thread)."""
    options = {"input": "unused", "out": "unused", "min_image_size": 10, "image_size": 64, "threads": 1, **options}
    return DownloadOptions(**options).config()


def jpeg(image: Image.Image, **save) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **save)
    return buffer.getvalue()


def run_shard(tmp_path, bodies: dict[str, bytes], rows: list[InputRow] | None = None, **options):
    """One shard of ``rows`` (default: one per body) -> (status rows by url, tar members by key, output dir)."""
    rows = rows or [InputRow(url=url, text=f"caption {i}", extra={}) for i, url in enumerate(bodies)]
    out = str(tmp_path / "out")
    os.makedirs(out, exist_ok=True)
    process_shard(out, 0, rows, config(**options), FakeSession(bodies))
    status = {row["url"]: row for row in pq.read_table(os.path.join(out, "00000.parquet")).to_pylist()}
    members = dict(iter_tar_samples(os.path.join(out, "00000.tar")))
    return status, members, out
