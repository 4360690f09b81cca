"""bfloat16 against float32 for each model on this CPU: 1 thread and all threads.

SpliceAI (published weights; 2 windows of 5,000 targets + 5,000-nt flanks) and SpTransformer
(random weights, published geometry: speed does not depend on the values; 2 windows of 1,000 +
4,000-nt flanks), cut from the bundled chr19 region. For each model and thread count: one
warm-up forward per precision, then ``--rounds`` alternating float32/bfloat16 rounds; the best
of each is reported (alternating keeps the ratio fair on a shared machine). Prints the CPU model
and its bf16/AMX flags and the largest probability difference between the precisions.

Goals on a CPU with AMX-BF16: >= 4x SpliceAI, >= 3x SpTransformer. ``--profile`` prints the top
operators of one bfloat16 forward of each model (torch.profiler), to see what limits it.

    python benchmarks/bench_precision.py [--rounds 3] [--windows 2] [--profile]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from sptx_pipeline.models import load_model
from sptx_pipeline.models.base import ScoringModel

try:
    from bench_model import genome_windows
except ImportError:  # run as a module from the repository root
    from benchmarks.bench_model import genome_windows

GOALS = {"SpliceAI": 4.0, "SpTransformer": 3.0}
FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile", "amx_fp16", "avx512_fp16", "avx512f")


def cpu_description() -> tuple[str, list[str]]:
    """The CPU model name and which of the bf16/AMX flags it has."""
    name, flags = platform.processor() or "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return name, [flag for flag in FLAGS if flag in flags]


def forward(model: ScoringModel, windows: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model.postprocess(model(windows))


def best_times(
    models: dict[str, ScoringModel], windows: torch.Tensor, rounds: int
) -> tuple[dict[str, float], float]:
    """Best seconds per precision over alternating rounds, and the max probability difference."""
    outputs = {name: forward(model, windows[:1]) for name, model in models.items()}  # warm-up
    best = dict.fromkeys(models, float("inf"))
    for _ in range(rounds):
        for name, model in models.items():
            began = time.perf_counter()
            outputs[name] = forward(model, windows)
            best[name] = min(best[name], time.perf_counter() - began)
    difference = (outputs["bfloat16"] - outputs["float32"]).abs().max().item()
    return best, difference


def profile(model: ScoringModel, windows: torch.Tensor, label: str) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    forward(model, windows[:1])
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        forward(model, windows)
    print(f"\nprofile of one bfloat16 forward, {label}:")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--windows", type=int, default=2)
    parser.add_argument("--threads", type=int, nargs="*", help="default: 1 and all")
    parser.add_argument("--models", default="SpliceAI,SpTransformer")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = args.threads or sorted({1, cores or 1})
    name, flags = cpu_description()
    print(f"CPU: {name}; {cores} cores; flags: {', '.join(flags) or 'none of ' + str(FLAGS)}")
    print(f"torch {torch.__version__}, oneDNN {torch.backends.mkldnn.is_available()}")
    print("load average at start (1/5/15 min): {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    print(f"best of {args.rounds} alternating rounds after a warm-up, {args.windows} windows")
    with tempfile.TemporaryDirectory() as tmp:
        from sptx_pipeline.models.random_checkpoint import write_random_checkpoint

        sources = {
            "SpliceAI": ("spliceai", 5000, 5000),
            "SpTransformer": (str(write_random_checkpoint(Path(tmp) / "rand")), 1000, 4000),
        }
        rows = []
        for label in args.models.split(","):
            source, target, flank = sources[label]
            windows = genome_windows(args.windows, target, flank)
            models = {p: load_model(source, "cpu", p) for p in ("float32", "bfloat16")}
            for count in threads:
                torch.set_num_threads(count)
                best, difference = best_times(models, windows, args.rounds)
                ratio = best["float32"] / best["bfloat16"]
                rows.append((label, count, best["float32"], best["bfloat16"], ratio, difference))
                print(
                    f"  {label} {count} thread(s): float32 {best['float32']:.2f} s, bfloat16 "
                    f"{best['bfloat16']:.2f} s, {ratio:.2f}x",
                    flush=True,
                )
            if args.profile:
                torch.set_num_threads(threads[0])
                profile(models["bfloat16"], windows, f"{label}, {threads[0]} thread(s)")
    amx = "amx_bf16" in flags
    print("load average at end (1/5/15 min): {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    print(
        f"\n{'model':14s} {'threads':>7s} {'float32 s':>10s} {'bf16 s':>8s} {'ratio':>7s} "
        f"{'max |dp|':>9s}  goal"
    )
    for label, count, f32, bf16, ratio, difference in rows:
        goal = GOALS[label]
        verdict = (f">= {goal:g}x: {'met' if ratio >= goal else 'MISSED'}") if amx else "n/a"
        print(
            f"{label:14s} {count:7d} {f32:10.2f} {bf16:8.2f} {ratio:6.2f}x {difference:9.4f}  "
            f"{verdict}"
        )
    if not amx:
        print("(this CPU has no AMX-BF16: the goals are for AMX CPUs; ratios printed as measured)")


if __name__ == "__main__":
    main()
