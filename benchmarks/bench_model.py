"""Throughput and memory of our SpTransformer against the original network's computation and
multimolecule's, in one process.

Every model gets the same batch of real-flank windows cut from the bundled example genome
(T = 1000 target + 4000 flank on each side: 9,000 nt). The headline reference is the original
network on those 9,000 positions (``common.original_forward``: multimolecule's submodules
composed on the window, what the official tool computes); multimolecule's
``SpTransformerModel``, the second line, pads another 4,000 N per side (17,000 positions).
On a CPU it also runs our model with every convolution done directly
(``conv_method = "direct"``, what a GPU uses) to show what the FFT convolutions bring.
After a warm-up, runs alternate between the models and the best of ``--repeats`` (>= 3) is
reported, which keeps the ratios meaningful on a shared machine. On a CUDA device it also
reports float32, TF32 and bfloat16 throughput of our model and each precision's largest
probability difference against float32.

Weights are random (published geometry) unless ``--model`` names a checkpoint: speed does not
depend on the values.

    python benchmarks/bench_model.py [--batch 2] [--repeats 3] [--model DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyfaidx
import torch
from common import machine, original_forward

from sptx_pipeline.models import load_model
from sptx_pipeline.models.random_checkpoint import write_random_checkpoint

ROOT = Path(__file__).resolve().parents[1]
DIRECT = "ours, direct convolutions"
FASTA = ROOT / "config/example/grch37_chr19_1-1500000.fa"
LOOKUP = np.full(256, 4, dtype=np.uint8)
for _code, _base in enumerate("ACGT"):
    LOOKUP[ord(_base)] = LOOKUP[ord(_base.lower())] = _code


def genome_windows(batch: int, target: int, flank: int) -> torch.Tensor:
    """``batch`` windows of ``target + 2 * flank`` nt from chr19, tiled from 500 kb on."""
    fasta = pyfaidx.Fasta(str(FASTA))
    contig = fasta[next(iter(fasta.keys()))]
    rows = []
    for i in range(batch):
        start = 500_000 + i * target
        seq = str(contig[start - flank : start + target + flank]).encode()
        rows.append(LOOKUP[np.frombuffer(seq, dtype=np.uint8)])
    return torch.from_numpy(np.stack(rows)).long()


class PeakRSS:
    """Peak resident memory above the level at entry (CPU), sampled every 2 ms."""

    def __enter__(self) -> PeakRSS:
        _release_free_memory()
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self._rss())

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    @property
    def gib(self) -> float:
        return (self.peak - self.base) / 2**30


def _release_free_memory() -> None:
    """Give cached free heap back to the OS, so the next peak is measured from a true baseline."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def timed(run, device: torch.device) -> tuple[float, float]:
    """Seconds and peak memory (GiB) of one call."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        run()
        torch.cuda.synchronize()
        return time.perf_counter() - start, torch.cuda.max_memory_allocated() / 2**30
    with PeakRSS() as peak:
        start = time.perf_counter()
        run()
        seconds = time.perf_counter() - start
    return seconds, peak.gib


def compare_with_multimolecule(directory: Path, windows, args, device: torch.device) -> None:
    try:
        from multimolecule import SpTransformerModel
    except ImportError:
        print("multimolecule not installed: reference comparison skipped")
        return
    ours = load_model(str(directory), device=str(device))
    reference = SpTransformerModel.from_pretrained(directory).to(device).eval()
    windows = windows.to(device)
    runs = {"ours": lambda: ours(windows)}
    if device.type == "cpu":  # a GPU always convolves directly
        direct = load_model(str(directory), device=str(device))
        direct.conv_method = "direct"
        runs[DIRECT] = lambda: direct(windows)
    runs["original network"] = lambda: original_forward(reference)(windows)
    runs["multimolecule"] = lambda: reference(windows).logits
    best = {name: (float("inf"), 0.0) for name in runs}
    with torch.inference_mode():
        for run in runs.values():  # warm-up
            run()
        for _ in range(args.repeats):
            for name, run in runs.items():
                seconds, memory = timed(run, device)
                best[name] = (min(best[name][0], seconds), max(best[name][1], memory))
    nts = windows.shape[0] * args.target
    print(
        f"{device.type} float32, batch {windows.shape[0]} x {windows.shape[1]} nt, T={args.target}"
    )
    for name, (seconds, memory) in best.items():
        rate = nts / seconds
        print(f"  {name:26s} {rate:8.1f} target nt/s  {seconds:7.2f} s  peak {memory:.2f} GiB")
    ratio = best["original network"][0] / best["ours"][0]
    print(f"  HEADLINE speed-up ours / original network (same 9,000 nt): {ratio:.2f}x")
    ratio = best["multimolecule"][0] / best["ours"][0]
    print(f"  speed-up ours / multimolecule SpTransformerModel (17,000 nt): {ratio:.2f}x")
    if DIRECT in best:
        ratio = best[DIRECT][0] / best["ours"][0]
        print(f"  speed-up of FFT convolutions over direct ones (ours): {ratio:.2f}x")


def gpu_precisions(directory: Path, windows, args) -> None:
    device = torch.device("cuda")
    windows = windows.to(device)
    nts = windows.shape[0] * args.target
    reference = None
    print(f"cuda precisions ({torch.cuda.get_device_name()}), batch {windows.shape[0]}:")
    for name, precision, tf32 in (
        ("float32", "float32", False),
        ("tf32", "float32", True),
        ("bfloat16", "bfloat16", False),
    ):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        model = load_model(str(directory), device="cuda", precision=precision)
        with torch.inference_mode():
            model(windows)
            best, memory = float("inf"), 0.0
            for _ in range(args.repeats):
                seconds, mem = timed(lambda m=model: m(windows), device)
                best, memory = min(best, seconds), max(memory, mem)
            probs = model.postprocess(model(windows))
        reference = probs if reference is None else reference
        diff = (probs - reference).abs().max().item()
        print(
            f"  {name:9s} {nts / best:12.1f} target nt/s  peak {memory:.2f} GiB  "
            f"max |p - p_float32| = {diff:.2e}"
        )
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--target", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gpu-batch", type=int, default=16)
    parser.add_argument("--model", help="checkpoint directory (default: random weights)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.repeats < 3:
        parser.error("--repeats: at least 3 rounds for a ratio worth printing")
    print(machine())
    with contextlib.ExitStack() as stack:
        directory = Path(args.model) if args.model else None
        if directory is None:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            write_random_checkpoint(directory, seed=0)
        flank = load_model(str(directory)).flank
        windows = genome_windows(args.batch, args.target, flank)
        compare_with_multimolecule(directory, windows, args, torch.device("cpu"))
        if torch.cuda.is_available():
            gpu_windows = genome_windows(args.gpu_batch, args.target, flank)
            compare_with_multimolecule(directory, gpu_windows, args, torch.device("cuda"))
            gpu_precisions(directory, gpu_windows, args)
        else:
            print("no CUDA device here: GPU float32/TF32/bfloat16 part not run")


if __name__ == "__main__":
    main()
