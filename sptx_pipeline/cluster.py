"""Dask clusters for ``predict``: local CPU/GPU, dask-cuda, SLURM (dask-jobqueue), or an address.

``open_client(config, device)`` turns the ``cluster`` mapping of the config into a connected
``distributed.Client`` and tears down whatever it started on exit. Each worker runs one task at
a time; the torch thread count of a CPU worker is set so that the workers share the cores.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import dask.system
from distributed import Client, Nanny, Scheduler, SpecCluster, WorkerPlugin

from .runtime import CUDA_INDEX_ENV, TORCH_THREADS_ENV, resolve_device

log = logging.getLogger(__name__)

CLUSTER_TYPES = ("local", "local_cuda", "slurm", "address")
_KEYS = {
    "local": {
        "n_workers",
        "threads_per_worker",
        "tasks_per_worker",
        "memory_limit",
        "processes",
        "dashboard_address",
    },
    "local_cuda": {
        "CUDA_VISIBLE_DEVICES",
        "threads_per_worker",
        "memory_limit",
        "dashboard_address",
    },
    "slurm": {
        "queue",
        "account",
        "walltime",
        "cores",
        "memory",
        "gpus",
        "jobs",
        "processes",
        "job_extra_directives",
        "job_script_prologue",
        "local_directory",
        "log_directory",
        "interface",
        "python",
        "dashboard_address",
        "wait_timeout",
    },
    "address": {"address", "timeout", "threads_per_worker"},
}


class WorkerSettings(WorkerPlugin):
    """Tell tasks on a worker how many torch threads to use and, where a SLURM job runs one
    worker per GPU, which GPU is theirs (read by ``inference`` through the environment)."""

    name = "sptx-worker-settings"

    def __init__(self, threads: int, gpus_per_job: int = 0) -> None:
        self.threads = threads
        self.gpus_per_job = gpus_per_job

    def setup(self, worker: Any) -> None:
        os.environ[TORCH_THREADS_ENV] = str(self.threads)
        if self.gpus_per_job > 1:
            # dask-jobqueue names the workers of one job "<job name>-<i>", i = 0..processes-1
            suffix = str(worker.name).rsplit("-", 1)[-1]
            index = int(suffix) if suffix.isdigit() else 0
            os.environ[CUDA_INDEX_ENV] = str(index % self.gpus_per_job)


def use_cuda(device: str) -> bool:
    """Whether ``device`` (auto/cpu/cuda) means GPUs on this machine."""
    return resolve_device(device).type == "cuda"


def _check_keys(kind: str, config: Mapping[str, Any]) -> None:
    unknown = sorted(set(config) - _KEYS[kind])
    if unknown:
        raise ValueError(
            f"unknown cluster option(s) {unknown} for cluster type {kind!r}; "
            f"allowed: {sorted(_KEYS[kind])}"
        )


def _visible_gpus() -> list[str]:
    import torch

    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed:
        return [item.strip() for item in listed.split(",") if item.strip()]
    return [str(i) for i in range(torch.cuda.device_count())]


def local_cluster(config: Mapping[str, Any], device: str) -> tuple[SpecCluster, int]:
    """A cluster on this machine: one worker per GPU, or CPU workers sharing the cores.

    Returns the cluster and the torch threads per worker.
    """
    cores = dask.system.CPU_COUNT
    dashboard = config.get("dashboard_address", ":0")  # a free port: no clash on shared nodes
    memory_limit = config.get("memory_limit", "auto")
    # 2 overlaps one shard's Zarr I/O with another's GPU compute (twice the activation memory)
    tasks = int(config.get("tasks_per_worker") or 1)
    if use_cuda(device):
        gpus = _visible_gpus()
        threads = int(config.get("threads_per_worker") or max(1, cores // len(gpus)))
        workers = {
            f"gpu-{gpu}": {
                "cls": Nanny,
                "options": {
                    "nthreads": tasks,
                    "memory_limit": memory_limit,
                    "env": {"CUDA_VISIBLE_DEVICES": gpu},
                },
            }
            for gpu in gpus
        }
        scheduler = {"cls": Scheduler, "options": {"dashboard_address": dashboard}}
        log.info("local cluster: %d GPU worker(s) (GPUs %s)", len(gpus), ",".join(gpus))
        return SpecCluster(
            workers=workers, scheduler=scheduler, silence_logs=logging.ERROR
        ), threads

    from distributed import LocalCluster

    n_workers = int(config.get("n_workers") or 1)
    threads = int(config.get("threads_per_worker") or max(1, cores // n_workers))
    # One CPU worker runs as a thread of this process: a separate worker process (plus its
    # nanny) competes with the torch threads for the cores and cost 20% of throughput on a
    # 2-core machine (benchmarks/bench_pipeline.py: 0.78 vs 0.97 of the model alone).
    processes = bool(config.get("processes", n_workers > 1))
    cluster = LocalCluster(
        n_workers=n_workers,
        threads_per_worker=tasks,
        processes=processes,
        memory_limit=memory_limit,
        dashboard_address=dashboard,
        silence_logs=logging.ERROR,
    )
    log.info("local cluster: %d CPU worker(s), %d torch thread(s) each", n_workers, threads)
    return cluster, threads


def local_cuda_cluster(config: Mapping[str, Any], device: str) -> tuple[Any, int]:
    """dask-cuda's LocalCUDACluster: one worker per visible GPU."""
    try:
        from dask_cuda import LocalCUDACluster
    except ImportError as err:
        raise RuntimeError(
            "cluster type 'local_cuda' needs dask-cuda, which is not installed: "
            "pip install 'sptx-pipeline[cuda]' (or dask-cuda), or use cluster type 'local', "
            "which also starts one worker per GPU"
        ) from err
    options = {key: config[key] for key in config if key != "threads_per_worker"}  # torch's
    options.setdefault("dashboard_address", ":0")
    cluster = LocalCUDACluster(**options)
    n_workers = max(1, len(cluster.workers))
    threads = int(config.get("threads_per_worker") or max(1, dask.system.CPU_COUNT // n_workers))
    return cluster, threads


def slurm_cluster(config: Mapping[str, Any], device: str) -> tuple[Any, int]:
    """dask-jobqueue SLURMCluster; every job runs ``processes`` workers (default one per GPU)."""
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError as err:
        raise RuntimeError(
            "cluster type 'slurm' needs dask-jobqueue: pip install 'sptx-pipeline[slurm]'"
        ) from err
    for key in ("walltime", "cores", "memory"):
        if key not in config:
            raise ValueError(f"cluster type 'slurm' needs {key!r} (per job), e.g. {_EXAMPLE}")
    cores = int(config["cores"])
    gpus = int(config.get("gpus") or 0)
    processes = int(config.get("processes") or max(1, gpus))
    extra = list(config.get("job_extra_directives") or [])
    if gpus:
        extra.append(f"--gres=gpu:{gpus}")
    options = {
        "queue": config.get("queue"),
        "account": config.get("account"),
        "walltime": config["walltime"],
        "cores": cores,
        "memory": config["memory"],
        "processes": processes,
        "job_extra_directives": extra,
        "job_script_prologue": list(config.get("job_script_prologue") or []),
        "scheduler_options": {"dashboard_address": config.get("dashboard_address", ":0")},
    }
    for key in ("local_directory", "log_directory", "interface", "python"):
        if config.get(key) is not None:
            options[key] = config[key]
    cluster = SLURMCluster(**options)
    # dask-jobqueue gives each worker cores // processes threads; one task at a time each.
    threads = max(1, cores // processes)
    return cluster, threads


_EXAMPLE = (
    "{type: slurm, queue: gpu, account: myproject, walltime: '04:00:00', cores: 8, "
    "memory: 64GB, gpus: 1, jobs: 4}"
)
_BUILDERS = {"local": local_cluster, "local_cuda": local_cuda_cluster, "slurm": slurm_cluster}


@contextmanager
def open_client(cluster_config: Mapping[str, Any] | None, device: str = "auto") -> Iterator[Client]:
    """A connected client for ``cluster_config`` (``{"type": ..., options}``); closed on exit."""
    config = dict(cluster_config or {})
    kind = config.pop("type", "local")
    if kind not in CLUSTER_TYPES:
        raise ValueError(f"cluster type must be one of {list(CLUSTER_TYPES)}, got {kind!r}")
    _check_keys(kind, config)
    if kind == "address":
        if not config.get("address"):
            raise ValueError("cluster type 'address' needs 'address', e.g. tcp://10.0.0.5:8786")
        with Client(config["address"], timeout=config.get("timeout", "30s")) as client:
            log.info("attached to the Dask scheduler at %s", config["address"])
            if config.get("threads_per_worker"):  # Dask's nannies start torch with 1 thread
                client.register_plugin(WorkerSettings(int(config["threads_per_worker"])))
            yield client
        return

    jobs = int(config.pop("jobs", 1) or 1)
    wait_timeout = config.pop("wait_timeout", None)
    cluster, threads = _BUILDERS[kind](config, device)
    with cluster, Client(cluster) as client:
        gpus_per_job = int(config.get("gpus") or 0) if kind == "slurm" else 0
        client.register_plugin(WorkerSettings(threads, gpus_per_job))
        if kind == "slurm":
            cluster.scale(jobs=jobs)
            log.info("submitted %d SLURM job(s); waiting for the first worker", jobs)
            client.wait_for_workers(1, timeout=wait_timeout)
        if client.dashboard_link:
            log.info("Dask dashboard: %s", client.dashboard_link)
        yield client
