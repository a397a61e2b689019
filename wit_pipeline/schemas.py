"""Parquet schemas of the stage outputs: the one home for them.

Every stage that writes or reads these files imports its schema from here, so a
column name is spelled once. Rows travel through Beam as plain dicts with these
keys (``None`` for a missing nullable value).

- ``CANDIDATE_SCHEMA``: one (image URL, text) pair found by ``wit candidates``.
- ``SELECTED_SCHEMA``: a candidate kept by ``wit select``, plus the queries it
  matched, and its ``lang``. ``wit download`` reads ``url`` and ``text`` (and carries the rest as
  provenance).
- ``QUERY_COUNTS_SCHEMA``: per-(lang, query) matched/kept/selected counts of ``wit select``.
- ``STATUS_SCHEMA``: one row per *input* row of a ``wit download`` shard (its status parquet):
  ``status`` is ``success`` or one of ``STATUS_REASONS`` (fetch reasons, image checks, ``duplicate``)
  or ``http_<status>``; ``exif`` is the image's EXIF as JSON text (``--save-exif``). The input's other
  columns follow these fixed ones (``status_schema``), typed by their values over the whole input (``kinds_type``).
"""

from __future__ import annotations

import hashlib
import re

import pyarrow as pa

from .consent import CONSENT_REASONS
from .download.images import IMAGE_REASONS
from .http import REASONS as FETCH_REASONS

# Provenance: where a pair came from, so users can trace it and build licence-aware sets.
PROVENANCE_FIELDS = [
    pa.field("page_url", pa.string()),        # the page the image appeared on (WAT/WARC page, search landing page)
    pa.field("source", pa.string(), nullable=False),  # wat | warc | table | search
    pa.field("source_file", pa.string()),     # input file, or the search API endpoint
    pa.field("search_query", pa.string()),    # search source: the query whose crawl found it
    pa.field("license", pa.string()),         # e.g. "CC BY 4.0" (search source; None when unknown)
    pa.field("license_url", pa.string()),
    pa.field("creator", pa.string()),
]

CANDIDATE_SCHEMA = pa.schema([
    pa.field("uid", pa.string(), nullable=False),    # content id of (url, text): see pair_uid
    pa.field("url", pa.string(), nullable=False),    # absolute http(s) image URL
    pa.field("text", pa.string(), nullable=False),   # cleaned caption (alt text, title, ...)
    *PROVENANCE_FIELDS,
])

SELECTED_SCHEMA = pa.schema([
    *CANDIDATE_SCHEMA,
    pa.field("queries", pa.list_(pa.string()), nullable=False),   # every query the text matched, sorted
    pa.field("lang", pa.string()),      # the text's detected language (langcodes form); null under --lang any
])

QUERY_COUNTS_SCHEMA = pa.schema([
    pa.field("lang", pa.string()),      # the query's language; null for a list without languages
    pa.field("query", pa.string(), nullable=False),
    pa.field("matched", pa.int64(), nullable=False),   # candidate pairs whose text matched the query
    pa.field("kept", pa.int64(), nullable=False),      # pairs kept through this query's own cap
    pa.field("selected", pa.int64(), nullable=False),  # selected pairs listing it (kept via any query)
])

STATUS_SCHEMA = pa.schema([
    ("key", pa.string()),
    ("url", pa.string()),
    ("caption", pa.string()),
    ("status", pa.string()),                 # "success" or the failure reason (STATUS_REASONS, http_<status>)
    ("error_message", pa.string()),
    ("http_status", pa.int32()),
    ("sha256", pa.string()),                 # of the original (downloaded) bytes
    ("original_width", pa.int32()),
    ("original_height", pa.int32()),
    ("width", pa.int32()),
    ("height", pa.int32()),
    ("queries", pa.list_(pa.string())),
    ("exif", pa.string()),                   # img2dataset's: {"Image Make": "Canon", ...} as JSON text
])

# Why a download row did not become a sample: the fetch's reasons, the image checks', and the download's
# own decisions (a decision is not a failure: --retry-failed leaves it alone unless it is named).
DECISION_REASONS = ("duplicate",)
# A refusal: an opt-out signal (``consent.CONSENT_REASONS``) or a --blocklist-hashes match. Nothing of the image
# is stored; --retry-failed leaves these alone unless named, like a decision.
SAFETY_REASONS = ("blocklisted",)
REFUSAL_REASONS = CONSENT_REASONS + SAFETY_REASONS
# The downloaded bytes' hash differs from the input's (--verify-hash), or the input has none for the row.
VERIFY_REASONS = ("hash_mismatch",)
# An exception nothing expected while processing one row (a bug): the row is counted, the job goes on.
ROW_REASONS = ("internal_error",)
STATUS_REASONS = (FETCH_REASONS + IMAGE_REASONS + VERIFY_REASONS + ROW_REASONS + DECISION_REASONS
                  + REFUSAL_REASONS)
HTTP_REASON = re.compile(r"^http_\d{3}$")    # plus "http_<status>" for an HTTP error status


def is_status_reason(name: str) -> bool:
    """Whether ``name`` is a failure status a download row can have (``timeout``, ``http_503``, ...)."""
    return name in STATUS_REASONS or bool(HTTP_REASON.match(name))


INT64_RANGE = range(-(1 << 63), 1 << 63)


def value_kind(value) -> str | None:
    """What a carried input value is, for typing its column: ``bool``, ``int``, ``float``, ``str``,
    ``strlist`` or ``other`` (``None`` for an empty cell)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if value in INT64_RANGE else "other"
    if isinstance(value, (float, str)):
        return type(value).__name__
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return "strlist"
    return "other"


def kinds_type(kinds: set[str]) -> pa.DataType | None:
    """The parquet type of a carried column whose values have ``kinds`` (``value_kind``): bool, int64,
    float64 (ints and floats), string or list<string>; ``None`` for a mix (written as JSON text in a
    string column). A column with no values is a string."""
    if not kinds or kinds == {"str"}:
        return pa.string()
    single = {"bool": pa.bool_(), "int": pa.int64(), "float": pa.float64(), "strlist": pa.list_(pa.string())}
    if len(kinds) == 1 and next(iter(kinds)) in single:
        return single[next(iter(kinds))]
    return pa.float64() if kinds == {"int", "float"} else None


def extra_column_type(values: list) -> pa.DataType | None:
    """``kinds_type`` of a list of values."""
    return kinds_type({value_kind(v) for v in values} - {None})


def status_schema(extra_types: dict[str, pa.DataType]) -> pa.Schema:
    """``STATUS_SCHEMA``'s columns, unchanged and first, then the carried input columns in ``extra_types``."""
    return pa.schema([*STATUS_SCHEMA, *(pa.field(name, kind) for name, kind in extra_types.items())])


CANDIDATE_COLUMNS = CANDIDATE_SCHEMA.names
SELECTED_COLUMNS = SELECTED_SCHEMA.names


def pair_uid(url: str, text: str) -> str:
    """A stable content id of an (url, text) pair: 16 hex digits of BLAKE2b over both."""
    return hashlib.blake2b(f"{url}\x00{text}".encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def candidate_row(url: str, text: str, *, source: str, page_url: str | None = None,
                  source_file: str | None = None, search_query: str | None = None, license: str | None = None,
                  license_url: str | None = None, creator: str | None = None) -> dict:
    """A candidate row dict with every schema key (the uid is filled in after text clean-up)."""
    return {"uid": "", "url": url, "text": text, "page_url": page_url, "source": source,
            "source_file": source_file, "search_query": search_query, "license": license,
            "license_url": license_url, "creator": creator}
