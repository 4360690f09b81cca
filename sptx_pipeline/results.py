"""The Parquet layout of every result, once (the Parquet counterpart of ``store.py``).

* ``scores/chrom=<c>/strand=<plus|minus>/part-NNNNN.parquet``: ``pos`` int64 then one float32
  column per channel, fixed-size row groups with statistics, so a ``pos`` range skips row groups.
* ``sites.parquet``: one row per acceptor/donor site (Pangolin: splice site) above a threshold
  (:func:`sites_schema`, :func:`site_channels`).
* ``genes.parquet``, ``regions.parquet``, ``windows.parquet``: tables written by
  :func:`write_table`.

Every file carries its provenance as JSON under one key-value metadata key, ``sptx``
(:data:`PROVENANCE_KEY`): :func:`provenance_metadata` writes it, :func:`read_provenance` reads
it. Every file is written atomically (``atomic.atomic_path``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from .atomic import atomic_path
from .errors import MissingInputError

PROVENANCE_KEY = b"sptx"
STRAND_DIR = {"+": "plus", "-": "minus"}
# The partition keys of scores/ are text: without this, pyarrow infers int32 for numeric contig
# names (chrom=19) and a filter ("chrom", "=", "19") fails. For pandas:
# pd.read_parquet("results/scores", partitioning=SCORES_PARTITIONING, filters=[...]).
SCORES_PARTITIONING = ds.partitioning(
    pa.schema([("chrom", pa.string()), ("strand", pa.string())]), flavor="hive"
)
P_SPLICE_SUFFIX = "_p_splice"  # Pangolin's per-tissue P(splice) channels: heart_p_splice, ...
ROW_GROUP_ROWS = 128 * 1024
ROWS_PER_FILE = 64 * ROW_GROUP_ROWS


# --------------------------------------------------------------------------- provenance


def provenance_metadata(record: dict[str, Any]) -> dict[bytes, bytes]:
    """The key-value metadata that stores ``record`` (JSON, sorted keys) under ``sptx``."""
    return {PROVENANCE_KEY: json.dumps(record, sort_keys=True, default=str).encode()}


def read_provenance(path: str | os.PathLike) -> dict[str, Any]:
    """The provenance record of a Parquet file (``{}`` if it has none)."""
    metadata = pq.read_schema(path).metadata or {}
    raw = metadata.get(PROVENANCE_KEY)
    return json.loads(raw) if raw is not None else {}


# --------------------------------------------------------------------------- tables


def write_table(
    frame: pd.DataFrame,
    path: str | os.PathLike,
    provenance: dict[str, Any] | None = None,
    metadata: dict[bytes, bytes] | None = None,
) -> None:
    """Write ``frame`` to ``path`` atomically, with ``provenance`` under ``sptx`` and any other
    key-value ``metadata``."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    extra = {**(provenance_metadata(provenance) if provenance else {}), **(metadata or {})}
    if extra:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **extra})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


# --------------------------------------------------------------------------- schemas


def scores_schema(channels: list[str], metadata: dict[bytes, bytes] | None = None) -> pa.Schema:
    """``pos`` int64 then one float32 column per channel."""
    fields = [pa.field("pos", pa.int64(), nullable=False)]
    fields += [pa.field(name, pa.float32(), nullable=False) for name in channels]
    return pa.schema(fields, metadata=metadata)


def sites_schema(tissues: list[str], metadata: dict[bytes, bytes] | None = None) -> pa.Schema:
    """chrom, pos, strand, site_type, score, one float32 column per tissue, gene_ids."""
    fields = [
        pa.field("chrom", pa.string()),
        pa.field("pos", pa.int64()),
        pa.field("strand", pa.string()),
        pa.field("site_type", pa.string()),
        pa.field("score", pa.float32()),
    ]
    fields += [pa.field(name, pa.float32()) for name in tissues]
    fields.append(pa.field("gene_ids", pa.list_(pa.string())))
    return pa.schema(fields, metadata=metadata)


def site_channels(channels: list[str] | tuple[str, ...]) -> dict[str, list[str]]:
    """The site types of ``sites.parquet`` and the channels whose maximum scores each.

    A model with ``acceptor`` and ``donor`` channels (SpliceAI, SpTransformer) has those two
    types. Pangolin does not tell acceptors from donors: its sites have type ``splice``, scored
    by the largest P(splice) over its tissues (``<tissue>_p_splice``). ``{}``: neither.
    """
    if "acceptor" in channels and "donor" in channels:
        return {"acceptor": ["acceptor"], "donor": ["donor"]}
    p_splice = [c for c in channels if c.endswith(P_SPLICE_SUFFIX)]
    return {"splice": p_splice} if p_splice else {}


FloatEncoding = Literal["dictionary", "byte_stream_split"]


def float_encoding(value_dtype: str) -> FloatEncoding:
    """The float column encoding for values that came out of the model as ``value_dtype``.

    float16 predictions (the default ``output_dtype``) hold at most ~15,000 distinct values in
    [0, 1], so a dictionary per row group is small and its indices compress well; float32 ones
    would overflow the dictionary, and byte-stream-split groups their bytes for ZSTD instead.
    """
    return "dictionary" if np.dtype(value_dtype).itemsize <= 2 else "byte_stream_split"


def parquet_writer(
    path: str | os.PathLike, schema: pa.Schema, floats: FloatEncoding = "dictionary"
) -> pq.ParquetWriter:
    """The writer settings of every results file, chosen by measurement
    (``benchmarks/bench_encodings.py``: SpliceAI on the bundled chr19 region, scores/ 3.38 ->
    1.94 bytes per position, lossless): ZSTD level 3 (level 9 saves 5% more at 5x the time),
    statistics (``pos`` pruning), ``pos`` DELTA_BINARY_PACKED (sorted, steps of one), strings
    dictionary-encoded, floats as :func:`float_encoding` says."""
    names = [f.name for f in schema]
    is_float = {f.name: pa.types.is_floating(f.type) for f in schema}
    encoding = {"pos": "DELTA_BINARY_PACKED"} if "pos" in names else {}
    if floats == "byte_stream_split":
        encoding.update({name: "BYTE_STREAM_SPLIT" for name in names if is_float[name]})
    dictionary = [name for name in names if name not in encoding]
    return pq.ParquetWriter(
        str(path),
        schema,
        compression="zstd",
        compression_level=3,
        write_statistics=True,
        use_dictionary=dictionary,
        column_encoding=encoding or None,
    )


# --------------------------------------------------------------------------- partitions


def partition_dir(scores_dir: str | os.PathLike, chrom: str, strand: str) -> Path:
    """``scores/chrom=<c>/strand=<plus|minus>`` for strand ``+``/``-``."""
    return Path(scores_dir) / f"chrom={chrom}" / f"strand={STRAND_DIR[strand]}"


def scores_path(results_dir: str | os.PathLike) -> Path:
    """``results_dir/scores``, or ``results_dir`` itself when it is the scores dataset."""
    results_dir = Path(results_dir)
    if any(results_dir.glob("chrom=*")):
        return results_dir
    scores = results_dir / "scores"
    if not scores.is_dir():
        raise MissingInputError(f"{scores} not found: is {results_dir} a pipeline outdir?")
    return scores


def partitions(scores_dir: Path) -> dict[tuple[str, str], list[str]]:
    """``(chrom, '+'|'-') -> [parquet files]`` for every partition of ``scores/``."""
    strand_of = {name: strand for strand, name in STRAND_DIR.items()}
    out: dict[tuple[str, str], list[str]] = {}
    for directory in sorted(scores_dir.glob("chrom=*/strand=*")):
        strand = strand_of.get(directory.name.removeprefix("strand="))
        files = sorted(str(p) for p in directory.glob("*.parquet"))
        if strand and files:
            out[(directory.parent.name.removeprefix("chrom="), strand)] = files
    return out


def channels_of(path: str | os.PathLike) -> list[str]:
    """The channel columns of a ``scores/`` file (every column but ``pos``)."""
    return [name for name in pq.read_schema(path).names if name != "pos"]


class PartitionWriter:
    """Buffers the rows of one (chrom, strand) partition and writes fixed-size row groups.

    Rolls over to a new ``part-NNNNN.parquet`` every ``rows_per_file`` rows.
    """

    def __init__(
        self,
        directory: Path,
        schema: pa.Schema,
        row_group_rows: int = ROW_GROUP_ROWS,
        rows_per_file: int = ROWS_PER_FILE,
        floats: FloatEncoding = "dictionary",
    ) -> None:
        self.directory = directory
        self.floats = floats
        self.schema = schema
        self.row_group_rows = row_group_rows
        self.rows_per_file = max(rows_per_file, row_group_rows)
        self.buffer: list[np.ndarray] = []
        self.buffered = 0
        self.rows = 0
        self._file_rows = 0
        self._part = 0
        self._writer: pq.ParquetWriter | None = None
        directory.mkdir(parents=True, exist_ok=True)

    def add(self, block: np.ndarray) -> None:
        """``block``: float64 ``[n, 1 + C]`` with pos in column 0, increasing."""
        self.buffer.append(block)
        self.buffered += len(block)
        while self.buffered >= self.row_group_rows:
            self._flush(self.row_group_rows)

    def close(self) -> None:
        if self.buffered:
            self._flush(self.buffered)
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self.rows == 0:  # a partition without positions leaves no empty directory behind
            self.directory.rmdir()
            if not any(self.directory.parent.iterdir()):
                self.directory.parent.rmdir()

    def _flush(self, n: int) -> None:
        data = np.concatenate(self.buffer) if len(self.buffer) > 1 else self.buffer[0]
        head, rest = data[:n], data[n:]
        self.buffer = [rest] if len(rest) else []
        self.buffered = len(rest)
        columns = [pa.array(head[:, 0].astype(np.int64))]
        columns += [pa.array(head[:, j].astype(np.float32)) for j in range(1, head.shape[1])]
        writer = self._writer
        if writer is None or self._file_rows >= self.rows_per_file:
            writer = self._open_next()
        table = pa.Table.from_arrays(columns, schema=self.schema)
        writer.write_table(table, row_group_size=n)
        self._file_rows += n
        self.rows += n

    def _open_next(self) -> pq.ParquetWriter:
        if self._writer is not None:
            self._writer.close()
        path = self.directory / f"part-{self._part:05d}.parquet"
        self._writer = parquet_writer(path, self.schema, self.floats)
        self._part += 1
        self._file_rows = 0
        return self._writer
