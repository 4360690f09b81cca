"""``predict``: run a scoring model over every shard of windows.zarr with Dask, resumably.

One Dask task per shard. A task loads the model once per worker process, scores its windows in
batches, writes its shard of predictions.zarr and only then writes the shard's done marker, with
checksums of the input tokens and of the stored values. A rerun skips shards whose marker and
data agree and recomputes every other shard, so a run killed at any point loses at most the
shards that were in flight, and a corrupted shard is never taken as complete.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import numpy as np
import torch
import zarr
from dask.base import tokenize
from distributed import as_completed
from tqdm import tqdm

from . import store
from .cluster import CUDA_INDEX_ENV, TORCH_THREADS_ENV, open_client
from .models.base import PRECISIONS, ScoringModel

log = logging.getLogger(__name__)

ModelSpec = str | Callable[[], ScoringModel]
OUTPUT_DTYPES = ("float16", "float32")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class ShardJob:
    """What every shard task needs; small and picklable (the model is loaded on the worker)."""

    windows: str
    predictions: str
    model: ModelSpec
    model_key: str
    device: str
    precision: str
    batch_size: int
    output_dtype: str
    run_id: str


# ---------------------------------------------------------------------------------- the model


def resolve_device(device: str) -> torch.device:
    """``auto`` = CUDA where torch sees a GPU, else CPU."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {list(DEVICES)}, got {device!r}")
    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError("device is 'cuda' but torch sees no GPU here; use 'auto' or 'cpu'")
    return torch.device("cuda", int(os.environ.get(CUDA_INDEX_ENV, "0")))


def build_model(spec: ModelSpec, device: torch.device, precision: str) -> ScoringModel:
    """Load ``spec`` (a ``load_model`` source or a zero-argument factory) in eval mode."""
    if isinstance(spec, str):
        from .models import load_model

        return load_model(spec, str(device), precision)
    if not callable(spec):
        raise TypeError(f"model must be a source string or a factory, got {type(spec).__name__}")
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


_MODELS: dict[tuple[str, str, str], ScoringModel] = {}
_MODELS_LOCK = threading.Lock()


def _worker_model(job: ShardJob, device: torch.device) -> ScoringModel:
    """The model of ``job`` on ``device``, loaded once per worker process."""
    key = (job.model_key, str(device), job.precision)
    with _MODELS_LOCK:
        if key not in _MODELS:
            log.info("loading model on %s (%s)", device, job.precision)
            _MODELS[key] = build_model(job.model, device, job.precision)
        return _MODELS[key]


@torch.inference_mode()
def score_windows(
    model: ScoringModel,
    tokens: np.ndarray,
    batch_size: int = 8,
    output_dtype: str = "float32",
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """``postprocess(model(tokens))`` in batches: ``[n, L]`` uint8 -> ``[n, T, C]``."""
    n, length = tokens.shape
    target = length - 2 * model.flank
    n_channels = len(model.channels)
    out = np.empty((n, target, n_channels), dtype=output_dtype)
    torch_dtype = getattr(torch, output_dtype)
    for begin in range(0, n, batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(tokens[begin : begin + batch_size]))
        probs = model.postprocess(model(batch.to(device).long()))
        if tuple(probs.shape) != (len(batch), target, n_channels):
            raise ValueError(
                f"{type(model).__name__} returned shape {tuple(probs.shape)} for {len(batch)} "
                f"windows; expected {(len(batch), target, n_channels)}"
            )
        out[begin : begin + len(batch)] = probs.to(torch_dtype).cpu().numpy()
    return out


# --------------------------------------------------------------------------- one shard (task)


def shard_problem(
    predictions: zarr.Array, tokens: zarr.Array, start: int, stop: int, marker: dict[str, Any]
) -> str | None:
    """Why a marked shard cannot be trusted, or None when its data matches its marker."""
    if not marker:
        return "its done marker is damaged"
    if (marker.get("start"), marker.get("stop")) != (start, stop):
        return f"marker covers windows {marker.get('start')}-{marker.get('stop')}"
    try:
        values = predictions[start:stop]
    except Exception as err:  # any decode or I/O failure means "recompute"
        return f"data unreadable ({type(err).__name__}: {err})"
    if store.array_sha256(values) != marker.get("sha256"):
        return "data does not match the checksum in its done marker"
    if store.array_sha256(tokens[start:stop]) != marker.get("tokens_sha256"):
        return "its input windows changed since it was computed"
    return None


def _read_marker(path: str, shard: int) -> dict[str, Any] | None:
    try:
        return store.read_done(path, shard)
    except (OSError, ValueError):  # a damaged marker is no marker
        return {}


_ARRAYS: dict[str, tuple[zarr.Array, zarr.Array]] = {}


def _open_arrays(job: ShardJob) -> tuple[zarr.Array, zarr.Array]:
    """Token and prediction arrays, opened once per run and worker process (saves ~3 ms/task)."""
    with _MODELS_LOCK:
        if job.run_id not in _ARRAYS:
            _ARRAYS.clear()  # handles of an earlier run may describe a store since replaced
            _ARRAYS[job.run_id] = (
                store.open_windows(job.windows),
                store.open_predictions(job.predictions, mode="r+"),
            )
        return _ARRAYS[job.run_id]


def process_shard(job: ShardJob, shard: int, start: int, stop: int) -> dict[str, Any]:
    """Verify or compute one shard; returns a small record (never the predictions)."""
    tokens, predictions = _open_arrays(job)
    marker = _read_marker(job.predictions, shard)
    record = {"shard": shard, "windows": stop - start}
    if marker is not None:
        problem = shard_problem(predictions, tokens, start, stop, marker)
        if problem is None:
            return {**record, "status": "skipped"}
        log.warning("shard %d (windows %d-%d): %s; recomputing", shard, start, stop - 1, problem)
        store.clear_done(job.predictions, shard)

    device = resolve_device(job.device)
    if device.type == "cpu" and os.environ.get(TORCH_THREADS_ENV):
        torch.set_num_threads(int(os.environ[TORCH_THREADS_ENV]))
    model = _worker_model(job, device)
    window_tokens = tokens[start:stop]
    values = score_windows(model, window_tokens, job.batch_size, job.output_dtype, device)
    store.clear_shard(predictions, shard)  # a damaged old shard would be read back on write
    predictions[start:stop] = values
    store.mark_done(
        job.predictions,
        shard,
        {
            "start": start,
            "stop": stop,
            "sha256": store.array_sha256(values),
            "tokens_sha256": store.array_sha256(window_tokens),
            "dtype": job.output_dtype,
            "run_id": job.run_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "device": str(device),
            "finished_at": time.time(),
        },
    )
    return {**record, "status": "recomputed" if marker is not None else "computed"}


# ------------------------------------------------------------------------------ the store


def _fingerprint(
    windows_attrs: dict[str, Any],
    shape: tuple[int, ...],
    identity: dict[str, Any],
    precision: str,
    output_dtype: str,
) -> dict[str, Any]:
    """What must match for an existing prediction store to be resumed."""
    return {
        "windows": {
            "n_windows": int(shape[0]),
            "window_length": int(shape[1]),
            **{
                key: windows_attrs.get(key)
                for key in ("flank", "chunk_size", "shard_size", "fasta_sha256")
            },
        },
        "model": {key: identity[key] for key in ("class", "flank", "channels", "weights_sha256")},
        "precision": precision,
        "output_dtype": output_dtype,
    }


def _existing_fingerprint(path: Path) -> dict[str, Any] | None:
    try:
        group = zarr.open_group(str(path), mode="r")
        group[store.PROBABILITIES]  # noqa: B018 - the array must exist too
        return dict(group.attrs).get("fingerprint")
    except Exception:  # absent or unreadable: treated as incompatible
        return None


def prepare_store(
    path: Path,
    fingerprint: dict[str, Any],
    chunk_size: int,
    channels: list[str],
    shard_size: int,
    attrs: dict[str, Any],
) -> bool:
    """Create the prediction store unless a compatible one exists; True when resuming."""
    existing = _existing_fingerprint(path) if path.exists() else None
    if existing == fingerprint:
        log.info("resuming %s", path)
        return True
    if path.exists():
        differs = (
            sorted(k for k in fingerprint if (existing or {}).get(k) != fingerprint[k])
            if existing
            else ["unreadable store"]
        )
        log.warning(
            "%s was made for other inputs (differs in: %s); starting afresh",
            path,
            ", ".join(differs),
        )
        store.remove_store(path)
    store.create_predictions(
        path,
        fingerprint["windows"]["n_windows"],
        chunk_size,
        channels,
        shard_size,
        fingerprint["output_dtype"],
        {**attrs, "fingerprint": fingerprint},
    )
    return False


# ------------------------------------------------------------------------------- the driver


def _progress_bar(total: int, enabled: bool) -> tqdm:
    interactive = sys.stderr.isatty()
    return tqdm(
        total=total,
        unit="win",
        desc="predict",
        file=sys.stderr,
        disable=not enabled,
        dynamic_ncols=interactive,
        mininterval=0.5 if interactive else 30.0,  # log files get a line every 30 s
        smoothing=0.05,
    )


def _run_shards(
    client: Any,
    job: ShardJob,
    shards: Iterable[tuple[int, int, int]],
    total_windows: int,
    max_retries: int,
    max_in_flight: int | None,
    progress: bool,
    task: Callable[..., dict[str, Any]] = process_shard,
) -> Counter:
    """Submit shards with at most ``max_in_flight`` outstanding; consume results as they finish.

    ``task(job, shard, start, stop)`` is ``process_shard`` (benchmarks pass a no-op to time
    the scheduling alone).
    """
    threads = sum(client.nthreads().values()) or 1
    limit = max_in_flight or max(8, 4 * threads)
    queue = iter(shards)
    in_flight: dict[Any, tuple[int, int, int]] = {}
    # Results are gathered as tasks finish, so few are lost with a worker that dies later.
    finished = as_completed(with_results=True, raise_errors=False)
    counts: Counter = Counter()

    def submit_next() -> None:
        item = next(queue, None)
        if item is not None:
            future = client.submit(
                task,
                job,
                *item,
                key=f"sptx-shard-{item[0]:08d}-{job.run_id}",
                retries=max_retries,
                pure=False,
            )
            in_flight[future] = item
            finished.add(future)

    for _ in range(limit):
        submit_next()
    with _progress_bar(total_windows, progress) as bar:
        for future, result in finished:
            shard, start, stop = in_flight.pop(future)
            if future.status != "finished":
                client.cancel(list(in_flight))
                raise RuntimeError(
                    f"shard {shard} (windows {start}-{stop - 1}) failed after "
                    f"{max_retries} retries: {type(result).__name__}: {result}"
                ) from (result if isinstance(result, BaseException) else None)
            future.release()
            counts[result["status"]] += 1
            if result["status"] == "skipped":
                bar.total -= result["windows"]
                bar.refresh()
            else:
                counts["windows_computed"] += result["windows"]
                bar.update(result["windows"])
            bar.set_postfix(skipped=counts["skipped"], done=counts["computed"], refresh=False)
            submit_next()
    return counts


def _check_arguments(
    device: str, precision: str, batch_size: int, output_dtype: str, max_retries: int
) -> None:
    if device not in DEVICES:
        raise ValueError(f"device must be one of {list(DEVICES)}, got {device!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    if output_dtype not in OUTPUT_DTYPES:
        raise ValueError(f"output_dtype must be one of {list(OUTPUT_DTYPES)}, got {output_dtype!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if max_retries < 0:
        raise ValueError(f"max_retries must be 0 or more, got {max_retries}")


def _open_windows(path: Path) -> tuple[zarr.Array, dict[str, Any]]:
    if not path.exists():
        raise FileNotFoundError(f"windows store {path} does not exist; run the tile stage first")
    group = zarr.open_group(str(path), mode="r")
    attrs = dict(group.attrs)
    missing = [k for k in ("flank", "chunk_size", "shard_size") if k not in attrs]
    if missing or store.TOKENS not in group:
        raise ValueError(f"{path} is not a windows store (missing {missing or store.TOKENS})")
    return group[store.TOKENS], attrs


def predict(
    windows_zarr: str | os.PathLike,
    predictions_zarr: str | os.PathLike,
    model: ModelSpec,
    device: str = "auto",
    precision: str = "float32",
    batch_size: int = 8,
    output_dtype: str = "float16",
    cluster: dict[str, Any] | None = None,
    max_retries: int = 2,
    progress: bool = True,
    max_in_flight: int | None = None,
) -> dict[str, Any]:
    """Score every window of ``windows_zarr`` into ``predictions_zarr`` on a Dask cluster.

    ``model``: a ``load_model`` source or a picklable zero-argument factory of a ScoringModel.
    Resumes a compatible existing store (same windows, model, precision, dtype); a shard that
    fails more than ``max_retries`` times, or loses that many workers, stops the run.
    Returns a summary: shard counts (total, skipped, computed, recomputed), seconds in all and
    spent on shards, and windows/s over the latter (cluster start-up excluded).
    """
    _check_arguments(device, precision, batch_size, output_dtype, max_retries)
    began = time.perf_counter()
    windows_path = Path(windows_zarr).resolve()
    predictions_path = Path(predictions_zarr).resolve()
    tokens, windows_attrs = _open_windows(windows_path)
    flank, chunk_size = int(windows_attrs["flank"]), int(windows_attrs["chunk_size"])
    shard_size = int(windows_attrs["shard_size"])

    local = build_model(model, torch.device("cpu"), precision)  # for geometry and identity
    identity = model_identity(local)
    del local
    if identity["flank"] != flank or tokens.shape[1] != chunk_size + 2 * flank:
        raise ValueError(
            f"{windows_path} was tiled for flank {flank} (window length {tokens.shape[1]}) but "
            f"the model needs flank {identity['flank']}; rerun tile with --flank "
            f"{identity['flank']}"
        )
    fingerprint = _fingerprint(windows_attrs, tokens.shape, identity, precision, output_dtype)
    attrs = {"chunk_size": chunk_size, "model": identity, "windows": str(windows_path)}
    prepare_store(
        predictions_path, fingerprint, chunk_size, identity["channels"], shard_size, attrs
    )

    shards = list(store.shard_ranges(tokens.shape[0], shard_size))
    marked = store.done_shards(predictions_path)
    # Marked shards first: verifying them is quick and settles the progress bar's total.
    ordered = [s for s in shards if s[0] in marked] + [s for s in shards if s[0] not in marked]
    job = ShardJob(
        windows=str(windows_path),
        predictions=str(predictions_path),
        model=model,
        model_key=f"{identity['weights_sha256']}-{tokenize(model)}",
        device=device,
        precision=precision,
        batch_size=batch_size,
        output_dtype=output_dtype,
        run_id=uuid.uuid4().hex[:12],
    )
    counts: Counter = Counter()
    working = 0.0
    if shards:
        config = {
            # a task may take this many workers down with it before it counts as failed
            "distributed.scheduler.allowed-failures": max_retries,
            # one task per worker thread, so a dying worker takes no queued shard with it
            "distributed.scheduler.worker-saturation": 1.0,
        }
        worker_logs = predictions_path.parent / "logs" / "slurm"  # SLURM worker job logs
        with dask.config.set(config), open_client(cluster, device, worker_logs) as client:
            started = time.perf_counter()
            counts = _run_shards(
                client, job, ordered, tokens.shape[0], max_retries, max_in_flight, progress
            )
            working = time.perf_counter() - started
    seconds = time.perf_counter() - began
    summary = {
        "shards": len(shards),
        "skipped": counts["skipped"],
        "computed": counts["computed"] + counts["recomputed"],
        "recomputed": counts["recomputed"],
        "windows": int(tokens.shape[0]),
        "windows_computed": counts["windows_computed"],
        "seconds": round(seconds, 3),
        "shard_seconds": round(working, 3),  # without model check and cluster start-up
        "windows_per_s": round(counts["windows_computed"] / working, 3) if working else 0.0,
        "run_id": job.run_id,
    }
    log.info(
        "predict: %d shards, %d skipped, %d computed (%d recomputed); %.1f windows/s",
        summary["shards"],
        summary["skipped"],
        summary["computed"],
        summary["recomputed"],
        summary["windows_per_s"],
    )
    return summary
