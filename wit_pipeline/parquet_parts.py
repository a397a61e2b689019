"""Deterministic parquet part files from a Beam PCollection of Arrow tables (or of row dicts).

Rows are spread over ``ceil(count / rows_per_part)`` parts by a hash of their
``uid`` column and sorted by it inside each part, so the same rows give the
same files whatever the input order, the batching, the runner or the worker count.
Each part is written atomically, a row group of up to ``ROW_GROUP_ROWS`` rows at a time
(``fileio.write_parquet_groups_atomic``); part files of an
earlier run that this run did not write are removed, and an empty input still gives
one (empty) part, so readers always find the schema.

- ``WriteParquetTables``: the writer, on ``pa.Table`` batches of the part schema. Tables are packed as they
  come (the job holds them, compressed, until every row is counted), and only packed tables cross its
  shuffle, one per (input batch, part): a compact element, however many rows it holds.
- ``pack`` / ``unpack``: a table as zstd-compressed Arrow IPC bytes and back, the form tables take across a
  shuffle (several times smaller than their pickle, which is what a local runner holds in memory).
- ``WriteParquetParts``: the same on row dicts (batched into tables first).
- ``split_table``: a table's rows grouped by an integer key per row (parts here, de-dup buckets in
  ``pairs``); ``sorted_by_uid``: a table in uid order, as row-group tables.
"""

from __future__ import annotations

import math
import posixpath
import re
from typing import Iterator

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.io.filesystems import FileSystems

from . import fileio

PART_NAME = re.compile(r"^part-\d{5}-of-\d{5}\.parquet$")
ROWS_PER_TABLE = 4096   # rows of one batch when row dicts are turned into tables
ROW_GROUP_ROWS = 65536  # rows of one row group of a part


def part_name(index: int, count: int) -> str:
    return f"part-{index:05d}-of-{count:05d}.parquet"


def parts_for(rows: int, rows_per_part: int) -> int:
    return max(1, math.ceil(rows / max(1, rows_per_part)))


def part_of(uid: str, parts: int) -> int:
    return int(uid[:12] or "0", 16) % parts


def sorted_by_uid(table: pa.Table, group_rows: int = ROW_GROUP_ROWS) -> Iterator[pa.Table]:
    """``table``'s rows in uid order (a stable sort), as tables of up to ``group_rows`` rows made one at a
    time (a part's row groups): the bytes of a part depend on its rows only, not on their order or batching,
    and a sorted copy of the whole part is never held."""
    order = pc.sort_indices(table, sort_keys=[("uid", "ascending")])
    for start in range(0, len(order), group_rows):
        yield table.take(order[start:start + group_rows])


def split_table(table: pa.Table, keys: np.ndarray) -> Iterator[tuple[int, pa.Table]]:
    """``(key, rows of table with that key)`` for each distinct key (``keys``: one integer per row), rows
    kept in table order within a key: one reordering copy of the table, then a zero-copy slice per key."""
    if table.num_rows == 0:
        return
    if keys.min() == keys.max():
        yield int(keys[0]), table
        return
    order = np.argsort(keys, kind="stable")
    ordered_keys = keys[order]
    ordered = table.take(pa.array(order))
    bounds = [0, *(np.flatnonzero(np.diff(ordered_keys)) + 1).tolist(), table.num_rows]
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        yield int(ordered_keys[start]), ordered.slice(start, end - start)


def pack(table: pa.Table) -> bytes:
    """``table`` as zstd-compressed Arrow IPC stream bytes (``unpack`` reads them back), as one record batch
    however many chunks it had."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression="zstd")) as writer:
        writer.write_table(table.combine_chunks())
    return sink.getvalue().to_pybytes()


def unpack(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(data).read_all()


def part_keys(table: pa.Table, parts: int) -> np.ndarray:
    """``part_of`` of every row's uid."""
    return np.fromiter((int(uid[:12] or "0", 16) % parts for uid in table.column("uid").to_pylist()),
                       dtype=np.int64, count=table.num_rows)


def list_parts(directory: str) -> list[str]:
    """The part files in ``directory`` (sorted paths); empty when there are none."""
    try:
        found = FileSystems.match([fileio.join(directory, "part-*.parquet")])[0].metadata_list
    except Exception:  # noqa: BLE001 - a missing directory has no parts
        return []
    return sorted(m.path for m in found if PART_NAME.match(posixpath.basename(m.path)))


class WriteParquetTables(beam.PTransform):
    """Write ``pa.Table`` batches (of ``schema``) as ``part-NNNNN-of-MMMMM.parquet`` under ``directory``;
    yields the written names."""

    def __init__(self, directory: str, schema: pa.Schema, rows_per_part: int = 200_000):
        super().__init__()
        self.directory, self.schema, self.rows_per_part = directory, schema, rows_per_part

    def expand(self, tables):
        directory, schema, rows_per_part = self.directory, self.schema, self.rows_per_part

        def packed(table):   # held until every row is counted: as compressed bytes, a few times smaller
            return [(table.num_rows, pack(table))] if table.num_rows else []

        def by_part(item, total):
            rows, data = item
            parts = parts_for(total, rows_per_part)
            if parts == 1:
                return [(0, data)]
            table = unpack(data)
            return ((index, pack(part)) for index, part in split_table(table, part_keys(table, parts)))

        def write(item, total):
            index, packed_tables = item
            name = part_name(index, parts_for(total, rows_per_part))
            tables = map(unpack, packed_tables)
            table = pa.concat_tables([t if t.schema == schema else t.cast(schema) for t in tables])
            fileio.write_parquet_groups_atomic(fileio.join(directory, name), schema, sorted_by_uid(table))
            return name

        def finish(names, total):
            names = set(names)
            if not names:   # no rows: one empty part keeps the schema visible to readers
                name = part_name(0, 1)
                fileio.write_parquet_atomic(fileio.join(directory, name), schema.empty_table())
                names.add(name)
            stale = [p for p in list_parts(directory) if posixpath.basename(p) not in names]
            if stale:
                FileSystems.delete(stale)
            return sorted(names)

        packed_tables = tables | "Pack" >> beam.FlatMap(packed)
        total = beam.pvalue.AsSingleton(packed_tables
                                         | "Rows" >> beam.Map(lambda item: item[0])
                                         | "Count" >> beam.CombineGlobally(sum))
        written = (packed_tables
                   | "SplitByPart" >> beam.FlatMap(by_part, total)
                   | "GroupParts" >> beam.GroupByKey()
                   | "WritePart" >> beam.Map(write, total))
        return (written
                | "AllNames" >> beam.combiners.ToList()
                | "Finish" >> beam.Map(finish, total))


class WriteParquetParts(beam.PTransform):
    """``WriteParquetTables`` on row dicts: they travel as tables of up to ``ROWS_PER_TABLE`` rows."""

    def __init__(self, directory: str, schema: pa.Schema, rows_per_part: int = 200_000):
        super().__init__()
        self.directory, self.schema, self.rows_per_part = directory, schema, rows_per_part

    def expand(self, rows):
        schema = self.schema
        return (rows
                | "Batch" >> beam.BatchElements(min_batch_size=ROWS_PER_TABLE, max_batch_size=ROWS_PER_TABLE)
                | "ToTable" >> beam.Map(lambda batch: pa.Table.from_pylist(batch, schema=schema))
                | "WriteTables" >> WriteParquetTables(self.directory, schema, self.rows_per_part))
