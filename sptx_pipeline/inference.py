"""``predict``: run a scoring model over every shard of windows.zarr with Dask, resumably.

One Dask task per shard. A task loads the model once per worker process, scores its windows in
batches, writes its shard of predictions.zarr and only then writes the shard's done marker, with
checksums of the input tokens and of the stored values. A rerun skips shards whose marker and
data agree and recomputes every other shard, so a run killed at any point loses at most the
shards that were in flight, and a corrupted shard is never taken as complete.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr

from . import store
from .errors import InputError, InputMismatchError, MissingInputError
from .lock import holds_store_lock
from .options import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_DEVICE,
    DEFAULT_MAX_RETRIES,
    DEFAULT_OUTPUT_DTYPE,
    DEFAULT_PRECISION,
    DEVICES,
    OUTPUT_DTYPES,
    PRECISIONS,
    Device,
    OutputDtype,
    Precision,
    check_choice,
)
from .runner import RunSummary, ShardResult, resume_order, run_stage
from .runtime import (
    ModelSpec,
    identify,
    local_thread_cap,
    model_key,
    model_lock,
    resolve_device,
    score_windows,
    thread_tuner,
    worker_model,
)
from .store import Shard, shard_grid

log = logging.getLogger(__name__)


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
    max_threads: int | None = None  # torch threads per worker at most (CPU)
    tune_threads: bool = False  # measure fewer threads too (CPU, no threads_per_worker given)


# --------------------------------------------------------------------------- one shard (task)


def shard_problem(
    predictions: zarr.Array, tokens: zarr.Array, start: int, stop: int, marker: dict[str, Any]
) -> str | None:
    """Why a marked shard cannot be trusted, or None when its data matches its marker."""
    _, problem = store.read_verified(predictions, start, stop, marker)
    if problem is not None:
        return problem
    if store.array_sha256(tokens[start:stop]) != marker.get("tokens_sha256"):
        return "its input windows changed since it was computed"
    return None


_ARRAYS: dict[str, tuple[zarr.Array, zarr.Array]] = {}
_ARRAYS_LOCK = threading.Lock()


def _open_arrays(job: ShardJob) -> tuple[zarr.Array, zarr.Array]:
    """Token and prediction arrays, opened once per run and worker process (saves ~3 ms/task)."""
    with _ARRAYS_LOCK:
        if job.run_id not in _ARRAYS:
            _ARRAYS.clear()  # handles of an earlier run may describe a store since replaced
            _ARRAYS[job.run_id] = (
                store.open_windows(job.windows),
                store.open_predictions(job.predictions, mode="r+"),
            )
        return _ARRAYS[job.run_id]


def process_shard(job: ShardJob, shard: Shard) -> ShardResult:
    """Verify or compute one shard; returns a small record (never the predictions)."""
    tokens, predictions = _open_arrays(job)
    start, stop = shard.start, shard.stop
    marker = store.read_marker(job.predictions, shard.index)
    if marker is not None:
        problem = shard_problem(predictions, tokens, start, stop, marker)
        if problem is None:
            return ShardResult(shard.index, shard.size, "skipped")
        log.warning("%s: %s; recomputing", shard.describe("windows"), problem)
        store.clear_done(job.predictions, shard.index)

    device = resolve_device(job.device)
    model = worker_model(job.model, job.model_key, device, job.precision, job.max_threads)
    window_tokens = np.asarray(tokens[start:stop])
    # With two tasks per worker, the other task reads or writes its shard meanwhile.
    with model_lock(job.model_key, device, job.precision):
        tuner = (
            thread_tuner(job.model_key, torch.get_num_threads(), job.precision)
            if job.tune_threads
            else None
        )
        if tuner is not None and device.type == "cpu":
            threads = tuner.choose()
            torch.set_num_threads(threads)
            began = time.perf_counter()
        values = score_windows(model, window_tokens, job.batch_size, job.output_dtype, device)
        if tuner is not None and device.type == "cpu":
            tuner.record(threads, stop - start, time.perf_counter() - began)
    store.clear_shard(predictions, shard.index)  # a damaged old shard would be read back
    predictions[start:stop] = values
    store.mark_done(
        job.predictions,
        shard.index,
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
    return ShardResult(shard.index, shard.size, "recomputed" if marker is not None else "computed")


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
        fingerprint = dict(group.attrs).get("fingerprint")
        return dict(fingerprint) if isinstance(fingerprint, dict) else None
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
    if store.resumable(path, fingerprint, existing):
        return True
    if path.exists():
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


def _with_local_defaults(cluster: dict[str, Any] | None) -> dict[str, Any]:
    """The cluster mapping with predict's defaults: a local cluster runs two tasks per worker
    (measured: benchmarks/bench_overlap.py)."""
    config = {"type": "local", **(cluster or {})}
    if config["type"] == "local":
        config.setdefault("tasks_per_worker", 2)
    return config


def _check_arguments(
    device: str, precision: str, batch_size: int, output_dtype: str, max_retries: int
) -> None:
    check_choice("device", device, DEVICES)
    check_choice("precision", precision, PRECISIONS)
    check_choice("output_dtype", output_dtype, OUTPUT_DTYPES)
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    if max_retries < 0:
        raise InputError(f"max_retries must be 0 or more, got {max_retries}")


def _open_windows(path: Path) -> tuple[zarr.Array, dict[str, Any]]:
    if not path.exists():
        raise MissingInputError(f"windows store {path} does not exist; run the tile stage first")
    group = zarr.open_group(str(path), mode="r")
    attrs = dict(group.attrs)
    missing = [k for k in ("flank", "chunk_size", "shard_size") if k not in attrs]
    if missing or store.TOKENS not in group:
        raise InputError(f"{path} is not a windows store (missing {missing or store.TOKENS})")
    return store.open_windows(path), attrs


@holds_store_lock("predictions_zarr", purpose="predict")  # one writer per store
def predict(
    windows_zarr: str | os.PathLike,
    predictions_zarr: str | os.PathLike,
    model: ModelSpec,
    device: Device = DEFAULT_DEVICE,
    precision: Precision = DEFAULT_PRECISION,
    batch_size: int = DEFAULT_BATCH_SIZE,
    output_dtype: OutputDtype = DEFAULT_OUTPUT_DTYPE,
    cluster: dict[str, Any] | None = None,
    max_retries: int = DEFAULT_MAX_RETRIES,
    progress: bool = True,
    max_in_flight: int | None = None,
    threads: int | None = None,
    tune_threads: bool = False,
) -> RunSummary:
    """Score every window of ``windows_zarr`` into ``predictions_zarr`` on a Dask cluster.

    ``model``: a ``load_model`` source or a picklable zero-argument factory of a ScoringModel.
    Resumes a compatible existing store (same windows, model, precision, dtype); a shard that
    fails more than ``max_retries`` times, or loses that many workers, stops the run.
    Returns the run's summary: shard counts (total, skipped, computed, recomputed), seconds in
    all and spent on shards, and windows/s over the latter (cluster start-up excluded).

    ``threads``: the cores granted to this job (Snakemake's ``{threads}``); with a local
    cluster, the CPU workers' torch threads together never exceed it, nor the process's CPU
    affinity or SLURM allocation (:func:`resources.granted_cores`). A local cluster runs two
    tasks per worker unless ``tasks_per_worker`` says otherwise: while one task's model runs,
    the other reads its tokens or writes its predictions (the model runs one task at a time).
    ``tune_threads`` lets each CPU worker pick its torch threads within that cap by measurement
    (``runtime.ThreadTuner``; not with an explicit ``threads_per_worker``). Off by default:
    shards computed with different thread counts can differ in the last bit, so two runs would
    no longer be bit-identical.
    """
    _check_arguments(device, precision, batch_size, output_dtype, max_retries)
    began = time.perf_counter()
    windows_path = Path(windows_zarr).resolve()
    predictions_path = Path(predictions_zarr).resolve()
    tokens, windows_attrs = _open_windows(windows_path)
    flank, chunk_size = int(windows_attrs["flank"]), int(windows_attrs["chunk_size"])
    shard_size = int(windows_attrs["shard_size"])

    identity = identify(model, precision)  # geometry and weights' hash
    if identity["flank"] != flank or tokens.shape[1] != chunk_size + 2 * flank:
        raise InputMismatchError(
            f"{windows_path} was tiled for flank {flank} (window length {tokens.shape[1]}) but "
            f"the model needs flank {identity['flank']}; rerun tile with --flank "
            f"{identity['flank']}"
        )
    fingerprint = _fingerprint(windows_attrs, tokens.shape, identity, precision, output_dtype)
    attrs = {"chunk_size": chunk_size, "model": identity, "windows": str(windows_path)}
    prepare_store(
        predictions_path, fingerprint, chunk_size, identity["channels"], shard_size, attrs
    )

    shards = shard_grid(tokens.shape[0], shard_size)
    job = ShardJob(
        windows=str(windows_path),
        predictions=str(predictions_path),
        model=model,
        model_key=model_key(identity, model),
        device=device,
        precision=precision,
        batch_size=batch_size,
        output_dtype=output_dtype,
        run_id=uuid.uuid4().hex[:12],
    )
    cluster = _with_local_defaults(cluster)

    def make_task(client: Any) -> Callable[[Shard], ShardResult]:
        """The shard task, with the torch threads of this machine's workers capped to their
        share of the cores granted to this job."""
        cap = local_thread_cap(cluster, len(client.nthreads()), threads)
        tune = cap is not None and tune_threads and "threads_per_worker" not in cluster
        return functools.partial(
            process_shard, dataclasses.replace(job, max_threads=cap, tune_threads=tune)
        )

    summary = run_stage(
        make_task,
        resume_order(shards, store.done_shards(predictions_path)),
        cluster=cluster,
        device=device,
        run_id=job.run_id,
        began=began,
        desc="predict",
        unit="win",
        noun="windows",
        max_retries=max_retries,
        log_directory=predictions_path.parent / "logs" / "slurm",  # SLURM worker job logs
        max_in_flight=max_in_flight,
        progress=progress,
    )
    log.info(
        "predict: %d shards, %d skipped, %d computed (%d recomputed); %.1f windows/s",
        summary.shards,
        summary.skipped,
        summary.computed,
        summary.recomputed,
        summary.items_per_s,
    )
    return summary
