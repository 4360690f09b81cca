"""bigWig tracks from ``scores/``: one file per channel and strand (``acceptor.plus.bw``, ...).

Chromosome sizes come from the FASTA index (pyfaidx). Entries are written chromosome by
chromosome in FASTA order, sorted by position, one base each (adjacent positions with the same
value are merged into one entry), so they never overlap; the Parquet files are read in batches,
so memory stays bounded by a batch.

Values are rounded to multiples of ``2**-bits`` (default 10 bits: steps of 1/1024, at most
0.00049 from the Parquet value; ``bits=None`` keeps the float32 values exactly). A browser
cannot show more, and rounding turns the long stretches of near-0 or near-1 probabilities into
runs of equal values, which bigWig stores as one entry each: on SpliceAI's output the tracks
shrink several-fold (``benchmarks/bench_encodings.py``). pybigtools writes bedGraph sections
(one entry per run), its only section type.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pybigtools
import pyfaidx

from .atomic import atomic_path, remove_stale
from .errors import InputError, MissingInputError
from .hub import write_hub
from .options import DEFAULT_TRACKS_BITS
from .processes import map_largest_first
from .results import STRAND_DIR, channels_of, partitions, scores_path

log = logging.getLogger(__name__)

BATCH_ROWS = 1 << 20


def chrom_sizes(fasta: str | os.PathLike) -> dict[str, int]:
    """Contig lengths in FASTA order, from the ``.fai`` index (built if missing)."""
    with pyfaidx.Fasta(str(fasta), rebuild=False) as genome:
        return {name: len(genome[name]) for name in genome.keys()}


def track_name(channel: str, strand: str) -> str:
    return f"{channel}.{STRAND_DIR[strand]}.bw"


def runs(pos: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """bedGraph runs ``(start0, end0, value)`` merging adjacent positions of equal value."""
    if not len(pos):
        return pos, pos, values
    breaks = np.flatnonzero((np.diff(pos) != 1) | (values[1:] != values[:-1])) + 1
    first = np.concatenate([[0], breaks])
    last = np.concatenate([breaks - 1, [len(pos) - 1]])
    return pos[first] - 1, pos[last], values[first]


def rounded(values: np.ndarray, bits: int | None) -> np.ndarray:
    """float32 ``values`` rounded to the nearest multiple of ``2**-bits`` (as is when None)."""
    values = np.asarray(values, dtype=np.float32)
    if bits is None:
        return values
    scale = float(2**bits)
    return (np.round(values.astype(np.float64) * scale) / scale).astype(np.float32)


def _entries(
    files_by_chrom: dict[str, list[str]], sizes: dict[str, int], channel: str, bits: int | None
) -> Iterator[tuple[str, int, int, float]]:
    for chrom in sizes:
        last_end = 0
        for path in files_by_chrom.get(chrom, []):
            for batch in pq.ParquetFile(path).iter_batches(BATCH_ROWS, columns=["pos", channel]):
                pos = batch.column(0).to_numpy()
                values = rounded(batch.column(1).to_numpy(), bits)
                if pos[0] <= last_end or np.any(np.diff(pos) <= 0):
                    raise InputError(f"{path}: pos is not strictly increasing")
                if pos[-1] > sizes[chrom]:
                    raise InputError(
                        f"{path}: position {pos[-1]} is beyond the end of {chrom} "
                        f"({sizes[chrom]} in the FASTA index): is this the run's FASTA?"
                    )
                last_end = int(pos[-1])
                starts, ends, vals = runs(pos, values)
                yield from zip(
                    [chrom] * len(starts),
                    starts.tolist(),
                    ends.tolist(),
                    vals.tolist(),
                    strict=True,
                )


def write_tracks(
    scores_dir: str | os.PathLike,
    fasta: str | os.PathLike,
    out_dir: str | os.PathLike,
    channels: list[str] | None = None,
    workers: int = 1,
    bits: int | None = DEFAULT_TRACKS_BITS,
    assembly: str | None = None,
    hub_email: str | None = None,
) -> list[Path]:
    """Write ``<channel>.<plus|minus>.bw`` for each channel and strand that has scores.

    Values are rounded to multiples of ``2**-bits`` (None: the exact float32 values).
    With ``assembly`` (a UCSC name such as ``hg38``), also a track hub ``hub.txt`` of these
    files (``hub.write_hub``; ``hub_email`` is its contact address).

    A strand without any scores gets no file (a bigWig cannot be empty); that is logged.
    Each file is written under a temporary name and renamed when complete;
    ``workers`` > 1 writes that many files at once in separate processes.
    """
    scores = scores_path(scores_dir)
    parts = partitions(scores)
    if not parts:
        raise MissingInputError(f"no Parquet files under {scores}")
    sizes = chrom_sizes(fasta)
    unknown = sorted({chrom for chrom, _ in parts} - set(sizes))
    if unknown:
        raise InputError(
            f"contigs {unknown} of {scores} are not in {fasta}: is this the run's FASTA?"
        )
    if bits is not None and not 0 <= bits <= 23:
        raise InputError(f"bits must be between 0 and 23 (float32), or None; got {bits}")
    available = channels_of(next(iter(parts.values()))[0])
    channels = list(channels or available)
    missing = [c for c in channels if c not in available]
    if missing:
        raise InputError(f"unknown channel(s) {missing}; available: {', '.join(available)}")

    out_dir = Path(out_dir)
    jobs = []
    for strand in STRAND_DIR:
        files = {chrom: f for (chrom, s), f in parts.items() if s == strand}
        if not files:
            log.warning("no scores on strand %s: no %s tracks written", strand, strand)
            continue
        jobs += [(out_dir / track_name(c, strand), files, sizes, c, bits) for c in channels]
    remove_stale(*(path for path, *_ in jobs))
    try:
        map_largest_first(_write_one, jobs, [1] * len(jobs), workers)
    finally:
        remove_stale(*(path for path, *_ in jobs))  # of workers terminated mid-file
    written = [out_dir / path.name for path, *_ in jobs]
    if assembly:
        write_hub(out_dir, assembly, written, email=hub_email)
    else:
        log.info("no assembly given: no track hub written (set assembly, e.g. hg38)")
    return written


def _write_one(job: tuple[Path, dict[str, list[str]], dict[str, int], str, int | None]) -> None:
    """One bigWig file ``(path, files by chrom, chrom sizes, channel, bits)``, written
    atomically (in a worker process or the calling one).

    pybigtools prints an exception raised by the entries it iterates (a bad input, or the
    KeyboardInterrupt of a SIGINT) and returns normally with a truncated file, so the exception
    is kept here and raised before the file is renamed into place.
    """
    path, files, sizes, channel, bits = job
    failures: list[BaseException] = []

    def entries() -> Iterator[tuple[str, int, int, float]]:
        try:
            yield from _entries(files, sizes, channel, bits)
        except BaseException as error:
            failures.append(error)
            raise

    with atomic_path(path, keep_suffix=True) as tmp:  # pybigtools goes by the extension
        pybigtools.open(str(tmp), "w").write(sizes, entries())
        if failures:
            raise failures[0]
    log.info("wrote %s", path)
