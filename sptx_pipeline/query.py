"""Region queries over ``scores/`` with DuckDB.

A region is ``chrom:start-end`` (1-based, inclusive, commas allowed), a bare contig, or a gene
name or id from ``genes.parquet``. Only the files of the region's ``chrom=<c>/strand=<s>``
partitions are opened (pruning through the path), and the ``pos`` range is a filter that DuckDB
pushes into the Parquet reader, which skips row groups by their ``pos`` statistics.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from .annotation import strip_version
from .atomic import atomic_path
from .errors import InputError, MissingInputError
from .options import DEFAULT_QUERY_TABLE_MAX_ROWS, QUERY_FORMATS, QueryFormat, check_choice
from .results import (
    SCORES_PARTITIONING,
    STRAND_DIR,
    channels_of,
    partitions,
    scores_path,
    site_channels,
)

log = logging.getLogger(__name__)

ID_COLUMNS = ["chrom", "pos", "strand"]
_RANGE = re.compile(r"^(?P<chrom>.+):(?P<start>[\d,]+)(?:-(?P<end>[\d,]+))?$")
_INT64_MAX = 2**63 - 1
BATCH_ROWS = 1 << 17  # rows per batch streamed to CSV, TSV or Parquet


@dataclass(frozen=True)
class Region:
    """1-based inclusive interval; ``strand`` None means both strands."""

    chrom: str
    start: int
    end: int
    strand: str | None = None
    label: str = ""


def parse_region(
    text: str, contigs: set[str], genes_parquet: str | os.PathLike | None = None
) -> Region:
    """A :class:`Region` from ``chrom:start-end``, ``chrom:pos``, a bare contig, or a gene
    name/id."""
    text = text.strip()
    if text in contigs:
        return Region(text, 1, _INT64_MAX, None, text)
    match = _RANGE.match(text)
    if match:
        chrom = match["chrom"]
        start = int(match["start"].replace(",", ""))
        end = int(match["end"].replace(",", "")) if match["end"] else start
        if start < 1:
            raise InputError(f"region {text!r}: positions are 1-based, start must be >= 1")
        if start > end:
            raise InputError(f"region {text!r} is reversed (start {start:,} > end {end:,})")
        _check_contig(chrom, contigs)
        return Region(chrom, start, end, None, text)
    if ":" in text or not text:
        raise InputError(
            f"malformed region {text!r}: use chrom:start-end (1-based, inclusive, "
            "e.g. chr19:1,206,000-1,210,000), a contig name, or a gene name or id"
        )
    return gene_region(text, contigs, genes_parquet)


def gene_region(name: str, contigs: set[str], genes_parquet: str | os.PathLike | None) -> Region:
    """The body of a gene given by id (with or without version) or name, on its own strand."""
    if genes_parquet is None or not Path(genes_parquet).exists():
        raise InputError(
            f"{name!r} is not a contig with scores ({_shown(contigs)}) and there is no "
            "genes.parquet to look it up as a gene"
        )
    genes = pd.read_parquet(
        genes_parquet, columns=["gene_id", "gene_name", "chrom", "start", "end", "strand"]
    )
    unversioned = strip_version(genes["gene_id"].astype(str))
    hit = genes[(genes["gene_id"] == name) | (unversioned == name) | (genes["gene_name"] == name)]
    if hit.empty:
        raise InputError(
            f"unknown contig or gene {name!r}: not a contig with scores ({_shown(contigs)}) "
            f"and not a gene id or name in {genes_parquet}"
        )
    if len(hit) > 1:
        raise InputError(
            f"gene name {name!r} is ambiguous ({', '.join(hit['gene_id'].astype(str))}); "
            "use the gene id"
        )
    gene = hit.iloc[0]
    _check_contig(str(gene["chrom"]), contigs)
    label = f"{gene['gene_name']} ({gene['gene_id']})"
    return Region(str(gene["chrom"]), int(gene["start"]), int(gene["end"]), gene["strand"], label)


def _check_contig(chrom: str, contigs: set[str]) -> None:
    if chrom not in contigs:
        raise InputError(f"unknown contig {chrom!r}: contigs with scores are {_shown(contigs)}")


def _shown(names: set[str], limit: int = 20) -> str:
    ordered = sorted(names)
    more = f", ... ({len(ordered)} in all)" if len(ordered) > limit else ""
    return ", ".join(ordered[:limit]) + more


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def resolve(
    results_dir: str | os.PathLike, region: str | Region, strand: str | None = None
) -> tuple[Region, dict[tuple[str, str], list[str]]]:
    """The parsed region (strand applied) and the partitions of ``scores/``."""
    results_dir = Path(results_dir)
    parts = partitions(scores_path(results_dir))
    if not parts:
        raise MissingInputError(f"no Parquet files under {scores_path(results_dir)}")
    if strand not in (None, "+", "-"):
        raise InputError(f"strand must be '+' or '-', not {strand!r}")
    if not isinstance(region, Region):
        contigs = {chrom for chrom, _ in parts}
        region = parse_region(region, contigs, results_dir / "genes.parquet")
    if strand is not None:
        region = Region(region.chrom, region.start, region.end, strand, region.label)
    return region, parts


def query_sql(
    results_dir: str | os.PathLike,
    region: str | Region,
    strand: str | None = None,
    columns: list[str] | None = None,
    min_score: float | None = None,
) -> tuple[str | None, list[str]]:
    """The DuckDB query of :func:`query` and its output columns (``None``: no partition)."""
    region, parts = resolve(results_dir, region, strand)
    strands = [region.strand] if region.strand else ["+", "-"]
    selected = [(s, parts[(region.chrom, s)]) for s in strands if (region.chrom, s) in parts]
    if not selected:
        log.warning("no scores on %s strand %s", region.chrom, region.strand)
        first = next(iter(parts.values()))
        return None, ID_COLUMNS + (columns or channels_of(first[0]))
    channels = channels_of(selected[0][1][0])
    wanted = _select_columns(columns, channels)
    where = f"pos BETWEEN {int(region.start)} AND {int(region.end)}"
    if min_score is not None:
        scored_by = [c for group in site_channels(channels).values() for c in group]
        if not scored_by:
            raise InputError(
                "min_score needs acceptor and donor (or <tissue>_p_splice) columns; "
                f"the scores have {channels}"
            )
        score = float(min_score)
        where += " AND (" + " OR ".join(f"{_ident(c)} >= {score!r}" for c in scored_by) + ")"
    selects = [
        f"SELECT {_sql_str(region.chrom)} AS chrom, pos, {_sql_str(s)} AS strand"
        + "".join(f", {_ident(c)}" for c in wanted)
        + f" FROM read_parquet([{', '.join(map(_sql_str, files))}]) WHERE {where}"
        for s, files in selected
    ]
    return " UNION ALL ".join(selects) + " ORDER BY pos, strand", ID_COLUMNS + wanted


def query(
    results_dir: str | os.PathLike,
    region: str | Region,
    strand: str | None = None,
    columns: list[str] | None = None,
    min_score: float | None = None,
    connection: duckdb.DuckDBPyConnection | None = None,
) -> pd.DataFrame:
    """Scores in ``region`` as a DataFrame ``chrom, pos, strand, <channels>`` sorted by pos.

    ``strand`` ('+'/'-') overrides a gene's strand; without one a coordinate region returns both
    strands. ``min_score`` keeps rows whose acceptor or donor probability (Pangolin: any
    tissue's P(splice)) reaches it.
    """
    sql, names = query_sql(results_dir, region, strand, columns, min_score)
    if sql is None:
        return pd.DataFrame(columns=names)
    con = connection or duckdb.connect()
    try:
        frame = con.execute(sql).fetchdf()
    finally:
        if connection is None:
            con.close()
    return frame


def read_scores(
    results_dir: str | os.PathLike,
    chrom: str | None = None,
    strand: str | None = None,
    start: int | None = None,
    end: int | None = None,
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """``scores/`` as a pandas DataFrame, filtered while reading; ``chrom`` stays text.

    ``strand``: ``+``/``-`` (or the directory names ``plus``/``minus``); ``start``/``end``:
    1-based inclusive bounds on ``pos``; ``columns``: channels to read (default all). Works for
    any contig naming, numeric (``19``) included, which plain ``pd.read_parquet`` filters do not.
    """
    filters: list[tuple[str, str, str | int]] = []
    if chrom is not None:
        filters.append(("chrom", "=", str(chrom)))
    if strand is not None:
        filters.append(("strand", "=", STRAND_DIR.get(strand, strand)))
    if start is not None:
        filters.append(("pos", ">=", int(start)))
    if end is not None:
        filters.append(("pos", "<=", int(end)))
    wanted = None if columns is None else ["pos", *columns, "chrom", "strand"]
    return pd.read_parquet(
        scores_path(results_dir),
        partitioning=SCORES_PARTITIONING,
        filters=filters or None,
        columns=wanted,
    )


def export(
    results_dir: str | os.PathLike,
    region: str | Region,
    fmt: QueryFormat,
    output: str | os.PathLike | None = None,
    strand: str | None = None,
    columns: list[str] | None = None,
    min_score: float | None = None,
    max_table_rows: int = DEFAULT_QUERY_TABLE_MAX_ROWS,
) -> int:
    """Write the rows of :func:`query` as ``fmt`` to ``output`` (standard output if None)
    without holding them all: CSV, TSV and Parquet are written batch by batch as DuckDB
    produces them; the aligned table refuses more than ``max_table_rows`` rows (a table that
    size is read by a program, not a person). Returns the number of rows written."""
    check_choice("format", fmt, QUERY_FORMATS)
    if fmt == "parquet" and output is None:
        raise InputError("parquet output needs a file: pass -o/--output")
    sql, names = query_sql(results_dir, region, strand, columns, min_score)
    if sql is None:
        frame = pd.DataFrame(columns=names)
        write_result(frame, fmt, output)
        return 0
    con = duckdb.connect()
    try:
        if fmt == "table":
            frame = con.execute(f"{sql} LIMIT {int(max_table_rows) + 1}").fetchdf()
            if len(frame) > max_table_rows:
                raise InputError(
                    f"the query returns more than {max_table_rows:,} rows, too many for the "
                    "table format: write them with --format csv, tsv or parquet (-o FILE), "
                    "narrow the region, or raise --max-rows"
                )
            write_result(frame, fmt, output)
            return len(frame)
        reader = con.sql(sql).to_arrow_reader(BATCH_ROWS)
        return _write_batches(reader, fmt, output)
    finally:
        con.close()


def _write_batches(reader: pa.RecordBatchReader, fmt: QueryFormat, output: Any) -> int:
    """Stream ``reader``'s batches into a CSV/TSV (file or standard output) or Parquet file."""
    rows = 0
    if fmt == "parquet":
        with atomic_path(output) as tmp, pq.ParquetWriter(tmp, reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch)
                rows += len(batch)
        return rows
    options = pa_csv.WriteOptions(
        delimiter="," if fmt == "csv" else "\t", quoting_style="none", quoting_header="none"
    )
    sink = pa.output_stream(str(output)) if output is not None else sys.stdout.buffer
    with pa_csv.CSVWriter(sink, reader.schema, write_options=options) as writer:
        for batch in reader:
            writer.write_batch(batch)
            rows += len(batch)
    if output is not None:
        sink.close()
    else:
        sys.stdout.flush()
    return rows


def _select_columns(columns: list[str] | None, channels: list[str]) -> list[str]:
    if not columns:
        return channels
    wanted = [c for c in columns if c not in ID_COLUMNS]
    unknown = [c for c in wanted if c not in channels]
    if unknown:
        raise InputError(f"unknown column(s) {unknown}; available: {', '.join(channels)}")
    return wanted


def write_result(
    frame: pd.DataFrame, fmt: QueryFormat, output: str | os.PathLike | None = None
) -> None:
    """Write a query result as an aligned table, CSV, TSV or Parquet (file or standard output)."""
    check_choice("format", fmt, QUERY_FORMATS)
    if fmt == "parquet":
        if output is None:
            raise InputError("parquet output needs a file: pass -o/--output")
        frame.to_parquet(output, index=False)
        return
    if fmt == "table":
        text = frame.to_string(index=False, float_format=lambda v: f"{v:.4f}") if len(frame) else ""
        text = (text or "(no rows)") + "\n"
    else:
        text = frame.to_csv(index=False, sep="," if fmt == "csv" else "\t")
    if output is None:
        sys.stdout.write(text)
    else:
        Path(output).write_text(text)
