"""``wit demo``'s download step: the selected pairs (or the sample web's URL table) from the loopback sample web,
then a consent check: the sample web's opt-out faults (``sampleweb.faults.SIGNAL_FAULTS``) downloaded on their
own, so the summary shows each signal refusing its image.

The summary gives the failures apart from the refusals, and for both runs the rows each opt-out signal and the
blocklist refused, every one named (zeros too: the reader sees which signals were checked)."""

from __future__ import annotations

import os

import pyarrow.parquet as pq

from ..sampleweb.faults import SIGNAL_FAULTS
from ..schemas import REFUSAL_REASONS
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
    failures = {k: v for k, v in stats["dropped"].items() if k not in REFUSAL_REASONS}
    ctx.report("download", "failures", ", ".join(f"{k} {v}" for k, v in sorted(failures.items())) or "none")
    ctx.report("download", "opt-outs", opt_out_summary(stats["dropped"]))
    ctx.report("download", "shards", out)
    ctx.report("download", "contact sheet", sheet)
    _consent_check(ctx)


def _consent_check(ctx) -> None:
    """Download only the sample web's opt-out faults (into ``consent/``) and report what each signal refused."""
    table = pq.read_table(ctx.files.urls_table)
    kinds = table.column("kind").to_pylist()
    faults = table.take([i for i, kind in enumerate(kinds) if kind in SIGNAL_FAULTS])
    os.makedirs(ctx.path("consent"), exist_ok=True)
    source = ctx.path("consent", "signal_faults.parquet")
    pq.write_table(faults, source)
    options = DownloadOptions(input=source, out=ctx.path("consent", "shards"), processes=1, threads=16, timeout=5.0,
                              retries=1, allow_private_networks=True)
    stats = run_download(options, beam_args=ctx.beam_args)
    ctx.report("download", "consent check", f"{stats['in']} opt-out fault images of the sample web, "
               f"{stats['out']} kept; refused: {opt_out_summary(stats['dropped'])}")


def opt_out_summary(dropped: dict[str, int]) -> str:
    """``robots 0, noai 0, ..., blocklisted 0``: each refusal reason's count, short names."""
    return ", ".join(f"{reason.removeprefix('opt_out_')} {dropped.get(reason, 0)}" for reason in REFUSAL_REASONS)
