"""Merge per-window predictions into the user-facing ``scores/`` dataset and ``sites.parquet``.

Each (chrom, strand) partition is a contiguous range of windows in store order (chrom, strand,
tile); it is merged on its own, one prediction shard at a time, so memory is bounded by a shard
plus one row-group buffer, never by a chromosome, and partitions can be merged in parallel
processes (``workers``) with the same output. Each window
contributes the positions of its target that lie inside the selected gene bodies of its
chrom/strand; index ``i`` of a window is genomic 0-based ``target_start + i`` on ``+`` and
``target_end - 1 - i`` on ``-``. Outputs are written under temporary names and renamed at the end,
so a failed merge leaves nothing that looks complete.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pandas as pd
import pyarrow as pa
import zarr

from . import store
from .atomic import atomic_path, remove_stale
from .channels import SPLICE_CHANNELS
from .errors import (
    DamagedShardError,
    IncompletePredictionsError,
    InputError,
    InputMismatchError,
)
from .lock import holds_store_lock
from .options import DEFAULT_SITES_MIN_SCORE
from .processes import map_largest_first
from .provenance import package_provenance
from .results import (
    ROW_GROUP_ROWS,
    ROWS_PER_FILE,
    STRAND_DIR,
    FloatEncoding,
    PartitionWriter,
    float_encoding,
    parquet_writer,
    partition_dir,
    provenance_metadata,
    read_provenance,
    scores_schema,
    site_channels,
    sites_schema,
)

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- positions


def target_positions(
    target_start: int, target_end: int, starts: np.ndarray, ends: np.ndarray
) -> np.ndarray:
    """0-based genomic positions of ``[target_start, target_end)`` inside the sorted, disjoint
    intervals ``[starts, ends)``, increasing."""
    lo = np.searchsorted(ends, target_start, side="right")
    hi = np.searchsorted(starts, target_end, side="left")
    pieces = [
        np.arange(max(s, target_start), min(e, target_end), dtype=np.int64)
        for s, e in zip(starts[lo:hi], ends[lo:hi], strict=True)
    ]
    return np.concatenate(pieces) if pieces else np.empty(0, dtype=np.int64)


def window_rows(
    probabilities: np.ndarray, strand: str, target_start: int, target_end: int, genomic: np.ndarray
) -> np.ndarray:
    """Rows ``[pos (1-based), channels...]`` for a window's in-region positions ``genomic``."""
    index = genomic - target_start if strand == "+" else target_end - 1 - genomic
    values = probabilities[index].astype(np.float64)
    return np.column_stack([genomic + 1, values])


def _regions_by_partition(regions: pd.DataFrame) -> dict[tuple[str, str], tuple]:
    out = {}
    for (chrom, strand), group in regions.groupby(["chrom", "strand"], sort=False):
        group = group.sort_values("start")
        starts = group["start"].to_numpy(np.int64)
        ends = group["end"].to_numpy(np.int64)
        if len(starts) > 1 and np.any(starts[1:] < ends[:-1]):
            raise InputError(f"regions.parquet: overlapping regions on {chrom} {strand}")
        out[(str(chrom), str(strand))] = (starts, ends)
    return out


# --------------------------------------------------------------------------- sites


@dataclass
class SiteFinder:
    """Turns score rows into ``sites.parquet`` rows: positions whose site score reaches the
    threshold, per site type of :func:`~.results.site_channels` (acceptor/donor; Pangolin:
    ``splice``, scored by the largest P(splice) over tissues)."""

    channels: list[str]
    genes: pd.DataFrame
    min_score: float
    tissues: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.site_types = site_channels(self.channels)
        if not self.site_types:
            raise InputError(
                "predictions have neither acceptor and donor nor <tissue>_p_splice channels: "
                f"{self.channels}"
            )
        self.tissues = [c for c in self.channels if c not in SPLICE_CHANNELS]
        self._genes = {
            key: (
                g["start"].to_numpy(np.int64),
                g["end"].to_numpy(np.int64),
                g["gene_id"].astype(str).to_numpy(),
            )
            for key, g in self.genes.groupby(["chrom", "strand"], sort=False)
        }

    def table(self, chrom: str, strand: str, rows: np.ndarray) -> pa.Table | None:
        """Sites among ``rows`` (``[pos, channels...]``), ordered by pos, acceptor before donor."""
        col = {name: j + 1 for j, name in enumerate(self.channels)}
        parts = []
        for site_type, scored_by in self.site_types.items():
            site_score = rows[:, [col[c] for c in scored_by]].max(axis=1)
            hit = site_score >= self.min_score
            if hit.any():
                parts.append((site_type, rows[hit], site_score[hit]))
        if not parts:
            return None
        pos = np.concatenate([r[:, 0] for _, r, _ in parts]).astype(np.int64)
        score = np.concatenate([s for _, _, s in parts]).astype(np.float32)
        kind = np.concatenate([np.full(len(r), t, dtype=object) for t, r, _ in parts])
        tissue = {t: np.concatenate([r[:, col[t]] for _, r, _ in parts]) for t in self.tissues}
        order = np.argsort(pos, kind="stable")
        pos = pos[order]
        columns: dict[str, Any] = {
            "chrom": pa.array(np.full(len(pos), chrom, dtype=object), pa.string()),
            "pos": pa.array(pos),
            "strand": pa.array(np.full(len(pos), strand, dtype=object), pa.string()),
            "site_type": pa.array(kind[order], pa.string()),
            "score": pa.array(score[order]),
        }
        for t in self.tissues:
            columns[t] = pa.array(tissue[t][order].astype(np.float32))
        columns["gene_ids"] = pa.array(self._gene_ids(chrom, strand, pos), pa.list_(pa.string()))
        return pa.Table.from_pydict(columns, schema=sites_schema(self.tissues))

    def _gene_ids(self, chrom: str, strand: str, pos: np.ndarray) -> list[list[str]]:
        """Selected genes on this strand whose 1-based inclusive body contains each ``pos``."""
        ids: list[list[str]] = [[] for _ in range(len(pos))]
        if (chrom, strand) not in self._genes:
            return ids
        starts, ends, gene_ids = self._genes[(chrom, strand)]
        lo = np.searchsorted(pos, starts, side="left")
        hi = np.searchsorted(pos, ends, side="right")
        for g in np.flatnonzero(hi > lo):
            for i in range(lo[g], hi[g]):
                ids[i].append(gene_ids[g])
        return ids


# --------------------------------------------------------------------------- merge


def _group_attrs(path: str | os.PathLike) -> dict[str, Any]:
    return dict(zarr.open_group(str(path), mode="r").attrs)


def _check_windows(windows: pd.DataFrame, n_windows: int, chunk_size: int) -> None:
    if len(windows) != n_windows:
        raise InputMismatchError(
            f"windows.parquet has {len(windows)} rows but predictions.zarr has {n_windows} "
            "windows; they come from different runs"
        )
    if not np.array_equal(windows["window"].to_numpy(), np.arange(len(windows))):
        raise InputError("windows.parquet: `window` must be 0..n-1 in store order")
    lengths = set((windows["target_end"] - windows["target_start"]).unique().tolist())
    if lengths - {chunk_size}:
        raise InputMismatchError(
            f"windows.parquet targets have lengths {sorted(lengths)} but predictions.zarr holds "
            f"{chunk_size} positions per window; they come from different runs"
        )
    bad = set(windows["strand"].unique()) - set(STRAND_DIR)
    if bad:
        raise InputError(f"windows.parquet: unknown strand values {sorted(bad)}")


def _run_provenance(
    predictions_zarr: str | os.PathLike,
    channels: list[str],
    provenance: dict | None,
    windows_parquet: str | os.PathLike,
    genes_parquet: str | os.PathLike,
) -> dict[bytes, bytes]:
    attrs = _group_attrs(predictions_zarr)
    record = {
        "run": provenance or {},
        "genome": read_provenance(windows_parquet),
        "annotation": read_provenance(genes_parquet),
        "model": attrs.get("model", {}),
        "channels": channels,
        "chunk_size": attrs.get("chunk_size"),
        "software": package_provenance(),
    }
    return provenance_metadata(record)


@holds_store_lock("predictions_zarr", purpose="merge")  # it may clear damaged shards' markers
def merge(
    windows_parquet: str | os.PathLike,
    predictions_zarr: str | os.PathLike,
    regions_parquet: str | os.PathLike,
    genes_parquet: str | os.PathLike,
    scores_dir: str | os.PathLike,
    sites_parquet: str | os.PathLike,
    sites_min_score: float = DEFAULT_SITES_MIN_SCORE,
    provenance: dict[str, Any] | None = None,
    row_group_rows: int = ROW_GROUP_ROWS,
    rows_per_file: int = ROWS_PER_FILE,
    predictions_summary: str | os.PathLike | None = None,
    workers: int = 1,
    delete_predictions: bool = False,
) -> dict[tuple[str, str], int]:
    """Write ``scores/`` and ``sites.parquet``; return the row count per (chrom, strand).

    Each (chrom, strand) partition is merged on its own; ``workers`` > 1 merges that many at
    once in separate processes. The output does not depend on ``workers``.
    Every shard is checked against its done marker as it is read. A missing or damaged shard
    stops the merge with an error naming it, after removing the damaged shards' markers and
    ``predictions_summary`` (predict's ``predictions.json``), so that running the same command
    again makes ``predict`` recompute just those shards.
    ``delete_predictions`` removes ``predictions_zarr`` once both outputs are in place (it is
    then only needed to merge again; the workflow re-runs predict in that case).
    """
    if workers < 1:
        raise InputError(f"workers must be at least 1, got {workers}")
    try:
        store.missing_shards(predictions_zarr, check=True)
    except IncompletePredictionsError as err:
        _refuse(str(err).partition("; run ")[0], predictions_summary)
    probabilities = store.open_predictions(predictions_zarr)
    attrs = _group_attrs(predictions_zarr)
    channels = list(attrs["channels"])
    windows = pd.read_parquet(windows_parquet)
    _check_windows(windows, probabilities.shape[0], probabilities.shape[1])
    ranges = partition_ranges(windows)
    regions = _regions_by_partition(pd.read_parquet(regions_parquet))
    finder = SiteFinder(channels, pd.read_parquet(genes_parquet), sites_min_score)
    metadata = _run_provenance(
        predictions_zarr, channels, provenance, windows_parquet, genes_parquet
    )

    remove_stale(scores_dir, sites_parquet)
    with atomic_path(scores_dir) as tmp_scores, atomic_path(sites_parquet) as tmp_sites:
        tmp_scores.mkdir()
        job = _MergeJob(
            predictions=str(predictions_zarr),
            shard_size=int(attrs["shard_size"]),
            finder=finder,
            schema=scores_schema(channels, metadata),
            scores_dir=tmp_scores,
            row_group_rows=row_group_rows,
            rows_per_file=rows_per_file,
            floats=float_encoding(str(probabilities.dtype)),
        )
        sites_out = SitesWriter(tmp_sites, finder.tissues, metadata, row_group_rows)
        counts: dict[tuple[str, str], int] = {}
        starts = windows["target_start"].to_numpy(np.int64)
        ends = windows["target_end"].to_numpy(np.int64)
        parts = [
            Partition(key, lo, hi, starts[lo:hi], ends[lo:hi], regions.get(key, _EMPTY))
            for key, lo, hi in ranges
        ]
        try:
            task = functools.partial(merge_partition, job)
            sizes = [part.hi - part.lo for part in parts]
            for key, rows, sites in map_largest_first(task, parts, sizes, workers):
                counts[key] = rows
                sites_out.add(sites)
        except DamagedShardError as first:
            damaged = [first, *_damaged_after(predictions_zarr, probabilities, first.shard)]
            for shard in damaged:
                store.clear_done(predictions_zarr, shard.shard)
            more = f" (and {len(damaged) - 5} more shards)" if len(damaged) > 5 else ""
            _refuse("; ".join(map(str, damaged[:5])) + more, predictions_summary, cleared=True)
        finally:
            sites_out.close()
    counts = {k: v for k, v in counts.items() if v}
    log.info(
        "merged %d positions in %d partitions into %s",
        sum(counts.values()),
        len(counts),
        scores_dir,
    )
    if delete_predictions:
        store.remove_store(predictions_zarr)
        log.info("deleted %s (delete_predictions)", predictions_zarr)
    return counts


def _verified_shard(
    path: str | os.PathLike, probabilities: zarr.Array, shard: int, lo: int, hi: int
) -> np.ndarray:
    """The values of a shard, checked against the SHA-256 in its done marker."""
    values, problem = store.read_verified(
        probabilities, lo, hi, store.read_marker(path, shard) or {}
    )
    if problem is not None or values is None:
        raise DamagedShardError(path, shard, lo, hi, problem or "unreadable")
    return values


def _damaged_after(
    path: str | os.PathLike, probabilities: zarr.Array, first: int
) -> list[DamagedShardError]:
    """Every other damaged shard after ``first``, so that one re-run repairs them all."""
    shard_size = int(_group_attrs(path)["shard_size"])
    damaged = []
    for shard in store.shard_grid(probabilities.shape[0], shard_size):
        if shard.index > first:
            try:
                _verified_shard(path, probabilities, shard.index, shard.start, shard.stop)
            except DamagedShardError as err:
                damaged.append(err)
    return damaged


def _refuse(
    problem: str, predictions_summary: str | os.PathLike | None, cleared: bool = False
) -> NoReturn:
    """Stop the merge with advice that works: remove predict's summary, so that the same
    command runs predict again (Snakemake re-runs a job whose output is missing)."""
    removed = ["their done markers"] if cleared else []
    if predictions_summary is not None:
        Path(predictions_summary).unlink(missing_ok=True)
        removed.append(str(predictions_summary))
        advice = (
            "so predict recomputes just those shards: run the same command again "
            "(e.g. `snakemake --cores all`)"
        )
    else:
        advice = "run `sptx predict` again with the same arguments, then merge"
        advice = f"so {advice}" if removed else advice
    if removed:
        advice = f"Removed {' and '.join(removed)}, {advice}"
    raise IncompletePredictionsError(f"{problem}. {advice[0].upper()}{advice[1:]}")


def partition_ranges(windows: pd.DataFrame) -> list[tuple[tuple[str, str], int, int]]:
    """``((chrom, strand), first window, stop window)`` of each partition, in store order.

    Refuses a table whose partitions are not contiguous or whose tiles overlap or go back.
    """
    if windows.empty:
        return []
    chroms = windows["chrom"].astype(str).to_numpy()
    strands = windows["strand"].astype(str).to_numpy()
    starts = windows["target_start"].to_numpy(np.int64)
    ends = windows["target_end"].to_numpy(np.int64)
    change = np.flatnonzero((chroms[1:] != chroms[:-1]) | (strands[1:] != strands[:-1])) + 1
    bounds = [0, *change.tolist(), len(windows)]
    out: list[tuple[tuple[str, str], int, int]] = []
    seen: set[tuple[str, str]] = set()
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        key = (str(chroms[lo]), str(strands[lo]))
        if key in seen:
            raise InputError(f"windows.parquet is not ordered: {key} appears twice")
        seen.add(key)
        back = np.flatnonzero(starts[lo + 1 : hi] < ends[lo : hi - 1])
        if len(back):
            w = lo + 1 + int(back[0])
            raise InputError(
                f"windows.parquet: window {w} ({key}) overlaps or precedes the previous "
                "window; tiles must be unique and increasing"
            )
        out.append((key, lo, hi))
    return out


@dataclass(frozen=True)
class _MergeJob:
    """What merging one partition needs; picklable, for the worker processes."""

    predictions: str
    shard_size: int
    finder: SiteFinder
    schema: pa.Schema
    scores_dir: Path
    row_group_rows: int
    rows_per_file: int
    floats: FloatEncoding


@dataclass(frozen=True)
class Partition:
    """Windows ``lo``..``hi - 1`` of one (chrom, strand), with their target starts and ends."""

    key: tuple[str, str]
    lo: int
    hi: int
    starts: np.ndarray
    ends: np.ndarray
    intervals: tuple[np.ndarray, np.ndarray]  # the partition's regions: sorted starts, ends


def merge_partition(
    job: _MergeJob, part: Partition
) -> tuple[tuple[str, str], int, pa.Table | None]:
    """Write the scores of one partition (windows ``lo``..``hi - 1``); returns its key, row
    count and sites. Reads one prediction shard at a time."""
    key, lo, hi = part.key, part.lo, part.hi
    probabilities = store.open_predictions(job.predictions)
    intervals = part.intervals
    writer = PartitionWriter(
        partition_dir(job.scores_dir, *key),
        job.schema,
        job.row_group_rows,
        job.rows_per_file,
        job.floats,
    )
    sites: list[pa.Table] = []
    first_shard, last_shard = lo // job.shard_size, (hi - 1) // job.shard_size
    n_windows = probabilities.shape[0]
    for shard in range(first_shard, last_shard + 1):
        s_lo, s_hi = shard * job.shard_size, min(n_windows, (shard + 1) * job.shard_size)
        a, b = max(lo, s_lo), min(hi, s_hi)
        # the whole shard is read to check it against its marker; a shard that two partitions
        # share is read by both
        block = _verified_shard(job.predictions, probabilities, shard, s_lo, s_hi)[a - s_lo :]
        found = []
        for w in range(a, b):
            start, end = int(part.starts[w - lo]), int(part.ends[w - lo])
            genomic = target_positions(start, end, *intervals)
            if not len(genomic):
                continue
            rows = window_rows(block[w - a], key[1], start, end, genomic)
            if np.isnan(rows[:, 1:]).any():
                raise DamagedShardError(
                    job.predictions, shard, s_lo, s_hi, f"window {w} has NaN values"
                )
            writer.add(rows)
            found.append(rows)
        if found:
            table = job.finder.table(key[0], key[1], np.concatenate(found))
            if table is not None:
                sites.append(table)
        log.debug("merged shard %d (windows %d-%d) of %s", shard, a, b - 1, key)
    writer.close()
    return key, writer.rows, pa.concat_tables(sites) if sites else None


class SitesWriter:
    """Writes the sites of the partitions, in the order given, in large row groups."""

    def __init__(
        self,
        path: Path,
        tissues: list[str],
        metadata: dict,
        row_group_rows: int = ROW_GROUP_ROWS,
    ) -> None:
        self.row_group_rows = row_group_rows
        self.writer = parquet_writer(path, sites_schema(tissues, metadata))
        self.tables: list[pa.Table] = []
        self.buffered = 0

    def add(self, table: pa.Table | None) -> None:
        if table is not None:
            self.tables.append(table)
            self.buffered += len(table)
        if self.buffered >= self.row_group_rows:
            self._flush()

    def close(self) -> None:
        self._flush()
        self.writer.close()

    def _flush(self) -> None:
        if self.tables:
            self.writer.write_table(pa.concat_tables(self.tables), self.row_group_rows)
        self.tables, self.buffered = [], 0


_EMPTY = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64))
