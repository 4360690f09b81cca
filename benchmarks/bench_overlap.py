"""Does predict hide its Zarr I/O behind the model? (issue 13, acceptance 3, overlap part)

A stand-in model that sleeps ``--ms`` milliseconds per window and does nearly no arithmetic (a
GPU's forward pass as seen from the CPU: the time passes, the cores stay free) runs over
windows of the published geometry (flank 4000, T = 1000, 18 channels, shards of 64): predict
with its real work per shard (reading the tokens, writing the float16 predictions, checksums
and the done marker, Dask scheduling) against the model alone over the same windows in this
process, with one torch thread in both (the post-processing runs on the CPU; on a shared
machine one thread is the stable reference). One local worker, with one task at a time
(``tasks_per_worker: 1``) and with predict's default (two tasks per worker, the model behind
a lock). Target: the default reaches 0.95 of
the model alone. Rounds alternate; the best of each is compared.

    python benchmarks/bench_overlap.py [--shards 16] [--ms 3] [--rounds 2]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from sptx_pipeline import store  # noqa: E402
from sptx_pipeline.inference import predict  # noqa: E402
from sptx_pipeline.models.base import ScoringModel  # noqa: E402
from sptx_pipeline.runtime import score_windows  # noqa: E402

FLANK, CHUNK, SHARD, BATCH = 4000, 1000, 64, 16
TARGET = 0.95


class SleepingModel(ScoringModel):
    """Sleeps ``seconds_per_window`` per window; its logits are constant (no arithmetic)."""

    flank = FLANK
    default_chunk_size = CHUNK
    channels = ("no_splice", "acceptor", "donor", *(f"tissue_{i}" for i in range(15)))

    def __init__(self, seconds_per_window: float) -> None:
        super().__init__()
        self.seconds_per_window = seconds_per_window
        self.bias = torch.nn.Parameter(torch.zeros(len(self.channels)))
        self.provenance = {"source": "sleeping stand-in"}

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        time.sleep(self.seconds_per_window * len(tokens))
        target = tokens.shape[1] - 2 * self.flank
        return torch.zeros(len(tokens), target, len(self.channels)) + self.bias


@dataclass(frozen=True)
class SleepingFactory:
    seconds_per_window: float

    def __call__(self) -> SleepingModel:
        return SleepingModel(self.seconds_per_window)


def make_windows(path: Path, n_windows: int) -> np.ndarray:
    tokens = np.random.default_rng(0).integers(0, 4, (n_windows, CHUNK + 2 * FLANK), np.uint8)
    attrs = {"flank": FLANK, "chunk_size": CHUNK, "fasta": "random", "fasta_sha256": "0" * 64}
    store.create_windows(path, n_windows, CHUNK + 2 * FLANK, SHARD, attrs)[:] = tokens
    return tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--ms", type=float, default=3.0, help="model milliseconds per window")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    factory = SleepingFactory(args.ms / 1000)
    with tempfile.TemporaryDirectory(prefix="bench-overlap-") as tmp:
        windows = Path(tmp) / "windows.zarr"
        tokens = make_windows(windows, args.shards * SHARD)
        model = factory().eval()
        torch.set_num_threads(1)  # the same torch threads as predict's worker (threads=1)
        best: dict[str, float] = {}
        for round_ in range(args.rounds):
            began = time.perf_counter()
            score_windows(model, tokens, BATCH, "float16")
            rates = {"model alone": len(tokens) / (time.perf_counter() - began)}
            for tasks in (1, 2):
                summary = predict(
                    windows,
                    Path(tmp) / f"p-{tasks}-{round_}.zarr",
                    factory,
                    device="cpu",
                    batch_size=BATCH,
                    cluster={"type": "local", "tasks_per_worker": tasks},
                    progress=False,
                    threads=1,
                )
                rates[f"{tasks} task(s) per worker"] = summary.items_per_s
            best = {key: max(rate, best.get(key, 0.0)) for key, rate in rates.items()}
            print(f"round {round_}: " + ", ".join(f"{k} {v:.1f}" for k, v in rates.items()))
    alone = best.pop("model alone")
    print(
        f"{args.shards} shards of {SHARD} windows (flank {FLANK}, T={CHUNK}, 18 channels), "
        f"model {args.ms} ms/window: model alone {alone:.1f} windows/s"
    )
    for key, rate in best.items():
        ratio = rate / alone
        default = " (predict's default)" if key.startswith("2") else ""
        verdict = f" target {TARGET}: {'PASS' if ratio >= TARGET else 'FAIL'}" if default else ""
        print(f"  predict, {key}{default}: {rate:.1f} windows/s = {ratio:.3f}x{verdict}")


if __name__ == "__main__":
    main()
