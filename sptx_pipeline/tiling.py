"""The ``tile`` stage: cut the fixed genome tile grid into token windows.

Tile ``k`` of a chromosome has target ``[k*T, (k+1)*T)`` and window ``[k*T - F, (k+1)*T + F)``;
it is scored on strand ``s`` when its target overlaps a region on ``s`` (DESIGN.md, "The tile
grid"). Windows are written shard by shard, so memory is bounded by one shard, and each shard reads
one contiguous FASTA span per run of consecutive tiles.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyfaidx
from numpy.lib.stride_tricks import sliding_window_view

from . import store
from .atomic import atomic_path, remove_stale
from .errors import InputError
from .genome import (
    contig_lengths,
    fetch_tokens,
    merge_intervals,
    open_fasta,
    replaced_letters,
    reverse_complement,
)
from .options import DEFAULT_SHARD_SIZE
from .provenance import package_provenance, sha256_file
from .results import write_table

log = logging.getLogger(__name__)

WINDOW_COLUMNS = ["window", "chrom", "strand", "tile", "target_start", "target_end", "shard"]


def tiles_for_regions(starts: np.ndarray, ends: np.ndarray, chunk_size: int) -> np.ndarray:
    """Sorted unique tile indices whose target overlaps any ``[start, end)`` interval."""
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    if starts.size == 0:
        return np.empty(0, dtype=np.int64)
    first = starts // chunk_size
    last = (ends - 1) // chunk_size
    counts = last - first + 1
    # concatenated aranges first[i]..last[i] without a Python loop
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.unique(np.repeat(first, counts) + offsets)


def window_table(
    regions: pd.DataFrame, contig_order: list[str], chunk_size: int, shard_size: int
) -> pd.DataFrame:
    """One row per window, ordered by chrom (FASTA order), strand (+ then -), tile."""
    parts = []
    for chrom in contig_order:
        on_chrom = regions[regions["chrom"] == chrom]
        for strand in ("+", "-"):
            sel = on_chrom[on_chrom["strand"] == strand]
            tiles = tiles_for_regions(sel["start"].to_numpy(), sel["end"].to_numpy(), chunk_size)
            if tiles.size:
                parts.append(
                    pd.DataFrame(
                        {
                            "chrom": chrom,
                            "strand": strand,
                            "tile": tiles,
                            "target_start": tiles * chunk_size,
                            "target_end": (tiles + 1) * chunk_size,
                        }
                    )
                )
    if not parts:
        raise InputError("no windows: the regions table is empty")
    table = pd.concat(parts, ignore_index=True)
    table.insert(0, "window", np.arange(len(table), dtype=np.int64))
    table["shard"] = table["window"] // shard_size
    return table[WINDOW_COLUMNS]


def _runs(rows: pd.DataFrame) -> Iterator[pd.DataFrame]:
    """Split windows into runs of consecutive tiles on the same chrom and strand."""
    tile = rows["tile"].to_numpy()
    new_run = np.ones(len(rows), dtype=bool)
    new_run[1:] = (
        (tile[1:] != tile[:-1] + 1)
        | (rows["chrom"].to_numpy()[1:] != rows["chrom"].to_numpy()[:-1])
        | (rows["strand"].to_numpy()[1:] != rows["strand"].to_numpy()[:-1])
    )
    bounds = np.flatnonzero(new_run).tolist() + [len(rows)]
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=False):
        yield rows.iloc[lo:hi]


def shard_tokens(
    fasta: pyfaidx.Fasta, lengths: dict[str, int], rows: pd.DataFrame, flank: int
) -> np.ndarray:
    """Tokens ``[len(rows), T + 2F]`` of ``rows``; minus-strand windows reverse-complemented."""
    chunk_size = int(rows["target_end"].iloc[0] - rows["target_start"].iloc[0])
    length = chunk_size + 2 * flank
    out = np.empty((len(rows), length), dtype=np.uint8)
    row = 0
    for run in _runs(rows):
        chrom, strand = run["chrom"].iloc[0], run["strand"].iloc[0]
        start = int(run["target_start"].iloc[0]) - flank
        end = int(run["target_end"].iloc[-1]) + flank
        span = fetch_tokens(fasta, chrom, start, end, lengths)
        windows = sliding_window_view(span, length)[::chunk_size]
        if strand == "-":
            windows = reverse_complement(windows)
        out[row : row + len(run)] = windows
        row += len(run)
    return out


def log_replaced_letters(
    fasta: pyfaidx.Fasta, lengths: dict[str, int], table: pd.DataFrame, flank: int
) -> None:
    """Warn, per contig, how many bases of which non-ACGTN letters the windows read as N.

    Counted once per base over the union of the windows' spans (target plus flanks), so bases
    shared by overlapping windows or by both strands count once.
    """
    for chrom, rows in table.groupby("chrom", sort=False, observed=True):
        starts = np.maximum(rows["target_start"].to_numpy() - flank, 0)
        ends = np.minimum(rows["target_end"].to_numpy() + flank, lengths[chrom])
        letters = replaced_letters(fasta, chrom, merge_intervals(starts, ends))
        if letters:
            log.warning(
                "%s: %d bases read as N that are not A, C, G, T or N: %s",
                chrom,
                sum(letters.values()),
                ", ".join(f"{letter} {count}" for letter, count in letters.items()),
            )


def tile(
    fasta: str | os.PathLike,
    regions: str | os.PathLike,
    out_zarr: str | os.PathLike,
    out_parquet: str | os.PathLike,
    flank: int,
    chunk_size: int,
    shard_size: int = DEFAULT_SHARD_SIZE,
) -> pd.DataFrame:
    """Run the tile stage; returns the windows table it wrote.

    Both outputs are written under temporary names and renamed at the end, so a failed run never
    leaves a store that looks complete.
    """
    if flank < 0 or chunk_size < 1 or shard_size < 1:
        raise InputError(
            f"need flank >= 0, chunk_size >= 1, shard_size >= 1; got {flank}, {chunk_size}, "
            f"{shard_size}"
        )
    handle = open_fasta(fasta)
    lengths = contig_lengths(handle)
    region_table = pd.read_parquet(regions)
    unknown = sorted(set(region_table["chrom"]) - set(lengths))
    if unknown:
        raise InputError(
            f"{regions} has contigs that are not in {fasta}: {', '.join(unknown)}; "
            "rerun the genes stage with this FASTA"
        )
    table = window_table(region_table, list(lengths), chunk_size, shard_size)
    log.info(
        "%d windows (T=%d, flank=%d) in %d shards of %d",
        len(table),
        chunk_size,
        flank,
        store.n_shards(len(table), shard_size),
        shard_size,
    )
    log_replaced_letters(handle, lengths, table, flank)
    remove_stale(out_zarr, out_parquet)
    genome = {"fasta": str(Path(fasta).resolve()), "fasta_sha256": sha256_file(fasta)}
    with atomic_path(out_zarr) as tmp_zarr:
        _write_store(handle, lengths, table, tmp_zarr, genome, flank, chunk_size, shard_size)
        geometry = {"flank": flank, "chunk_size": chunk_size, "shard_size": shard_size}
        metadata = {key.encode(): str(value).encode() for key, value in geometry.items()}
        write_table(table, out_parquet, genome, metadata)
    return table


def _write_store(
    handle: pyfaidx.Fasta,
    lengths: dict[str, int],
    table: pd.DataFrame,
    path: Path,
    genome: dict[str, Any],
    flank: int,
    chunk_size: int,
    shard_size: int,
) -> None:
    attrs = {
        "flank": flank,
        "chunk_size": chunk_size,
        "shard_size": shard_size,
        **genome,
        "n_windows": len(table),
        **package_provenance(),
    }
    tokens = store.create_windows(path, len(table), chunk_size + 2 * flank, shard_size, attrs)
    try:
        for shard in store.shard_grid(len(table), shard_size):
            rows = table.iloc[shard.start : shard.stop]
            tokens[shard.start : shard.stop] = shard_tokens(handle, lengths, rows, flank)
    except BaseException:  # a signal: let the write in flight land before the store is removed
        store.finish_pending_io()
        raise
