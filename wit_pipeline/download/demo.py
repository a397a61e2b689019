"""``wit demo``'s download step: the selected pairs (or the sample web's URL table) from the loopback sample web."""

from __future__ import annotations

import os

from .pipeline import DownloadOptions, run_download
from .shards import write_contact_sheet


def demo_step(ctx) -> None:
    source = ctx.outputs.get("selected") or ctx.files.urls_table
    out = ctx.path("shards")
    # A short timeout and no retries keep the sample web's slow fault page from dominating the demo.
    options = DownloadOptions(input=source, out=out, samples_per_shard=64, processes=1, threads=16, timeout=1.0,
                              retries=1, allow_private_networks=True)
    stats = run_download(options, beam_args=ctx.beam_args)
    ctx.outputs["shards"] = out
    sheet = write_contact_sheet(out, os.path.join(out, "report", "contact_sheet.html"), n=100)
    ctx.report("download", "samples / rows", f"{stats['out']} / {stats['in']} in {stats['shards']} shards")
    failures = stats["dropped"]
    ctx.report("download", "failures", ", ".join(f"{k} {v}" for k, v in sorted(failures.items())) or "none")
    ctx.report("download", "shards", out)
    ctx.report("download", "contact sheet", sheet)
