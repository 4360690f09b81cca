"""The model runtime every expensive stage shares: device choice, loading, scoring windows.

A Dask worker keeps one model per (model, device, precision) for its whole life
(``worker_model``), so a task pays the load once per worker, not once per shard. ``score_windows``
is the one batched forward pass (``postprocess(model(tokens))``) that ``predict`` and the variant
stage both call; ``model_identity`` is what makes two models' outputs interchangeable.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from .errors import DeviceError
from .models.base import ScoringModel, set_backend_flags
from .options import DEFAULT_BATCH_SIZE, DEVICES, OUTPUT_DTYPES, Device, check_choice
from .resources import granted_cores

__all__ = [
    "CUDA_INDEX_ENV",
    "DEVICES",
    "OUTPUT_DTYPES",
    "TORCH_THREADS_ENV",
    "ModelSpec",
    "Substitutions",
    "ThreadTuner",
    "build_model",
    "identify",
    "local_thread_cap",
    "model_identity",
    "model_key",
    "model_lock",
    "resolve_device",
    "score_windows",
    "set_backend_flags",
    "thread_tuner",
    "worker_model",
]

log = logging.getLogger(__name__)

ModelSpec = str | Callable[[], ScoringModel]
CUDA_INDEX_ENV = "SPTX_CUDA_INDEX"  # which of a worker's visible GPUs is its own
TORCH_THREADS_ENV = "SPTX_TORCH_THREADS"  # torch threads of a CPU worker


def resolve_device(device: Device | str) -> torch.device:
    """``auto`` = CUDA where torch sees a GPU, else CPU; ``cuda`` without a GPU is an error."""
    check_choice("device", device, DEVICES)
    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceError("device is 'cuda' but torch sees no GPU here; use 'auto' or 'cpu'")
    return torch.device("cuda", int(os.environ.get(CUDA_INDEX_ENV, "0")))


def build_model(spec: ModelSpec, device: torch.device, precision: str) -> ScoringModel:
    """Load ``spec`` (a ``load_model`` source or a zero-argument factory) in eval mode."""
    if isinstance(spec, str):
        from .models import load_model

        return load_model(spec, str(device), precision)
    if not callable(spec):
        raise TypeError(f"model must be a source string or a factory, got {type(spec).__name__}")
    set_backend_flags(precision, device)
    model = spec()
    if not isinstance(model, ScoringModel):
        raise TypeError(f"model factory returned {type(model).__name__}, not a ScoringModel")
    model.precision = precision
    return model.to(device).eval()


def model_identity(model: ScoringModel) -> dict[str, Any]:
    """What makes two models' outputs interchangeable: class, geometry and the weights' hash."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(
            tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        )
    return {
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "flank": int(model.flank),
        "channels": list(model.channels),
        "weights_sha256": digest.hexdigest(),
        "provenance": dict(model.provenance),
    }


def identify(spec: ModelSpec, precision: str) -> dict[str, Any]:
    """:func:`model_identity` of ``spec``, loaded once on the CPU (the driver needs the
    model's geometry and weights' hash before any worker loads it)."""
    return model_identity(build_model(spec, torch.device("cpu"), precision))


def model_key(identity: dict[str, Any], spec: ModelSpec) -> str:
    """The name a worker keeps a model under: its weights' hash and a token of its source."""
    from dask.base import tokenize

    return f"{identity['weights_sha256']}-{tokenize(spec)}"


_MODELS: dict[tuple[str, str, str], ScoringModel] = {}
_MODEL_LOCKS: dict[tuple[str, str, str], threading.Lock] = {}
_TUNERS: dict[tuple[str, int, str], ThreadTuner] = {}
_LOCK = threading.Lock()


def local_thread_cap(cluster: Mapping[str, Any], n_workers: int, threads: int | None) -> int | None:
    """Torch threads at most per worker of a local cluster: its share of the cores granted to
    this job (``threads``: Snakemake's ``{threads}``). None elsewhere: a SLURM or remote worker
    owns the cores of its own job."""
    if cluster.get("type", "local") not in ("local", "local_cuda"):
        return None
    return max(1, granted_cores(threads) // max(1, n_workers))


def worker_model(
    spec: ModelSpec, key: str, device: torch.device, precision: str, max_threads: int | None = None
) -> ScoringModel:
    """The model ``spec`` on ``device``, loaded once per process and kept under ``key``.

    ``key`` names the weights (e.g. their hash plus a token of ``spec``). On CPU the torch
    thread count is set first: the worker's share (``TORCH_THREADS_ENV``), at most
    ``max_threads``. On CUDA the precision's TF32 flags are set (``set_backend_flags``: off
    for ``float32``, on for ``tf32``).
    """
    set_backend_flags(precision, device)
    if device.type == "cpu":
        threads = [int(os.environ[TORCH_THREADS_ENV])] if os.environ.get(TORCH_THREADS_ENV) else []
        threads += [max_threads] if max_threads else []
        if threads and torch.get_num_threads() != min(threads):
            torch.set_num_threads(min(threads))
    cache_key = (key, str(device), precision)
    with _LOCK:
        if cache_key not in _MODELS:
            log.info("loading model on %s (%s)", device, precision)
            _MODELS[cache_key] = build_model(spec, device, precision)
            _MODEL_LOCKS[cache_key] = threading.Lock()
        return _MODELS[cache_key]


class ThreadTuner:
    """Chooses a CPU worker's torch threads by measuring them, shard by shard.

    The cores a worker is granted are not the cores it gets on a node that other jobs share:
    one torch thread per granted core then runs slower than fewer threads would. The tuner
    measures windows/s at each candidate (the grant, then halved down to one), uses the best,
    and every ``revisit`` shards measures another candidate again, so it follows the load.
    The first measurement (model warm-up) is discarded.
    """

    def __init__(self, most: int, revisit: int = 8) -> None:
        self.candidates = sorted({max(1, most >> k) for k in range(most.bit_length())})[::-1]
        self.revisit = revisit
        self.rates: dict[int, float] = {}
        self.shards = 0
        self._warm = False
        self._best: int | None = None

    def choose(self) -> int:
        """The thread count for the next shard."""
        untried = [c for c in self.candidates if c not in self.rates]
        if not self._warm or untried:
            return untried[0] if self._warm else self.candidates[0]
        best = max(self.rates, key=lambda c: self.rates[c])
        others = [c for c in self.candidates if c != best]
        if others and self.shards % self.revisit == 0:
            return others[(self.shards // self.revisit) % len(others)]
        return best

    def record(self, threads: int, windows: int, seconds: float) -> None:
        """The time ``threads`` took for ``windows`` windows."""
        self.shards += 1
        if not self._warm:
            self._warm = True
            return
        rate = windows / max(seconds, 1e-9)
        old = self.rates.get(threads)
        self.rates[threads] = rate if old is None else (old + rate) / 2
        best = max(self.rates, key=lambda c: self.rates[c])
        if best != self._best and len(self.rates) == len(self.candidates):
            shown = ", ".join(f"{c}: {r:.3g}" for c, r in sorted(self.rates.items()))
            log.info("torch threads: %d (windows/s by threads: %s)", best, shown)
            self._best = best


def thread_tuner(key: str, most: int, precision: str = "float32") -> ThreadTuner:
    """This process's tuner for model ``key`` in ``precision`` with at most ``most`` threads
    (each precision has its own: bfloat16 and float32 scale differently with threads)."""
    with _LOCK:
        return _TUNERS.setdefault((key, most, precision), ThreadTuner(most))


def model_lock(key: str, device: torch.device, precision: str) -> threading.Lock:
    """The lock of a model loaded by :func:`worker_model`: one forward pass at a time, so that
    two tasks of a worker overlap one's Zarr I/O with the other's compute instead of splitting
    the device between two passes."""
    with _LOCK:
        return _MODEL_LOCKS[(key, str(device), precision)]


Substitutions = Mapping[int, tuple[int, int, int]]  # ALT row -> (REF row, start, stop)


@torch.inference_mode()
def score_windows(
    model: ScoringModel,
    tokens: np.ndarray,
    batch_size: int = DEFAULT_BATCH_SIZE,
    output_dtype: str = "float32",  # not DEFAULT_OUTPUT_DTYPE: variants keep float32
    device: torch.device | str = "cpu",
    substitutions: Substitutions | None = None,
) -> np.ndarray:
    """``postprocess(model(tokens))`` in batches: ``[n, L]`` uint8 -> ``[n, L - 2F, C]``.

    ``substitutions``: ALT rows that equal a REF row outside ``[start, stop)``. For a model that
    reuses the REF pass (``reuses_reference``) each REF goes through the model with its ALTs
    (``forward_substituted``, at most ``max(batch_size, 2)`` windows a call); the outputs equal
    plain forwards up to float rounding. Other models ignore them.
    """
    n, length = tokens.shape
    target = length - 2 * model.flank
    n_channels = len(model.channels)
    out = np.empty((n, target, n_channels), dtype=output_dtype)
    torch_dtype = getattr(torch, output_dtype)
    use: Substitutions = (substitutions or {}) if model.reuses_reference else {}
    for refs, alts in _calls(n, batch_size, use):
        batch = torch.from_numpy(tokens[refs]).to(device).long()
        if alts:
            position = {row: i for i, row in enumerate(refs)}
            logits = model.forward_substituted(
                batch,
                torch.from_numpy(tokens[alts]).to(device).long(),
                [position[use[a][0]] for a in alts],
                [use[a][1:] for a in alts],
            )
        else:
            logits = model(batch)
        probs = model.postprocess(logits)
        rows = refs + alts
        if tuple(probs.shape) != (len(rows), target, n_channels):
            raise ValueError(
                f"{type(model).__name__} returned shape {tuple(probs.shape)} for {len(rows)} "
                f"windows; expected {(len(rows), target, n_channels)}"
            )
        out[rows] = probs.to(torch_dtype).cpu().numpy()
    return out


def _calls(
    n: int, batch_size: int, substitutions: Substitutions
) -> list[tuple[list[int], list[int]]]:
    """Rows of each model call: ``(rows, [])`` for a plain batch, ``(REF rows, ALT rows)`` for
    REFs with the ALTs derived from them. An ALT whose REF is itself an ALT is a plain window,
    and so are the ALTs of one REF beyond the first ``batch_size - 1``."""
    alts_of: dict[int, list[int]] = {}
    for alt, (ref, _, _) in sorted(substitutions.items()):
        derived = alts_of.setdefault(ref, [])
        if ref not in substitutions and len(derived) < max(batch_size - 1, 1):
            derived.append(alt)
    alts_of = {ref: alts for ref, alts in alts_of.items() if alts}
    grouped = set(alts_of).union(*alts_of.values())
    plain = [row for row in range(n) if row not in grouped]
    calls: list[tuple[list[int], list[int]]] = [
        (plain[i : i + batch_size], []) for i in range(0, len(plain), batch_size)
    ]
    refs: list[int] = []
    alts: list[int] = []
    for ref, derived in sorted(alts_of.items()):
        if refs and len(refs) + len(alts) + 1 + len(derived) > max(batch_size, 2):
            calls.append((refs, alts))
            refs, alts = [], []
        refs.append(ref)
        alts += derived
    if refs:
        calls.append((refs, alts))
    return calls
