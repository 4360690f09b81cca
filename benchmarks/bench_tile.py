"""Peak memory and speed of the tile stage on synthetic genomes of two sizes 10x apart.

Each size runs in a fresh subprocess (peak RSS is per process); the script prints the ratio of
the larger genome's peak memory to the smaller's (streaming: should stay near 1, at most 1.5)
and windows/s for both. Usage: python benchmarks/bench_tile.py [--small-mb 20] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

FLANK, CHUNK, SHARD = 4000, 1000, 64


def make_genome(directory: Path, total_bases: int, seed: int = 0) -> tuple[Path, Path]:
    """Four contigs of random sequence, written in blocks; gene bodies cover about half of each."""
    rng = np.random.default_rng(seed)
    fasta, sizes = directory / "genome.fa", [total_bases // 4] * 4
    with open(fasta, "w") as handle:
        for i, size in enumerate(sizes):
            handle.write(f">chr{i + 1}\n")
            for start in range(0, size, 6_000_000):
                block = np.frombuffer(b"ACGT", dtype=np.uint8)[
                    rng.integers(0, 4, min(6_000_000, size - start))
                ]
                lines = block[: len(block) // 60 * 60].reshape(-1, 60)
                handle.write("\n".join(row.tobytes().decode() for row in lines) + "\n")
                if len(block) % 60:
                    handle.write(block[len(block) // 60 * 60 :].tobytes().decode() + "\n")
    rows = []
    for i, size in enumerate(sizes):
        for start in range(0, size - 40_000, 40_000):  # a 20 kb gene every 40 kb, both strands
            rows.append(
                (f"chr{i + 1}", "+" if (start // 40_000) % 2 else "-", start, start + 20_000)
            )
    regions = pd.DataFrame(rows, columns=["chrom", "strand", "start", "end"])
    regions.to_parquet(directory / "regions.parquet")
    return fasta, directory / "regions.parquet"


def measure(directory: str) -> None:
    """Child process: tile once, print peak RSS (MiB), seconds and window count as JSON."""
    from sptx_pipeline.genome import open_fasta
    from sptx_pipeline.tiling import tile

    directory = Path(directory)
    open_fasta(directory / "genome.fa")  # index outside the timed part
    start = time.perf_counter()
    table = tile(
        directory / "genome.fa",
        directory / "regions.parquet",
        directory / "windows.zarr",
        directory / "windows.parquet",
        FLANK,
        CHUNK,
        SHARD,
    )
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_mib": peak, "seconds": seconds, "windows": len(table)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small-mb", type=float, default=20, help="genome size of the smaller run")
    parser.add_argument("--out", help="working directory (default: a temporary one)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measure(args.child)
        return
    base = Path(args.out or tempfile.mkdtemp(prefix="bench-tile-"))
    results = {}
    for label, factor in (("small", 1), ("large", 10)):
        directory = base / label
        directory.mkdir(parents=True, exist_ok=True)
        make_genome(directory, int(args.small_mb * 1e6 * factor))
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(directory)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        results[label] = json.loads(out.strip().splitlines()[-1])
        r = results[label]
        print(
            f"{label}: {args.small_mb * factor:g} Mb genome, {r['windows']} windows, "
            f"{r['seconds']:.1f} s ({r['windows'] / r['seconds']:.0f} windows/s), "
            f"peak RSS {r['peak_mib']:.0f} MiB"
        )
    ratio = results["large"]["peak_mib"] / results["small"]["peak_mib"]
    print(f"peak memory ratio large/small (10x genome): {ratio:.2f} (limit 1.5)")


if __name__ == "__main__":
    main()
