"""Test helpers shared by the tests and the benchmarks (as ``zarr.testing`` is zarr's).

``StandInModel`` is a tiny seeded conv net standing in for SpTransformer: the same interface
(flank, channels, ``model(tokens) -> logits``, ``postprocess``) and a receptive field of exactly
+/- ``flank``, so every output depends on its whole window. Optional hooks slow it down, record
which process runs it, or make it fail, for the crash tests. ``make_windows`` writes a random
windows store; ``reference`` scores windows one by one, independently of ``predict``.

The command that runs ``predict`` with the stand-in model in its own process (the SIGKILL,
lock and SLURM tests) is ``tests/stand_in_predict.py``.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import store
from .models.base import ScoringModel
from .models.sptransformer import SPTRANSFORMER_CHANNELS

CHANNELS = ("no_splice", "acceptor", "donor", "tissue_a", "tissue_b")
WIDE_CHANNELS = SPTRANSFORMER_CHANNELS  # SpTransformer's 18, for size and speed benchmarks
THREADED = {"type": "local", "processes": False}  # a cluster of threads in this process


class StandInModel(ScoringModel):
    """One-hot -> dilated conv (receptive field 2 * flank + 1) -> ReLU -> 1x1 conv with one
    output per channel (the splice channels first, softmax; the rest sigmoid)."""

    default_chunk_size = 100

    def __init__(
        self,
        seed: int = 0,
        flank: int = 50,
        hidden: int = 8,
        sleep: float = 0.0,
        signal_dir: str | None = None,
        fail_on_all_n: bool = False,
        die_on_all_n: bool = False,
        channels: tuple[str, ...] = CHANNELS,
    ) -> None:
        super().__init__()
        self.channels = channels
        if flank % 10:
            raise ValueError("flank must be a multiple of 10 (kernel 11, dilation flank / 5)")
        self.flank = flank
        self.sleep = sleep
        self.signal_dir = signal_dir
        self.fail_on_all_n = fail_on_all_n
        self.die_on_all_n = die_on_all_n
        generator = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv1d(5, hidden, kernel_size=11, dilation=flank // 5)
        self.head = nn.Conv1d(hidden, len(channels), kernel_size=1)
        with torch.no_grad():
            for param in self.parameters():
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
        self.provenance = {"source": "stand-in", "seed": seed}

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.signal_dir:
            Path(self.signal_dir, f"{os.getpid()}.started").touch()
        all_n = bool((tokens == 4).all(dim=1).any())
        if self.fail_on_all_n and all_n:
            raise RuntimeError("stand-in model refuses windows that are all N")
        if self.die_on_all_n and all_n:
            os.kill(os.getpid(), signal.SIGKILL)  # takes its worker process down
        if self.sleep:
            time.sleep(self.sleep)
        onehot = nn.functional.one_hot(tokens.long(), 5).float().transpose(1, 2)
        return self.head(torch.relu(self.conv(onehot))).transpose(1, 2)


@dataclass(frozen=True)
class StandInFactory:
    """Picklable zero-argument factory, as ``predict`` accepts for ``model``."""

    seed: int = 0
    flank: int = 50
    hidden: int = 8
    sleep: float = 0.0
    signal_dir: str | None = None
    fail_on_all_n: bool = False
    die_on_all_n: bool = False
    channels: tuple[str, ...] = CHANNELS

    def __call__(self) -> StandInModel:
        return StandInModel(
            self.seed,
            self.flank,
            self.hidden,
            self.sleep,
            self.signal_dir,
            self.fail_on_all_n,
            self.die_on_all_n,
            self.channels,
        )


def make_windows(
    path: str | os.PathLike,
    n_windows: int,
    shard_size: int,
    chunk_size: int = 100,
    flank: int = 50,
    seed: int = 0,
) -> np.ndarray:
    """A windows.zarr of random tokens (some N) written with ``store.create_windows``."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, 5, size=(n_windows, chunk_size + 2 * flank), dtype=np.uint8)
    arr = store.create_windows(
        path,
        n_windows,
        chunk_size + 2 * flank,
        shard_size,
        {"flank": flank, "chunk_size": chunk_size, "fasta": "random", "fasta_sha256": "0" * 64},
    )
    arr[:] = tokens
    return tokens


def reference(tokens: np.ndarray, seed: int = 0) -> np.ndarray:
    """``postprocess(model(window))`` computed window by window, independently of predict."""
    model = StandInFactory(seed=seed)().eval()
    with torch.inference_mode():
        rows = [
            model.postprocess(model(torch.from_numpy(window[None]).long()))[0].numpy()
            for window in tokens
        ]
    return np.stack(rows)
