"""Scale-out numbers for ``predict`` (issue 5, acceptance 5), on CPU with a small stand-in model.

1. windows/s of ``predict`` with 1 and 2 local CPU workers, against the model alone on the same
   windows in this process with the same torch threads in total (1 worker x all cores against
   the model with all cores; 2 workers x 1 thread against twice the model with 1 thread): the
   ratio is how much of the model's speed survives the tasks, the Zarr I/O and the checksums;
2. the cost per task: ``predict`` over >= 10,000 one-window shards of a tiny model, minus the
   model's own time, divided by the shards (everything a task adds: scheduling, reading the
   tokens, writing the shard and its marker), and the scheduling alone (no-op tasks through
   the same bounded submit / as_completed loop);
3. files written per 1,000 windows at the default shard size.

Run: PYTHONPATH=. python benchmarks/bench_scale.py [--tiny-shards 10000]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import dask
import torch

from sptx_pipeline import store
from sptx_pipeline.cluster import open_client
from sptx_pipeline.inference import predict
from sptx_pipeline.runner import ShardResult, run_shards
from sptx_pipeline.runtime import score_windows
from sptx_pipeline.store import Shard, shard_grid
from sptx_pipeline.testing import StandInFactory, make_windows


def model_only(factory: StandInFactory, tokens, batch_size: int, threads: int) -> float:
    """Seconds for the model alone over ``tokens`` in this process: best of three."""
    model = factory().eval()
    torch.set_num_threads(threads)
    score_windows(model, tokens[:batch_size], batch_size, "float16")  # warm-up
    times = []
    for _ in range(3):
        began = time.perf_counter()
        score_windows(model, tokens, batch_size, "float16")
        times.append(time.perf_counter() - began)
    return min(times)


def throughput(workdir: Path, rounds: int, hidden: int) -> None:
    """Best of ``rounds`` alternating measurements (a shared machine's load comes and goes)."""
    factory = StandInFactory(flank=100, hidden=hidden)
    windows = workdir / "throughput.zarr"
    tokens = make_windows(windows, n_windows=768, shard_size=32, chunk_size=1000, flank=100)
    cores = dask.system.CPU_COUNT
    best: dict[str, float] = {}
    for round_ in range(rounds):
        rates = {
            "single": len(tokens) / model_only(factory, tokens, 16, threads=1),
            "all": len(tokens) / model_only(factory, tokens, 16, threads=cores),
        }
        for n_workers in (1, 2):
            summary = predict(
                windows, workdir / f"t-{n_workers}-{round_}.p.zarr", factory, device="cpu",
                batch_size=16, cluster={"type": "local", "n_workers": n_workers}, progress=False,
            )  # fmt: skip
            rates[f"predict{n_workers}"] = summary.items_per_s
        best = {key: max(rate, best.get(key, 0.0)) for key, rate in rates.items()}
    print(
        f"best of {rounds} rounds, 768 windows of T=1000, flank 100, shards of 32, "
        f"stand-in conv net with {hidden} hidden channels:"
    )
    print(f"model alone, 1 torch thread:   {best['single']:8.1f} windows/s")
    print(f"model alone, {cores} torch threads:  {best['all']:8.1f} windows/s")
    ideal = {1: best["all"], 2: 2 * best["single"]}  # same torch threads in total, no Dask/I/O
    for n_workers in (1, 2):
        rate = best[f"predict{n_workers}"]
        print(
            f"predict, {n_workers} CPU worker(s):   {rate:8.1f} windows/s "
            f"({rate / ideal[n_workers]:.2f} x the model alone with the same threads; "
            "cluster start-up not counted)"
        )


def _noop(shard: Shard) -> ShardResult:
    return ShardResult(shard.index, shard.size, "computed")


def per_task(workdir: Path, n_shards: int) -> None:
    factory = StandInFactory(flank=10, hidden=2)
    windows = workdir / "tiny.zarr"
    tokens = make_windows(windows, n_windows=n_shards, shard_size=1, chunk_size=10, flank=10)
    model_seconds = model_only(factory, tokens, batch_size=1, threads=1)
    cluster = {"type": "local", "n_workers": 1, "threads_per_worker": 1}
    with open_client(cluster, "cpu") as client:
        began = time.perf_counter()
        run_shards(client, _noop, shard_grid(n_shards, 1), run_id=uuid.uuid4().hex, desc="noop",
                   unit="win", noun="windows", max_retries=0, progress=False)  # fmt: skip
        scheduling = time.perf_counter() - began
    summary = predict(windows, workdir / "tiny.p.zarr", factory, device="cpu", batch_size=1,
                      cluster=cluster, progress=False)  # fmt: skip
    total = summary.shard_seconds
    print(f"\n{n_shards} one-window shards of a tiny model (1 CPU worker):")
    print(f"  scheduling alone (no-op tasks):  {1e3 * scheduling / n_shards:6.2f} ms/task")
    print(
        f"  whole task minus model time:     {1e3 * (total - model_seconds) / n_shards:6.2f} "
        f"ms/task (predict {total:.1f} s, model {model_seconds:.1f} s)"
    )
    for windows_per_shard in (64, 256):
        n = 1_000_000 // windows_per_shard
        hours = n * (total - model_seconds) / n_shards / 3600
        print(
            f"  => 1,000,000 windows in shards of {windows_per_shard}: {n:,} tasks, "
            f"{hours:.2f} h of per-task overhead in one worker (spread over the workers)"
        )


def files_per_1000(workdir: Path, shard_size: int = 64) -> None:
    factory = StandInFactory(flank=10, hidden=2)
    windows = workdir / "files.zarr"
    make_windows(windows, n_windows=1000, shard_size=shard_size, chunk_size=10, flank=10)
    out = workdir / "files.p.zarr"
    predict(windows, out, factory, device="cpu", cluster={"type": "local", "processes": False},
            progress=False)  # fmt: skip

    def count(path: Path) -> tuple[int, int]:
        files = [p for p in path.rglob("*") if p.is_file()]
        return len(files), sum(1 for p in files if p.name != "zarr.json")

    print(f"\nfiles per 1,000 windows (shard_size {shard_size}):")
    total, data = count(out)
    markers = len(store.done_shards(out))
    print(f"  predictions.zarr: {total} files = {data - markers} shard files + {markers} done "
          f"markers + {total - data} metadata")  # fmt: skip
    total, data = count(windows)
    print(f"  windows.zarr:     {total} files = {data} shard files + {total - data} metadata")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny-shards", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=192, help="model size (compute/window)")
    parser.add_argument("--only-throughput", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"CPU cores: {dask.system.CPU_COUNT}, load average {load}, torch {torch.__version__}\n")
    workdir = Path(tempfile.mkdtemp(prefix="bench_scale_"))
    try:
        throughput(workdir, args.rounds, args.hidden)
        if not args.only_throughput:
            per_task(workdir, args.tiny_shards)
            files_per_1000(workdir)
    finally:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
