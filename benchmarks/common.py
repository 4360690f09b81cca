"""What the benchmarks share: the machine they ran on, alternating best-of rounds, and the
faithful SpTransformer reference (the original network's computation on its own window).

Run a benchmark as ``python benchmarks/<name>.py``: this folder is then on ``sys.path``.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable

import torch

FLAGS_OF_INTEREST = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8")


def machine() -> str:
    """CPU model, the flags that decide bfloat16 speed, cores, load and torch: one line each."""
    model, flags = platform.processor() or "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
    except OSError:
        pass
    present = [flag for flag in FLAGS_OF_INTEREST if flag in flags]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"CPU: {model}; flags: {' '.join(present) or 'none of ' + ', '.join(FLAGS_OF_INTEREST)}\n"
        f"cores: {os.cpu_count()}, 1-min load average {load:.2f}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads)"
    )


def best_of_rounds(
    methods: dict[str, Callable[[], float | None]], rounds: int, warmup: bool = True
) -> dict[str, float]:
    """Best seconds of each method over ``rounds`` alternating rounds, after one warm-up round.

    A method returns its own seconds, or None to be timed here. Alternating makes a shared
    machine's load hit every method alike; the warm-up keeps first-call costs (allocators,
    caches, lazy imports) out of every figure.
    """
    if rounds < 3:
        raise SystemExit(f"at least 3 rounds for a ratio worth printing, got {rounds}")
    best: dict[str, float] = {}
    for round_ in range(rounds + int(warmup)):
        times = {}
        for name, method in methods.items():
            began = time.perf_counter()
            reported = method()
            times[name] = reported if reported is not None else time.perf_counter() - began
        label = "warm-up" if warmup and round_ == 0 else f"round {round_ + 1 - int(warmup)}"
        print(f"{label}: " + ", ".join(f"{k} {v:.2f} s" for k, v in times.items()), flush=True)
        if label != "warm-up":
            best = {k: min(v, best.get(k, v)) for k, v in times.items()}
    return best


def original_forward(mm: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The original SpTransformer's computation on a whole window (no extra N padding), from
    multimolecule's submodules: what the official tool costs per window.

    multimolecule's ``SpTransformerModel`` pads another 4,000 N per side before its
    convolutions; the original network convolves only the window it is given. Logits of the
    centre ``len - 8000`` positions.
    """
    from multimolecule.models.sptransformer import modeling_sptransformer as mod

    config = mm.config

    def forward(window: torch.Tensor) -> torch.Tensor:
        onehot = torch.nn.functional.one_hot(window, 5).float().transpose(1, 2)
        odd = onehot.shape[2] & 1
        projected = mod._pad_or_crop_features(mm.projection(onehot), config.max_seq_len, odd)
        feats = torch.cat([enc(onehot) for enc in mm.feature_encoders], dim=1)
        feats = mod._pad_or_crop_features(feats, config.max_seq_len, odd)
        hidden = mm.projection.fuse(torch.cat([feats, projected], dim=1))
        out = mm.prediction(mm.encoder(hidden).last_hidden_state)
        return mod._pad_or_crop_outputs(out, onehot.shape[2] - 8000, odd)

    return forward
