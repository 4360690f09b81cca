"""Peak memory and speed of ``merge`` on two synthetic runs 10x apart in size.

Each run is one chromosome whose gene bodies cover 60% of it (60 kb genes, 40 kb gaps) on both
strands, T = 1000, shard_size = 64, the 18 SpTransformer channels as float16. Each merge runs in a
fresh process; its peak RSS (ru_maxrss) is printed with the ratio large/small (memory is bounded
by a shard and a row group, so the ratio should stay near 1).

    python benchmarks/bench_merge.py [--small-mb 4] [--out benchmarks/out/bench_merge]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sptx_pipeline import store

T, SHARD, N_CHANNELS = 1000, 64, 18
GENE, GAP = 60_000, 40_000


def build(out: Path, length: int) -> None:
    """genes/regions/windows parquet and a complete predictions.zarr for one chromosome."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    starts = np.arange(0, length - GENE, GENE + GAP)
    genes = pd.DataFrame(
        [
            (f"G{i}{s}", f"G{i}{s}", "protein_coding", "chr1", int(b) + 1, int(b) + GENE, s)
            for s in "+-"
            for i, b in enumerate(starts)
        ],
        columns=["gene_id", "gene_name", "gene_type", "chrom", "start", "end", "strand"],
    )
    regions = genes.assign(start=genes.start - 1)[["chrom", "strand", "start", "end"]]
    tiles = sorted({k for b in starts for k in range(b // T, (b + GENE - 1) // T + 1)})
    windows = pd.DataFrame(
        [("chr1", s, k, k * T, (k + 1) * T) for s in "+-" for k in tiles],
        columns=["chrom", "strand", "tile", "target_start", "target_end"],
    )
    windows.insert(0, "window", np.arange(len(windows)))
    windows["shard"] = windows.window // SHARD
    genes.to_parquet(out / "genes.parquet", index=False)
    regions.to_parquet(out / "regions.parquet", index=False)
    windows.to_parquet(out / "windows.parquet", index=False)
    channels = [f"c{i}" for i in range(N_CHANNELS)]
    channels[:3] = ["no_splice", "acceptor", "donor"]
    arr = store.create_predictions(
        out / "predictions.zarr", len(windows), T, channels, SHARD, "float16", {"model": {}}
    )
    rng = np.random.default_rng(0)
    block = rng.random((SHARD, T, N_CHANNELS)).astype(np.float16)
    block[:, :, 1:3] *= np.float16(0.101)  # acceptor/donor: a site (>= 0.1) about 1 in 100
    for shard in store.shard_grid(len(windows), SHARD):
        arr[shard.start : shard.stop] = block[: shard.size]
        store.mark_done(out / "predictions.zarr", shard.index, {})


def merge_child(out: str, sites_min_score: float = 0.1) -> None:
    """Child process: merge once; print peak RSS (MiB), seconds, rows and sites as JSON."""
    from sptx_pipeline.merge import merge

    d = Path(out)
    t0 = time.perf_counter()
    counts = merge(
        d / "windows.parquet",
        d / "predictions.zarr",
        d / "regions.parquet",
        d / "genes.parquet",
        d / "scores",
        d / "sites.parquet",
        sites_min_score=sites_min_score,
    )
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sites = pd.read_parquet(d / "sites.parquet", columns=["pos"]).shape[0]
    record = {"peak_mib": peak, "seconds": seconds, "rows": sum(counts.values()), "sites": sites}
    print(json.dumps(record))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small-mb", type=float, default=4)
    parser.add_argument("--out", default="benchmarks/out/bench_merge")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--sites-min-score", type=float, default=0.1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        merge_child(args.child, args.sites_min_score)
        return
    results = {}
    for name, mb in (("small", args.small_mb), ("large", 10 * args.small_mb)):
        out = Path(args.out) / name
        build(out, int(mb * 1e6))
        stdout = subprocess.run(
            [sys.executable, __file__, "--child", str(out)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        record = json.loads(stdout.strip().splitlines()[-1])
        rows, seconds, peak = record["rows"], record["seconds"], record["peak_mib"]
        results[name] = peak
        print(
            f"{name}: {mb:g} Mb chromosome, {rows:,} rows, merge {seconds:.1f} s "
            f"({rows / seconds / 1e6:.2f} M rows/s), peak RSS {peak:.0f} MiB"
        )
    print(f"peak memory large/small: {results['large'] / results['small']:.2f} (limit 1.5)")


if __name__ == "__main__":
    main()
