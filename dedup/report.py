"""The overlap reports: ``overlap.json`` (everything), ``overlap.md`` (a table like the CLIP paper's),
``overlap.html`` (side-by-side thumbnails so a person can judge each pair and set thresholds) and
``overlap.png`` (overlap percent per eval set, drawn with matplotlib's Agg backend).

``overlap.json`` carries its own ``version`` (``REPORT_VERSION``); ``read_report`` loads it back for
``wit overlap filter`` and ``accuracy``.
"""

from __future__ import annotations

import base64
import html
import io
from collections import defaultdict

from PIL import Image

from wit_pipeline import fileio
from wit_pipeline.errors import UserError
from wit_pipeline.shardset import iter_tar_samples

from .evalsets import image_member
from .index import EvalEntry, OverlapIndex

REPORT_VERSION = 1
REPORT_FILES = {"report": "overlap.json", "markdown": "overlap.md", "html": "overlap.html", "chart": "overlap.png"}
MAX_PAIRS_SHOWN = 200     # flagged pairs with thumbnails per eval set in overlap.html (overlap.json has all)
AROUND_THRESHOLD = 12     # pairs shown just above and just below each threshold
THUMB_SIDE = 128


PAIR_KEYS = ("shard", "shard_key", "eval_id", "similarity")    # what filter and accuracy read from a pair


def read_report(folder: str) -> dict:
    """The ``overlap.json`` a scan wrote into ``folder``; one that does not read as a report (not UTF-8, not
    JSON, eval sets or pairs of the wrong shape) is a ``UserError`` naming the file and what is wrong."""
    path = fileio.join(folder, REPORT_FILES["report"])
    if not fileio.exists(path):
        raise UserError(f"--overlap {folder!r} has no overlap.json (run 'wit overlap scan' first)")
    report = fileio.read_json(path, expect=dict)
    problem = report_problem(report)
    if problem:
        raise UserError(f"{path}: not an overlap report ({problem}); rerun 'wit overlap scan'")
    return report


def report_problem(report: dict) -> str | None:
    """What makes ``report`` unusable as an overlap report, or ``None``."""
    sets = report.get("eval_sets")
    if not isinstance(sets, dict):
        return "no 'eval_sets' object"
    for name, s in sets.items():
        pairs = s.get("pairs", []) if isinstance(s, dict) else None
        if not isinstance(pairs, list):
            return f"eval set {name!r} is not an object with a 'pairs' list"
        for number, pair in enumerate(pairs):
            missing = [k for k in PAIR_KEYS if not isinstance(pair, dict) or k not in pair]
            if missing:
                return f"eval set {name!r}, pair {number}: no {missing[0]!r}"
    return None


def write_reports(result: dict, out: str, index: OverlapIndex | None = None,
                  matches: list[dict] | None = None) -> None:
    """Write overlap.json, overlap.md, overlap.png and overlap.html into ``out``."""
    files = {name: fileio.join(out, file) for name, file in REPORT_FILES.items()}
    fileio.write_json_atomic(files["report"], result)
    fileio.write_text_atomic(files["markdown"], markdown_table(result))
    fileio.write_bytes_atomic(files["chart"], bar_chart_png(result))
    thumbs = {}
    for row in matches or []:
        if row.get("thumb"):
            thumbs[(row["shard"], row["shard_key"])] = row["thumb"]
    eval_thumbs = _eval_thumbnails(result, index) if index is not None else {}
    fileio.write_text_atomic(files["html"], html_report(result, thumbs, eval_thumbs))


def thumbnail_data_uri(data: bytes, side: int = THUMB_SIDE) -> str | None:
    """A small JPEG of an image as a ``data:`` URI for the HTML report (None if it cannot be read)."""
    try:
        image = Image.open(io.BytesIO(data))
        image.draft("RGB", (side, side))
        image = image.convert("RGB")
        image.thumbnail((side, side))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=80)
    except Exception:
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# --------------------------------------------------------------------------- markdown


def markdown_table(result: dict) -> str:
    sets = result["eval_sets"]
    lines = [
        "# Train / eval overlap",
        "",
        f"Training shards: {result['shards']['count']} ({result['shards']['samples']} samples, "
        f"{result['shards']['unreadable_images']} unreadable images, {len(result['shards']['failed'])} unreadable "
        "or damaged shards). "
        "A pair is flagged when the exact Jaccard similarity of its signatures reaches the eval set's threshold.",
        "",
        *([f"**Incomplete scan: {failed_shards_text(result['shards'])}.**", ""] if result["shards"]["failed"] else []),
        "| Eval set | Examples | Flagged | Overlap % | Image / text | Threshold | Unreadable |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in sorted(sets.items()):
        lines.append(f"| {name} | {s['examples']} | {s['flagged']} | {s['percent']:.2f} | "
                     f"{s['flagged_by']['image']} / {s['flagged_by']['text']} | {s['threshold']:.2f} | "
                     f"{len(s['unreadable'])} |")
    summary = result["summary"]
    lines += [
        "",
        f"Median overlap {summary['median_percent']:.2f}%, mean {summary['mean_percent']:.2f}%; "
        f"{summary['without_overlap']} of {summary['eval_sets']} eval sets have no overlap.",
        "",
    ]
    return "\n".join(lines)


def format_table(result: dict) -> str:
    """The overlap table as plain text for the terminal."""
    rows = [("eval set", "examples", "flagged", "overlap %", "threshold")]
    for name, s in sorted(result["eval_sets"].items()):
        rows.append((name, str(s["examples"]), str(s["flagged"]), f"{s['percent']:.2f}", f"{s['threshold']:.2f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) if i == 0 else cell.rjust(width)
                       for i, (cell, width) in enumerate(zip(row, widths, strict=True)))
             for row in rows]
    summary = result["summary"]
    lines.append(f"median {summary['median_percent']:.2f}%, mean {summary['mean_percent']:.2f}%; "
                 f"{result['shards']['samples']} training samples in {result['shards']['count']} shards, "
                 f"{result['shards']['unreadable_images']} unreadable images, "
                 f"{len(result['shards']['failed'])} unreadable or damaged shards")
    if result["shards"]["failed"]:
        lines.append(f"INCOMPLETE: {failed_shards_text(result['shards'])}")
    return "\n".join(lines)


def failed_shards_text(shards: dict) -> str:
    """What the report says when shards broke off: their samples' overlap is unknown, so nothing is clean."""
    failed = shards["failed"]
    first = failed[0]
    return (f"{len(failed)} of {shards['count']} shards could not be read whole (first: {first['shard']}: "
            f"{first['error']}); overlap with the samples they hold is unknown")


# --------------------------------------------------------------------------- chart


def bar_chart_png(result: dict) -> bytes:
    # The Agg canvas directly: no pyplot, no global backend switch, works without a display. Imported
    # here because only the driver draws; the scan's workers import this module for thumbnails alone.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = sorted(result["eval_sets"])
    values = [result["eval_sets"][n]["percent"] for n in names]
    figure = Figure(figsize=(max(5.5, 0.6 * len(names) + 2.5), 3.4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    bars = axes.bar(range(len(names)), values, color="#4878a8")
    axes.set_xticks(range(len(names)))
    axes.set_xticklabels(names, rotation=30 if len(names) > 4 else 0, ha="right" if len(names) > 4 else "center")
    axes.set_ylabel("overlap (% of eval examples)")
    axes.set_title("Eval examples with a near-duplicate in training", fontsize=10)
    top = max(values + [1.0])
    axes.set_ylim(0, top * 1.2)
    for bar, value in zip(bars, values, strict=True):
        axes.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + top * 0.02, f"{value:.1f}%",
                  ha="center", va="bottom", fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


# --------------------------------------------------------------------------- html


def _shown_pairs(s: dict) -> list[dict]:
    pairs = s["pairs"]
    above = sorted(pairs, key=lambda p: p["similarity"])[:AROUND_THRESHOLD]
    return pairs[:MAX_PAIRS_SHOWN] + above + s["near_misses"][:AROUND_THRESHOLD]


def _eval_thumbnails(result: dict, index: OverlapIndex) -> dict[tuple[str, str], str]:
    """Thumbnails of the eval images that appear in the report, read back from their sources."""
    wanted: dict[tuple[str, str], EvalEntry] = {}
    by_id = {(e.set_name, e.eval_id): e for e in index.entries}
    for name, s in result["eval_sets"].items():
        for pair in _shown_pairs(s):
            entry = by_id.get((name, pair["eval_id"]))
            if entry is not None and entry.source:
                wanted[(name, pair["eval_id"])] = entry
    out: dict[tuple[str, str], str] = {}
    in_tars: dict[str, dict[str, list[tuple[str, str]]]] = defaultdict(lambda: defaultdict(list))
    for key, entry in wanted.items():
        if entry.member is not None:
            in_tars[entry.source][entry.member].append(key)
            continue
        try:
            uri = thumbnail_data_uri(fileio.read_bytes(entry.source))
        except Exception:
            uri = None
        if uri:
            out[key] = uri
    for tar, members in in_tars.items():
        try:
            for member_key, parts in iter_tar_samples(tar):
                if member_key in members:
                    image = image_member(parts)
                    uri = thumbnail_data_uri(image[1]) if image else None
                    for key in members[member_key]:
                        if uri:
                            out[key] = uri
        except Exception:
            continue
    return out


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; vertical-align: middle; font-size: 13px; }
th { background: #f2f2f2; }
td.num { text-align: right; }
img.t { max-width: 128px; max-height: 128px; display: block; }
.none { color: #888; font-style: italic; }
.sim { font-weight: bold; }
h2 { border-bottom: 2px solid #4878a8; padding-bottom: 2px; margin-top: 2em; }
.small { font-size: 12px; color: #555; word-break: break-all; max-width: 28em; }
"""


def _img(uri: str | None) -> str:
    return f'<img class="t" src="{uri}" alt="">' if uri else '<span class="none">no image</span>'


def _pair_table(pairs: list[dict], name: str, thumbs: dict, eval_thumbs: dict, empty: str) -> str:
    if not pairs:
        return f'<p class="none">{html.escape(empty)}</p>'
    rows = ["<table><tr><th>eval image</th><th>training image</th><th>similarity</th><th>kind</th>"
            "<th>eval id</th><th>training sample</th></tr>"]
    for p in pairs:
        url = p.get("url") or ""
        link = f'<a href="{html.escape(url)}">{html.escape(url)}</a>' if url else ""
        caption = html.escape(p.get("caption") or "")
        rows.append(
            f"<tr><td>{_img(eval_thumbs.get((name, p['eval_id'])))}</td>"
            f"<td>{_img(thumbs.get((p['shard'], p['shard_key'])))}</td>"
            f"<td class=\"num sim\">{p['similarity']:.3f}</td><td>{html.escape(p['kind'])}</td>"
            f"<td class=\"small\">{html.escape(p['eval_id'])}</td>"
            f"<td class=\"small\">{html.escape(p['shard'])} / {html.escape(p['shard_key'])}<br>{link}<br>"
            f"{caption}</td></tr>")
    rows.append("</table>")
    return "\n".join(rows)


def _html_overview(result: dict) -> list[str]:
    shards = result["shards"]
    parts = [
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Train / eval overlap</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Train / eval overlap</h1>",
        f"<p>{shards['samples']} training samples in {shards['count']} shards "
        f"({shards['unreadable_images']} unreadable images, {len(shards['failed'])} unreadable shards). "
        "Similarity is the exact Jaccard similarity of the two signatures (image: region hashes; text: character "
        "5-grams). Judge the pairs just above and just below each threshold, then re-run with "
        "<code>--threshold NAME=T</code> to set that eval set's threshold.</p>",
        '<img src="overlap.png" alt="overlap percent per eval set">',
        "<table><tr><th>eval set</th><th>examples</th><th>flagged</th><th>overlap %</th><th>threshold</th>"
        "<th>unreadable</th></tr>",
    ]
    for name, s in sorted(result["eval_sets"].items()):
        parts.append(f"<tr><td><a href=\"#set-{html.escape(name)}\">{html.escape(name)}</a></td>"
                     f"<td class=\"num\">{s['examples']}</td><td class=\"num\">{s['flagged']}</td>"
                     f"<td class=\"num\">{s['percent']:.2f}</td><td class=\"num\">{s['threshold']:.2f}</td>"
                     f"<td class=\"num\">{len(s['unreadable'])}</td></tr>")
    parts.append("</table>")
    return parts


def _html_eval_set(name: str, s: dict, thumbs: dict, eval_thumbs: dict) -> list[str]:
    above = sorted(s["pairs"], key=lambda p: p["similarity"])[:AROUND_THRESHOLD]
    below = s["near_misses"][:AROUND_THRESHOLD]
    shown = ""
    if len(s["pairs"]) > MAX_PAIRS_SHOWN:
        shown = f" (first {MAX_PAIRS_SHOWN} of {len(s['pairs'])}; overlap.json lists all)"
    parts = [
        f"<h2 id=\"set-{html.escape(name)}\">{html.escape(name)}</h2>",
        f"<p>{s['examples']} examples, {s['flagged']} flagged ({s['percent']:.2f}%) at threshold "
        f"{s['threshold']:.2f} (text pairs: {s['text_threshold']:.2f}); {len(s['pairs'])} flagged pairs. "
        f"Source: <code>{html.escape(s['path'])}</code> ({html.escape(s['format'])}).</p>",
        f"<h3>Just above the threshold (the {len(above)} least similar flagged pairs)</h3>",
        _pair_table(above, name, thumbs, eval_thumbs, "no flagged pairs"),
        f"<h3>Just below the threshold (the {len(below)} most similar pairs not flagged)</h3>",
        _pair_table(below, name, thumbs, eval_thumbs, "no pairs found below the threshold"),
        f"<h3>Flagged pairs, most similar first{shown}</h3>",
        _pair_table(s["pairs"][:MAX_PAIRS_SHOWN], name, thumbs, eval_thumbs, "no flagged pairs"),
    ]
    if s["unreadable"]:
        parts.append(f"<h3>Unreadable eval examples ({len(s['unreadable'])})</h3><ul>")
        parts += [f"<li>{html.escape(u['eval_id'])}: {html.escape(u['reason'])}</li>" for u in s["unreadable"]]
        parts.append("</ul>")
    return parts


def _html_unreadable_training(shards: dict) -> list[str]:
    if not shards["unreadable"] and not shards["failed"]:
        return []
    return [
        "<h2>Unreadable training data</h2><ul>",
        *(f"<li>shard {html.escape(f['shard'])}: {html.escape(f['error'])}</li>" for f in shards["failed"]),
        *(f"<li>{html.escape(u['shard'])} / {html.escape(u['shard_key'])}: {html.escape(u['reason'])}</li>"
          for u in shards["unreadable"]),
        "</ul>",
    ]


def html_report(result: dict, thumbs: dict, eval_thumbs: dict) -> str:
    parts = _html_overview(result)
    for name, s in sorted(result["eval_sets"].items()):
        parts += _html_eval_set(name, s, thumbs, eval_thumbs)
    parts += _html_unreadable_training(result["shards"])
    parts.append("</body></html>\n")
    return "\n".join(parts)
