"""merge and tracks with one process against several (issue 13, acceptance 2).

Takes a finished ``bench_genome.py --out DIR`` run on two or more chromosomes (its
predictions.zarr, windows, regions and genes), merges it with ``workers=1`` and with
``--workers`` processes, writes bigWig tracks from the result both ways, checks that the outputs
are equal (every scores/ file byte for byte except the provenance, sites.parquet's rows, every
bigWig byte for byte) and prints the speed-ups, with the cores a one-process run keeps busy
(CPU seconds of this process and its children over wall seconds): a stage that already uses
``c`` of ``n`` cores alone can be at most ``n / c`` times faster in parallel. Rounds alternate
serial and parallel and the best of each is compared (the machine may be shared).

    python benchmarks/bench_genome.py --chromosomes chr21,chr22 --gene-fraction 0.4 --out /tmp/g
    python benchmarks/bench_parallel.py /tmp/g [--workers 2] [--rounds 2] [--channels 4]
"""

from __future__ import annotations

import argparse
import functools
import resource
import shutil
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sptx_pipeline.merge import merge  # noqa: E402
from sptx_pipeline.tracks import write_tracks  # noqa: E402

TARGET = 1.7
SITES_MIN_SCORE = 0.999  # the stand-in's values: SpliceAI's site density at 0.1 (0.2%)


def cpu_seconds() -> float:
    """User + system seconds of this process and its waited-for children so far."""
    own, children = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_merge(work: Path, out: Path, workers: int) -> float:
    began = time.perf_counter()
    merge(
        work / "windows.parquet",
        work / "predictions.zarr",
        work / "regions.parquet",
        work / "genes.parquet",
        out / "scores",
        out / "sites.parquet",
        sites_min_score=SITES_MIN_SCORE,
        workers=workers,
    )
    return time.perf_counter() - began


def run_tracks(work: Path, out: Path, channels: list[str], workers: int) -> float:
    began = time.perf_counter()
    write_tracks(work / "scores", work / "genome.fa", out / "tracks", channels, workers=workers)
    return time.perf_counter() - began


def same_outputs(a: Path, b: Path) -> bool:
    files = sorted(p.relative_to(a) for p in (a / "scores").rglob("*.parquet"))
    if files != sorted(p.relative_to(b) for p in (b / "scores").rglob("*.parquet")):
        return False
    for name in files:
        if not pq.read_table(a / name).equals(pq.read_table(b / name)):
            return False
    return pq.read_table(a / "sites.parquet").equals(pq.read_table(b / "sites.parquet"))


def same_tracks(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in (a / "tracks").iterdir())
    return names == sorted(p.name for p in (b / "tracks").iterdir()) and all(
        (a / "tracks" / n).read_bytes() == (b / "tracks" / n).read_bytes() for n in names
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path, help="a bench_genome.py --out directory")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--channels", type=int, default=18, help="first N channels as tracks")
    args = parser.parse_args()
    work = args.work
    chroms = sorted(p.name for p in (work / "scores").glob("chrom=*"))
    channels = [n for n in pq.read_schema(next((work / "scores").rglob("*.parquet"))).names][1:]
    channels = channels[: args.channels]
    print(f"{work}: partitions of {', '.join(chroms)}; {len(channels)} track channels")
    best: dict[str, float] = {}
    cores: dict[str, float] = {}
    for round_ in range(args.rounds):
        for workers in (1, args.workers) if round_ % 2 == 0 else (args.workers, 1):
            out = work / f"parallel-{workers}"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            stages = {
                "merge": functools.partial(run_merge, work, out, workers),
                "tracks": functools.partial(run_tracks, work, out, channels, workers),
            }
            for stage, run in stages.items():
                cpu = cpu_seconds()
                seconds = run()
                if seconds < best.get(f"{stage}{workers}", float("inf")):
                    best[f"{stage}{workers}"] = seconds
                    cores[f"{stage}{workers}"] = (cpu_seconds() - cpu) / seconds
            print(f"round {round_}, {workers} worker(s): {best}", flush=True)
    serial, parallel = work / "parallel-1", work / f"parallel-{args.workers}"
    merge_equal, tracks_equal = same_outputs(serial, parallel), same_tracks(serial, parallel)
    for stage, equal in (("merge", merge_equal), ("tracks", tracks_equal)):
        speedup = best[f"{stage}1"] / best[f"{stage}{args.workers}"]
        verdict = "PASS" if speedup >= TARGET and equal else "FAIL"
        print(
            f"{stage}: 1 worker {best[f'{stage}1']:.1f} s ({cores[f'{stage}1']:.2f} cores busy), "
            f"{args.workers} workers {best[f'{stage}{args.workers}']:.1f} s "
            f"({cores[f'{stage}{args.workers}']:.2f} cores): {speedup:.2f}x (target {TARGET}x), "
            f"outputs {'identical' if equal else 'DIFFER'}: {verdict}"
        )


if __name__ == "__main__":
    main()
