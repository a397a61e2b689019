"""``filter.html``: for each rule with a threshold, the samples just above and just below it.

The job writes report records (``pipeline.py``): ``clip`` (a sample's CLIP score), ``clip_threshold``
(the ``--clip-score-top`` threshold), ``near`` (a pair of images and their Jaccard similarity from half
the threshold up) and ``semantic`` (a sample and its nearest earlier kept neighbour in its cluster, and
their cosine). ``threshold_sections`` picks the ``--report-samples`` nearest on each side of each
threshold (pure); ``write_report`` reads their images from the input shards and writes the page, with
thumbnails as data URIs, in the style of ``wit shards show``'s contact sheet.
"""

from __future__ import annotations

import base64
import html
import io
import tarfile

from PIL import Image

from dedup.evalsets import image_member
from wit_pipeline import fileio
from wit_pipeline.shardset import iter_tar_samples

THUMBNAIL = 128
STYLE = ("body{font-family:sans-serif;margin:1em}h2{margin-top:1.5em}"
         "figure{display:inline-block;width:160px;margin:6px;vertical-align:top;font-size:12px}"
         "img{width:150px;height:150px;object-fit:contain;background:#eee}.v{color:#06c}.m{color:#777}"
         ".pair{display:inline-block;border:1px solid #ccc;margin:4px;padding:2px}"
         ".above{background:#efe}.below{background:#fee}")


def clip_threshold(options, report: list[dict]) -> float | None:
    """The CLIP score under which samples were dropped: the larger of --clip-score-min and the top-fraction
    threshold (None when neither rule ran)."""
    values = [r["value"] for r in report if r["rule"] == "clip_threshold"]
    if options.clip_score_min is not None:
        values.append(options.clip_score_min)
    return max(values) if values else None


def _split(records: list[dict], threshold: float, n: int, kept_above: bool = True) -> tuple[list[dict], list[dict]]:
    """The ``n`` records nearest ``threshold`` at or above it and the ``n`` nearest below it."""
    above = sorted((r for r in records if r["value"] >= threshold), key=lambda r: r["value"])[:n]
    below = sorted((r for r in records if r["value"] < threshold), key=lambda r: -r["value"])[:n]
    return above, below


def threshold_sections(options, report: list[dict], n: int) -> list[dict]:
    """``[{title, threshold, above, below, pairs, above_means}]`` for each rule with a threshold that ran."""
    sections = []
    threshold = clip_threshold(options, report)
    if threshold is not None:
        above, below = _split([r for r in report if r["rule"] == "clip"], threshold, n)
        sections.append({"title": "CLIP score (low_clip_score)", "threshold": threshold, "above": above,
                         "below": below, "pairs": False, "above_means": "kept"})
    if options.dedup == "near":
        above, below = _split([r for r in report if r["rule"] == "near"], options.near_threshold, n)
        sections.append({"title": "near duplicates (near_duplicate): Jaccard of region hashes",
                         "threshold": options.near_threshold, "above": above, "below": below, "pairs": True,
                         "above_means": "the second is dropped"})
    if options.semdedup_eps is not None:
        limit = 1.0 - options.semdedup_eps
        above, below = _split([r for r in report if r["rule"] == "semantic"], limit, n)
        sections.append({"title": "SemDeDup (semantic_duplicate): cosine to the nearest kept sample",
                         "threshold": limit, "above": above, "below": below, "pairs": True,
                         "above_means": "the second is dropped (above, not at)"})
    return sections


def _wanted(sections: list[dict]) -> dict[str, set[str]]:
    wanted: dict[str, set[str]] = {}
    for section in sections:
        for record in section["above"] + section["below"]:
            for ref in (record["a"], record["b"]) if section["pairs"] else (record,):
                wanted.setdefault(ref["shard"], set()).add(ref["key"])
    return wanted


def thumbnails(wanted: dict[str, set[str]], sources: dict[str, str]) -> dict[tuple[str, str], str]:
    """``{(shard, key): data URI}`` of the wanted samples' images, read from their input shards."""
    found: dict[tuple[str, str], str] = {}
    for shard, keys in wanted.items():
        try:
            for key, members in iter_tar_samples(sources[shard]):
                picked = image_member(members) if key in keys else None
                if picked:
                    found[(shard, key)] = _data_uri(picked[1])
        except (tarfile.TarError, OSError, EOFError, KeyError):
            continue                       # a damaged shard: its samples show without a picture
    return found


def _data_uri(data: bytes) -> str:
    try:
        image = Image.open(io.BytesIO(data))
        image.thumbnail((THUMBNAIL, THUMBNAIL))
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="JPEG", quality=85)
        data = buffer.getvalue()
    except Exception:  # noqa: BLE001 - an undecodable image still gets its card, with the bytes as they are
        pass
    return "data:image/jpeg;base64," + base64.b64encode(data).decode()


def _figure(ref: dict, pictures: dict, note: str = "") -> str:
    uri = pictures.get((ref["shard"], ref["key"]), "")
    return (f'<figure><img src="{uri}" alt="{html.escape(ref.get("caption") or "")}"><figcaption>'
            f'<b>{html.escape(ref["key"])}</b> {html.escape(ref.get("caption") or "")}{note}</figcaption></figure>')


def _cards(section: dict, records: list[dict], side: str, pictures: dict) -> str:
    cards = []
    for record in records:
        value = f'<br><span class="v">{record["value"]:.4f}</span>'
        if section["pairs"]:
            cards.append(f'<div class="pair {side}">{_figure(record["a"], pictures)}'
                         f'{_figure(record["b"], pictures, value)}</div>')
        else:
            cards.append(f'<span class="{side}">{_figure(record, pictures, value)}</span>')
    return "".join(cards) or "<p class='m'>none</p>"


def render(options, sections: list[dict], pictures: dict) -> str:
    body = []
    for section in sections:
        body.append(f"<h2>{html.escape(section['title'])}: threshold {section['threshold']:.4f}</h2>"
                    f"<h3>just above ({html.escape(section['above_means'])})</h3>"
                    + _cards(section, section["above"], "above", pictures)
                    + "<h3>just below</h3>" + _cards(section, section["below"], "below", pictures))
    if not sections:
        body.append("<p>No rule with a threshold ran (exact duplicates and clusters have none).</p>")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>wit filter: " + html.escape(options.out)
            + f"</title><style>{STYLE}</style></head><body><h1>wit filter: {html.escape(options.out)}</h1>"
            + "".join(body) + "</body></html>\n")


def write_report(path: str, options, report: list[dict], sources: dict[str, str]) -> None:
    """Write ``filter.html`` to ``path`` (``sources``: shard name -> input tar, where the images are read)."""
    sections = threshold_sections(options, report, options.report_samples)
    fileio.write_text_atomic(path, render(options, sections, thumbnails(_wanted(sections), sources)))
