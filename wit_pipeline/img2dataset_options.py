"""img2dataset's option names and ours: the one table behind the CLI hint and the docs' side-by-side list.

``DOWNLOAD_OPTIONS`` maps each argument of img2dataset's ``download()`` (1.47) to the ``wit download``
flag that does the same, or to ``None`` where there is none, with a short note. ``rows()`` gives the
table for the docs. ``hint(command, args)`` finds the first img2dataset spelling among a command's
unknown arguments (``--image_size 64`` or ``--image_size=64``) and says, in one line, which flag of ours
to use or that there is none; ``wit_pipeline.cli`` prints it before Beam's "unknown option" check, so
an img2dataset command line pointed at ``wit download`` gets our name instead of Beam's refusal.
Names that are spelled the same in both tools (``--timeout``, ``--retries``) are parsed as ours and
never reach the hint. ``wit candidates --source table`` shares the column options (``COMMAND_OPTIONS``).
"""

from __future__ import annotations

from typing import NamedTuple


class Equivalent(NamedTuple):
    flag: str | None    # ours, or None: no equivalent
    note: str           # what differs, or why there is none ("" when nothing does)


DOWNLOAD_OPTIONS: dict[str, Equivalent] = {
    "url_list": Equivalent("--input", "files, directories or globs; local or remote"),
    "image_size": Equivalent("--image-size", ""),
    "output_folder": Equivalent("--out", "always webdataset shards plus per-shard status parquet"),
    "processes_count": Equivalent("--processes", "Beam DirectRunner workers"),
    "resize_mode": Equivalent("--resize-mode", "same modes: no, border, keep_ratio, keep_ratio_largest, "
                              "center_crop"),
    "resize_only_if_bigger": Equivalent(None, "images are always resized to --image-size"),
    "upscale_interpolation": Equivalent(None, "fixed: Lanczos"),
    "downscale_interpolation": Equivalent(None, "fixed: area"),
    "encode_quality": Equivalent("--encode-quality", "JPEG quality"),
    "encode_format": Equivalent(None, "output images are always JPEG"),
    "skip_reencode": Equivalent(None, "every image is decoded, checked and re-encoded"),
    "output_format": Equivalent(None, "the output is always webdataset tars (img2dataset's webdataset)"),
    "input_format": Equivalent(None, "each file's format comes from its name (.parquet, .csv, .tsv, .json, "
                               ".jsonl, .txt, each optionally .gz/.bz2/.zst)"),
    "url_col": Equivalent("--url-col", "default url, else URL"),
    "caption_col": Equivalent("--caption-col", "default text, else caption, else TEXT"),
    "bbox_col": Equivalent("--blur-bbox-col", "same boxes and blur; a cell that is not a box list is bad_bbox"),
    "thread_count": Equivalent("--threads", "per process"),
    "number_sample_per_shard": Equivalent("--samples-per-shard", "input rows per shard"),
    "extract_exif": Equivalent("--save-exif", "on by default, as in img2dataset"),
    "save_additional_columns": Equivalent("--drop-columns", "every other input column is kept by default; "
                                          "--drop-columns leaves some out"),
    "timeout": Equivalent("--timeout", "seconds, connect and read"),
    "enable_wandb": Equivalent(None, "no Weights & Biases logging: progress on stderr, totals in stats.json"),
    "wandb_project": Equivalent(None, "no Weights & Biases logging"),
    "oom_shard_count": Equivalent(None, "shard names have 5 digits, more when needed"),
    "compute_hash": Equivalent(None, "the sha256 of every image is always recorded"),
    "verify_hash": Equivalent("--verify-hash", "COL[,ALGO]: sha256 (default) or md5"),
    "distributor": Equivalent(None, "Beam runs the job: pass Beam's --runner (DirectRunner, Flink, Spark, "
                              "Dataflow)"),
    "subjob_size": Equivalent(None, "Beam schedules the shards"),
    "retries": Equivalent("--retries", "on timeouts, connection errors, 429 and 5xx, with backoff"),
    "disable_all_reencoding": Equivalent(None, "every image is decoded, checked and re-encoded"),
    "min_image_size": Equivalent("--min-image-size", "shorter side, pixels"),
    "max_image_area": Equivalent(None, "--decode-memory bounds decodes instead (decompression bombs)"),
    "max_aspect_ratio": Equivalent("--max-aspect-ratio", "long/short side"),
    "incremental_mode": Equivalent(None, "a rerun always resumes: complete shards are kept; --retry-failed "
                                   "redoes failed rows"),
    "max_shard_retry": Equivalent(None, "--retry-failed redoes failed rows of complete shards"),
    "user_agent_token": Equivalent("--user-agent", "the whole User-Agent header (default wit-pipeline/VERSION); "
                                   "robots.txt rules for its product token are obeyed too, and --robots-agents "
                                   "names more"),
    "disallowed_header_directives": Equivalent("--opt-out-signals", "X-Robots-Tag noai and noimageai (the noai "
                                               "signal) and every other opt-out are honoured by default"),
}

# The img2dataset options each command understands (the rest are download-only: a plain hint there).
COMMAND_OPTIONS: dict[str, tuple[str, ...]] = {
    "download": tuple(DOWNLOAD_OPTIONS),
    "candidates": ("url_col", "caption_col"),
}


def rows() -> list[dict]:
    """The side-by-side table: one dict per img2dataset option, in ``download()``'s order:
    ``{"img2dataset": "--image_size", "wit": "--image-size" or None, "note": "..."}``."""
    return [{"img2dataset": f"--{name}", "wit": equivalent.flag, "note": equivalent.note}
            for name, equivalent in DOWNLOAD_OPTIONS.items()]


def hint(command: str, args: list[str]) -> str | None:
    """One line for the first img2dataset option among ``args`` (the arguments ``command`` did not know),
    or ``None`` when there is none."""
    names = COMMAND_OPTIONS.get(command, ())
    for arg in args:
        name = arg[2:].split("=", 1)[0] if arg.startswith("--") else ""
        if name in names:
            return _message(command, name, DOWNLOAD_OPTIONS[name])
    return None


def _message(command: str, name: str, equivalent: Equivalent) -> str:
    if equivalent.flag is None:
        return f"img2dataset's --{name} has no equivalent in wit {command} ({equivalent.note})"
    note = f" ({equivalent.note})" if equivalent.note else ""
    return f"--{name} is img2dataset's name: use {equivalent.flag}{note}"
