"""Writing the sample web's files: Common Crawl WAT/WARC, a URL table, the eval set, Wikipedia inputs
(English, German, Chinese and Japanese dumps, pageviews, WordNet)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from .commoncrawl import write_warc, write_wat, write_wat_with_bad_gzip_member
from .faults import FAULT_CAPTIONS, FAULTS
from .render import eval_image_bytes
from .site import tdm_reserved_page
from .wiki import write_wiki_inputs


@dataclass
class SampleFiles:
    root: str
    wat: list[str]                 # well-formed WAT files (the second ends with one truncated-JSON record)
    warc: list[str]                # WARC files (the last page of the second has broken HTML)
    broken_wat: list[str]          # WAT files with a corrupt gzip member after good records (faults only)
    urls_table: str                # parquet: url, text, kind ("image" or a fault kind) for every image URL
    eval_dir: str                  # ImageFolder: eval/images/<colour of the shape>/<NNNNN>.jpg
    eval_truth: str                # json: classes, the planted eval images with their web URLs, the fault kinds,
    #                                and per image URL whether its caption matches and what it copies (``images``)
    wikipedia: list[str] = field(default_factory=list)   # the English pages-articles XML, bz2
    wikipedia_by_lang: dict[str, str] = field(default_factory=dict)   # en, de, zh, ja -> that wiki's dump
    pageviews: list[str] = field(default_factory=list)   # hourly pageview dumps, gz
    wordnet: str = ""              # WordNet 3.0 wndb-format directory


def image_truth(web) -> dict[str, dict]:
    """Per image URL: what its alt text is (``language``), whether it describes the image (``caption_matches``;
    ``caption_of``: the image it describes instead) and which image it is a near-duplicate copy of (``copy_of``,
    by id; the image's own ``path`` is what names it under every URL form the pages use)."""
    return {web.image_url(image): {"id": image.id, "path": image.path, "language": image.language,
                                   "caption_matches": image.caption_matches, "caption_of": image.caption_of,
                                   "copy_of": image.copy_of}
            for image in web.site.images}


def write_files(web, root: str) -> SampleFiles:
    """Write every file of the sample web served by ``web`` under ``root`` (URLs point at ``web``)."""
    site, origin = web.site, web.base_url
    root = os.path.abspath(root)
    cc_dir = os.path.join(root, "commoncrawl")
    os.makedirs(cc_dir, exist_ok=True)
    half = (len(site.pages) + 1) // 2
    groups = [group for group in (site.pages[:half], site.pages[half:]) if group]   # a one-page site: one file
    if web.faults_enabled:   # first in the first file: the second file's last page and record are the broken ones
        groups[0] = [tdm_reserved_page(site, FAULTS["tdm_meta_page"].path), *groups[0]]
    wat, warc, broken = [], [], []
    for index, pages in enumerate(groups):
        last = index == len(groups) - 1
        name = f"CC-SAMPLE-{index:05d}"
        warc.append(os.path.join(cc_dir, f"{name}.warc.gz"))
        write_warc(warc[-1], pages, origin, site.seed + index, broken_html_page=last and web.faults_enabled)
        wat.append(os.path.join(cc_dir, f"{name}.warc.wat.gz"))
        write_wat(wat[-1], pages, origin, site.seed + index, truncated_record=last and web.faults_enabled)
    if web.faults_enabled:
        broken.append(os.path.join(cc_dir, "CC-SAMPLE-broken.warc.wat.gz"))
        write_wat_with_bad_gzip_member(broken[-1], site.pages[:2], origin, site.seed)

    rows = [{"url": web.image_url(i), "text": i.caption, "kind": "image"} for i in site.images]
    rows += [{"url": url, "text": FAULT_CAPTIONS[kind], "kind": kind} for kind, url in web.fault_urls().items()]
    urls_table = os.path.join(root, "urls.parquet")
    pq.write_table(pa.Table.from_pylist(rows), urls_table)

    eval_dir = os.path.join(root, "eval", "images")
    for image in site.eval_images:
        target = os.path.join(eval_dir, image.eval_id)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as handle:
            handle.write(eval_image_bytes(image))
    truth = {
        "classes": sorted({image.colour for image in site.eval_images}),
        "planted": [{"eval_id": e.eval_id, "image_id": e.planted_as,
                     "url": web.image_url(site.images[e.planted_as])}
                    for e in site.eval_images if e.planted_as is not None],
        "faults": {kind: {"path": f.path, "expected": f.expected} for kind, f in FAULTS.items()},
        "images": image_truth(web),
    }
    eval_truth = os.path.join(root, "eval", "truth.json")
    with open(eval_truth, "w") as handle:
        json.dump(truth, handle, indent=2, sort_keys=True)
    wiki = write_wiki_inputs(os.path.join(root, "wiki"), site.seed)
    return SampleFiles(root=root, wat=wat, warc=warc, broken_wat=broken, urls_table=urls_table,
                       eval_dir=eval_dir, eval_truth=eval_truth, wikipedia=wiki["wikipedia"],
                       wikipedia_by_lang=wiki["wikipedia_by_lang"],
                       pageviews=wiki["pageviews"], wordnet=wiki["wordnet"])
