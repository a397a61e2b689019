"""Deterministic parquet part files from a Beam PCollection of row dicts.

Rows are spread over ``ceil(count / rows_per_part)`` parts by a hash of their
``uid`` column and sorted by it inside each part, so the same rows give the
same files whatever the input order, the runner or the worker count. Each part
is written atomically (``fileio.write_parquet_atomic``); part files of an earlier
run that this run did not write are removed, and an empty input still gives
one (empty) part, so readers always find the schema.
"""

from __future__ import annotations

import math
import posixpath
import re

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from . import fileio

PART_NAME = re.compile(r"^part-\d{5}-of-\d{5}\.parquet$")


def part_name(index: int, count: int) -> str:
    return f"part-{index:05d}-of-{count:05d}.parquet"


def parts_for(rows: int, rows_per_part: int) -> int:
    return max(1, math.ceil(rows / max(1, rows_per_part)))


def part_of(uid: str, parts: int) -> int:
    return int(uid[:12] or "0", 16) % parts


def sorted_table(rows: list[dict], schema: pa.Schema, sort_key: str = "uid") -> pa.Table:
    """The rows in ``sort_key`` order as a table: a part's bytes depend on its rows only, not their order."""
    return pa.Table.from_pylist(sorted(rows, key=lambda row: row[sort_key]), schema=schema)


def list_parts(directory: str) -> list[str]:
    """The part files in ``directory`` (sorted paths); empty when there are none."""
    try:
        found = FileSystems.match([fileio.join(directory, "part-*.parquet")])[0].metadata_list
    except Exception:  # noqa: BLE001 - a missing directory has no parts
        return []
    return sorted(m.path for m in found if PART_NAME.match(posixpath.basename(m.path)))


class WriteParquetParts(beam.PTransform):
    """Write row dicts as ``part-NNNNN-of-MMMMM.parquet`` under ``directory``; yields the written names."""

    def __init__(self, directory: str, schema: pa.Schema, rows_per_part: int = 200_000):
        super().__init__()
        self.directory, self.schema, self.rows_per_part = directory, schema, rows_per_part

    def expand(self, rows):
        directory, schema, rows_per_part = self.directory, self.schema, self.rows_per_part
        count = rows | "Count" >> beam.combiners.Count.Globally()

        def key(row, total):
            return part_of(row["uid"], parts_for(total, rows_per_part)), row

        def write(item, total):
            index, part_rows = item
            name = part_name(index, parts_for(total, rows_per_part))
            fileio.write_parquet_atomic(fileio.join(directory, name), sorted_table(list(part_rows), schema))
            return name

        def finish(names, total):
            names = set(names)
            if not names:   # no rows: one empty part keeps the schema visible to readers
                name = part_name(0, 1)
                fileio.write_parquet_atomic(fileio.join(directory, name), sorted_table([], schema))
                names.add(name)
            stale = [p for p in list_parts(directory) if posixpath.basename(p) not in names]
            if stale:
                FileSystems.delete(stale)
            return sorted(names)

        total = beam.pvalue.AsSingleton(count)
        written = (rows
                   | "KeyByPart" >> beam.Map(key, total)
                   | "GroupParts" >> beam.GroupByKey()
                   | "WritePart" >> beam.Map(write, total))
        return (written
                | "AllNames" >> beam.combiners.ToList()
                | "Finish" >> beam.Map(finish, total))
