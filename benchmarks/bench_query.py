"""Latency of 100 kb region queries through ``sptx_pipeline.query.query`` on a large ``scores/``.

Builds (or reuses) a synthetic ``scores/`` with the real schema (``pos`` + the 18 SpTransformer
channels as float32, the merge stage's own writer: ZSTD, 128k-row groups) of at least 100 million
rows, then prints the median latency of random 100 kb queries and the time of a full scan of the
same dataset (every row of every column) measured in the same run, and their ratio.

    python benchmarks/bench_query.py [--rows 102400000] [--queries 100] [--out DIR]

(default DIR: benchmarks/out/bench_query, git-ignored; an existing dataset is reused).

Positions are laid out like gene bodies: runs of 60 kb of scored positions separated by 40 kb
gaps. Values are float16-quantised like the pipeline's default output dtype, with acceptor/donor
mostly near zero, so the files compress like real ones.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import duckdb
import numpy as np

from sptx_pipeline.models.sptransformer import SPTRANSFORMER_CHANNELS
from sptx_pipeline.query import query
from sptx_pipeline.results import (
    ROW_GROUP_ROWS,
    PartitionWriter,
    partition_dir,
    scores_schema,
)

CHANNELS = list(SPTRANSFORMER_CHANNELS)
N_CHROMS = 10
GENE, GAP = 60_000, 40_000


def value_pool(rng: np.random.Generator, n_blocks: int, rows: int) -> list[np.ndarray]:
    """Pre-generated ``[rows, 18]`` blocks reused across row groups (generation stays cheap)."""
    pool = []
    for _ in range(n_blocks):
        splice = rng.dirichlet([20.0, 0.05, 0.05], size=rows)
        tissue = rng.beta(0.5, 4.0, size=(rows, len(CHANNELS) - 3))
        pool.append(np.concatenate([splice, tissue], axis=1).astype(np.float16).astype(np.float64))
    return pool


def gene_like_positions(start_row: int, n: int) -> np.ndarray:
    """1-based positions of rows ``start_row ..``: 60 kb scored, 40 kb gap, repeated."""
    rows = np.arange(start_row, start_row + n, dtype=np.int64)
    return (rows // GENE) * (GENE + GAP) + rows % GENE + 1


def build(scores: Path, total_rows: int) -> dict[tuple[str, str], int]:
    """Write ``total_rows`` rows over ``N_CHROMS`` chromosomes x 2 strands; return the last pos."""
    rng = np.random.default_rng(0)
    pool = value_pool(rng, 16, ROW_GROUP_ROWS)
    per_partition = -(-total_rows // (2 * N_CHROMS))
    tmp = scores.with_name(scores.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    schema = scores_schema(CHANNELS, {b"sptx": b'{"benchmark": true}'})
    extents, block_index = {}, 0
    for c in range(1, N_CHROMS + 1):
        for strand in "+-":
            chrom = f"chr{c}"
            writer = PartitionWriter(partition_dir(tmp, chrom, strand), schema)
            for start in range(0, per_partition, ROW_GROUP_ROWS):
                n = min(ROW_GROUP_ROWS, per_partition - start)
                values = pool[block_index % len(pool)][:n]
                block_index += 1
                writer.add(np.column_stack([gene_like_positions(start, n), values]))
            writer.close()
            extents[(chrom, strand)] = int(gene_like_positions(per_partition - 1, 1)[0])
    os.replace(tmp, scores)
    return extents


def extents_of(scores: Path) -> dict[tuple[str, str], int]:
    con = duckdb.connect()
    rows = con.execute(
        f"SELECT chrom, strand, max(pos) FROM read_parquet('{scores}/**/*.parquet', "
        "hive_partitioning=true, hive_types_autocast=false) GROUP BY ALL"
    ).fetchall()
    return {(c, "+" if s == "plus" else "-"): int(m) for c, s, m in rows}


def count_rows(scores: Path) -> int:
    return (
        duckdb.connect()
        .execute(f"SELECT count(*) FROM read_parquet('{scores}/**/*.parquet')")
        .fetchone()[0]
    )


def full_scan(scores: Path) -> float:
    """Seconds to read every row of every column (a sum per column forces the reads)."""
    sums = ", ".join(f"sum({c})" for c in ["pos", *CHANNELS])
    con = duckdb.connect()
    t0 = time.perf_counter()
    con.execute(f"SELECT count(*), {sums} FROM read_parquet('{scores}/**/*.parquet')").fetchall()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=102_400_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--width", type=int, default=100_000)
    parser.add_argument("--scans", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/out/bench_query")
    args = parser.parse_args()

    out = Path(args.out)
    scores = out / "scores"
    out.mkdir(parents=True, exist_ok=True)
    if scores.exists() and count_rows(scores) >= args.rows:
        print(f"reusing {scores}")
        extents = extents_of(scores)
    else:
        shutil.rmtree(scores, ignore_errors=True)
        t0 = time.perf_counter()
        extents = build(scores, args.rows)
        print(f"built {scores} in {time.perf_counter() - t0:.1f} s")
    n_rows = count_rows(scores)
    size = sum(p.stat().st_size for p in scores.rglob("*.parquet"))
    print(f"dataset: {n_rows:,} rows, {len(extents)} partitions, {size / 1e9:.2f} GB on disk")

    rng = np.random.default_rng(1)
    keys = sorted(extents)
    query(out, f"chr1:1-{args.width}", strand="+")  # warm-up (imports, first file open)
    latencies, returned = [], []
    for _ in range(args.queries):
        chrom, strand = keys[rng.integers(len(keys))]
        start = int(rng.integers(1, extents[(chrom, strand)] - args.width))
        t0 = time.perf_counter()
        frame = query(out, f"{chrom}:{start}-{start + args.width - 1}", strand=strand)
        latencies.append(time.perf_counter() - t0)
        returned.append(len(frame))
    scans = [full_scan(scores) for _ in range(args.scans)]

    median, scan = statistics.median(latencies), statistics.median(scans)
    print(
        f"1-min load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (shared machine)"
    )
    print(
        f"{args.queries} queries of {args.width / 1000:.0f} kb: median {median * 1000:.1f} ms, "
        f"p90 {np.percentile(latencies, 90) * 1000:.1f} ms, "
        f"max {max(latencies) * 1000:.1f} ms, "
        f"median rows returned {statistics.median(returned):,.0f}"
    )
    print(f"full scan ({args.scans}x): median {scan:.2f} s (all {len(CHANNELS) + 1} columns)")
    print(f"ratio median query / full scan: 1/{scan / median:.0f}")
    ok_abs, ok_ratio = median <= 0.5, median <= scan / 20
    verdict = {True: "PASS", False: "FAIL"}
    print(f"median <= 0.5 s: {verdict[ok_abs]}; <= 1/20 of the scan: {verdict[ok_ratio]}")
    sys.exit(0 if ok_abs and ok_ratio else 1)


if __name__ == "__main__":
    main()
