"""Dask clusters for ``predict``: local CPU/GPU, dask-cuda, SLURM (dask-jobqueue), or an address.

``open_client(config, device)`` turns the ``cluster`` mapping of the config into a connected
``distributed.Client`` and tears down whatever it started on exit. A local worker runs
``tasks_per_worker`` tasks at once (1 unless set; predict sets 2, so one task's Zarr I/O
overlaps the other's forward pass behind ``runtime.model_lock``); the torch thread count of a
CPU worker is set so that the workers share the cores (``resources.granted_cores``: in a SLURM
job the CPUs SLURM granted the task, not the node's).

On SLURM the worker jobs are kept at ``jobs`` by dask-jobqueue's adaptive scaling, so a job that
dies (scancel, walltime, preemption, node failure) is replaced; a watchdog fails the run with
SLURM's own words when sbatch refuses a job or no worker has been connected for
``wait_timeout``, and every job is cancelled on exit, SIGTERM included.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dask.utils import parse_timedelta
from distributed import Client, Future, Nanny, Scheduler, SpecCluster, WorkerPlugin
from distributed.core import Status

from .errors import ClusterError, InputError
from .options import CLUSTER_TYPES, check_choice
from .resources import granted_cores, slurm_cpus
from .runtime import CUDA_INDEX_ENV, TORCH_THREADS_ENV, resolve_device

log = logging.getLogger(__name__)

# How long predict waits with no worker connected before it gives up (SLURM), unless configured.
DEFAULT_WAIT_TIMEOUT = "10 minutes"
# Worker job logs when neither the config nor the caller names a folder (predict passes one
# next to the prediction store): a folder of the current directory, not the directory itself.
DEFAULT_SLURM_LOGS = "slurm-logs"
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
    worker per GPU, which GPU is theirs (read by ``inference`` through the environment).

    In a SLURM job the threads never exceed the job's CPUs divided among its
    ``processes_per_job`` workers: more torch threads than granted CPUs compete for them
    (measured 2.4 against 18.3 windows/s for two threads on one granted CPU, tiny model).
    """

    name = "sptx-worker-settings"

    def __init__(self, threads: int, gpus_per_job: int = 0, processes_per_job: int = 1) -> None:
        self.threads = threads
        self.gpus_per_job = gpus_per_job
        self.processes_per_job = max(1, processes_per_job)

    def setup(self, worker: Any) -> None:
        threads = self.threads
        granted = slurm_cpus()
        if granted:
            threads = max(1, min(threads, granted // self.processes_per_job))
        os.environ[TORCH_THREADS_ENV] = str(threads)
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
        raise InputError(
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
    cores = granted_cores()
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
        raise ClusterError(
            "cluster type 'local_cuda' needs dask-cuda, which is not installed: "
            "pip install 'sptx-pipeline[cuda]' (or dask-cuda), or use cluster type 'local', "
            "which also starts one worker per GPU"
        ) from err
    options = {key: config[key] for key in config if key != "threads_per_worker"}  # torch's
    options.setdefault("dashboard_address", ":0")
    cluster = LocalCUDACluster(**options)
    n_workers = max(1, len(cluster.workers))
    threads = int(config.get("threads_per_worker") or max(1, granted_cores() // n_workers))
    return cluster, threads


class SlurmJobs:
    """Every job a SLURMCluster submitted, and sbatch's refusals; filled from the event loop."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.refusals: list[str] = []
        self._lock = threading.Lock()

    def submitted(self, job_id: str) -> None:
        with self._lock:
            self.ids.append(job_id)

    def refused(self, error: BaseException) -> None:
        """Keep sbatch's own words (its ``sbatch: error:`` lines) from dask-jobqueue's error."""
        text = str(error)
        lines = [line.strip() for line in text.splitlines() if "error" in line.lower()]
        reason = "; ".join(line for line in lines if line.startswith("sbatch:")) or text.strip()
        with self._lock:
            self.refusals.append(reason)

    def states(self) -> dict[str, str]:
        """``{job id: "STATE (reason)"}`` from squeue for the jobs still known to SLURM."""
        with self._lock:
            ids = set(self.ids)
        if not ids or shutil.which("squeue") is None:
            return {}
        result = subprocess.run(  # fails ("Invalid job id") only when SLURM forgot them all
            ["squeue", "-h", "--states=all", "-j", ",".join(sorted(ids)), "-o", "%i|%T|%r"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        states = {}
        for line in result.stdout.splitlines():
            job_id, _, rest = line.partition("|")
            state, _, reason = rest.partition("|")
            if job_id in ids:
                states[job_id] = f"{state} ({reason})" if reason not in ("", "None") else state
        return states

    def cancel_all(self, wait: float = 30.0) -> list[str]:
        """scancel every job still pending or running; wait until squeue shows none of them.

        The safety net behind dask-jobqueue's own scancel on close: a job submitted while the
        cluster was closing, or one whose close failed, would otherwise start later with no
        scheduler to talk to ("Nanny failed to start"). Returns the ids still listed after
        ``wait`` seconds (empty when all are gone).
        """
        # COMPLETING is not listed: such a job is cancelled, SLURM is killing its processes
        active = ("PENDING", "RUNNING", "CONFIGURING", "SUSPENDED", "REQUEUED", "REQUEUE_HOLD")
        deadline = time.monotonic() + wait
        cancelled: set[str] = set()
        while True:
            left = [i for i, state in self.states().items() if state.split(" ")[0] in active]
            if not left or time.monotonic() > deadline:
                return left
            fresh = [i for i in left if i not in cancelled]
            if fresh and shutil.which("scancel"):
                subprocess.run(["scancel", *fresh], capture_output=True, timeout=60)
                cancelled.update(fresh)
            time.sleep(0.5)


def _recording_job_class(record: SlurmJobs) -> type:
    """dask-jobqueue's SLURMJob that reports its job id and sbatch's refusal to ``record``."""
    from dask_jobqueue.slurm import SLURMJob

    class RecordedSLURMJob(SLURMJob):
        async def start(self) -> None:
            try:
                await super().start()
            except Exception as err:
                # "failed", not "created": the cluster refuses to close (AssertionError:
                # Status.created) while a worker it made is neither running nor failed.
                self.status = Status.failed
                record.refused(err)
                raise
            record.submitted(str(self.job_id))

    return RecordedSLURMJob


def slurm_cluster(
    config: Mapping[str, Any], device: str, record: SlurmJobs | None = None
) -> tuple[Any, int]:
    """dask-jobqueue SLURMCluster; every job runs ``processes`` workers (default one per GPU).

    ``record`` collects the ids of the submitted jobs and sbatch's refusals.
    """
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError as err:
        raise ClusterError(
            "cluster type 'slurm' needs dask-jobqueue: pip install 'sptx-pipeline[slurm]'"
        ) from err
    for key in ("walltime", "cores", "memory"):
        if key not in config:
            raise InputError(f"cluster type 'slurm' needs {key!r} (per job), e.g. {_EXAMPLE}")
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
        "job_cls": _recording_job_class(record or SlurmJobs()),
    }
    for key in ("local_directory", "log_directory", "interface", "python"):
        if config.get(key) is not None:
            options[key] = config[key]
    cluster = SLURMCluster(**options)
    # dask-jobqueue gives each worker cores // processes threads; one task at a time each.
    threads = max(1, cores // processes)
    return cluster, threads


WATCHDOG_INTERVAL = 1.0  # seconds between the watchdog's looks at the workers and squeue


class SlurmWatchdog:
    """Fails a SLURM run that cannot go on, in SLURM's words, instead of waiting forever.

    A thread polls every ``interval`` seconds. The run fails when sbatch refused a worker job
    (the same job script would be refused again) or when no worker has been connected for
    ``wait_timeout`` seconds (jobs pending for a reason, or dying before their worker starts).
    Its clock starts at the last poll that saw a worker, so the failure comes between
    ``wait_timeout - interval`` and ``wait_timeout + interval`` after the last worker left.
    The failure is kept in ``failure``; every task of the client is cancelled so that whoever
    waits on them wakes up, and ``open_client`` raises the failure in place of their error.
    """

    def __init__(
        self,
        cluster: Any,
        client: Client,
        record: SlurmJobs,
        wait_timeout: float,
        interval: float = WATCHDOG_INTERVAL,
    ) -> None:
        self.cluster = cluster
        self.client = client
        self.record = record
        self.wait_timeout = wait_timeout
        self.interval = interval
        self.failure: ClusterError | None = None
        self.changed = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sptx-slurm-watchdog", daemon=True)

    def workers(self) -> int:
        return len(self.cluster.scheduler_info.get("workers", {}))

    def start(self) -> None:
        log.info(
            "SLURM watchdog started: the run fails once no Dask worker has been connected for "
            "%.0f s (cluster option wait_timeout)",
            self.wait_timeout,
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _describe(self) -> str:
        states = self.record.states()
        listed = ", ".join(f"job {i}: {state}" for i, state in sorted(states.items()))
        return listed or "no job of this run is known to squeue any more"

    def _run(self) -> None:
        idle_since = time.monotonic()
        while not self._stop.wait(self.interval):
            try:
                message = None
                if self.record.refusals:
                    message = f"SLURM refused a worker job: {self.record.refusals[0]}"
                elif self.workers():
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since > self.wait_timeout:
                    message = (
                        f"no Dask worker connected for {self.wait_timeout:.0f} s "
                        f"(cluster option wait_timeout); SLURM says: {self._describe()}"
                    )
                if message:
                    self.fail(message)
                    return
            except Exception:  # a failed squeue must not end the watch
                log.debug("SLURM watchdog poll failed", exc_info=True)

    def fail(self, message: str) -> None:
        """Record the failure, log it, and cancel every task so that waiters return."""
        log.error("%s", message)
        self.failure = ClusterError(message)
        self.changed.set()
        keys = list(self.client.futures)
        if keys:
            futures: list[Future] = [Future(key, self.client) for key in keys]
            self.client.cancel(futures, reason="sptx-slurm-watchdog", msg=message)

    def wait_for_first_worker(self) -> None:
        """Block until a worker is connected; raise the watchdog's failure if it comes first."""
        while not self.workers():
            if self.failure is not None:
                raise self.failure
            self.changed.wait(0.5)


@contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """SIGTERM raises SystemExit(143) here, so that ``finally`` blocks cancel the SLURM jobs
    (Python's default for SIGTERM is to die at once, leaving pending jobs behind)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut cleanup
        log.warning("SIGTERM: cancelling the SLURM worker jobs")
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _slurm_client(
    config: Mapping[str, Any], device: str, jobs: int, wait_timeout: float
) -> Iterator[Client]:
    """A client on a SLURMCluster kept at ``jobs`` jobs; every job cancelled on exit."""
    record = SlurmJobs()
    with _terminate_as_exit():
        cluster, threads = slurm_cluster(config, device, record)
        try:
            with cluster, Client(cluster) as client:
                gpus_per_job = int(config.get("gpus") or 0)
                processes = int(config.get("processes") or max(1, gpus_per_job))
                client.register_plugin(WorkerSettings(threads, gpus_per_job, processes))
                # adapt, not scale: scale submits once and never replaces a job that died
                adaptive = cluster.adapt(minimum_jobs=jobs, maximum_jobs=jobs)
                log.info(
                    "asked SLURM for %d job(s) of %s cores, %s (worker logs in %s); "
                    "waiting up to %.0f s for the first worker",
                    jobs,
                    config["cores"],
                    config["memory"],
                    config.get("log_directory") or "the current directory",
                    wait_timeout,
                )
                watchdog = SlurmWatchdog(cluster, client, record, wait_timeout)
                watchdog.start()
                try:
                    watchdog.wait_for_first_worker()
                    log.info("first worker connected; job(s) %s", ", ".join(record.ids))
                    if client.dashboard_link:
                        log.info("Dask dashboard: %s", client.dashboard_link)
                    yield client
                except Exception as err:
                    if watchdog.failure is not None and err is not watchdog.failure:
                        raise watchdog.failure from err
                    raise
                finally:
                    watchdog.stop()
                    adaptive.stop()  # no new job while the cluster closes
        finally:
            left = record.cancel_all()
            if left:
                log.error("SLURM job(s) %s still listed after scancel", ", ".join(left))
            elif record.ids:
                log.info("SLURM job(s) %s ended", ", ".join(record.ids))


_EXAMPLE = (
    "{type: slurm, queue: gpu, account: myproject, walltime: '04:00:00', cores: 8, "
    "memory: 64GB, gpus: 1, jobs: 4}"
)
_BUILDERS = {"local": local_cluster, "local_cuda": local_cuda_cluster}  # slurm: _slurm_client


@contextmanager
def open_client(
    cluster_config: Mapping[str, Any] | None,
    device: str = "auto",
    log_directory: str | os.PathLike | None = None,
) -> Iterator[Client]:
    """A connected client for ``cluster_config`` (``{"type": ..., options}``); closed on exit.

    ``log_directory``: where SLURM worker jobs write their logs unless the config names one
    (predict passes ``logs/slurm`` next to the prediction store).
    """
    config = dict(cluster_config or {})
    kind = config.pop("type", "local")
    check_choice("cluster type", kind, CLUSTER_TYPES)
    _check_keys(kind, config)
    if kind == "address":
        if not config.get("address"):
            raise InputError("cluster type 'address' needs 'address', e.g. tcp://10.0.0.5:8786")
        with Client(config["address"], timeout=config.get("timeout", "30s")) as client:
            log.info("attached to the Dask scheduler at %s", config["address"])
            if config.get("threads_per_worker"):  # Dask's nannies start torch with 1 thread
                client.register_plugin(WorkerSettings(int(config["threads_per_worker"])))
            yield client
        return

    if kind == "slurm":
        jobs = int(config.pop("jobs", 1) or 1)
        wait_timeout = parse_timedelta(config.pop("wait_timeout", None) or DEFAULT_WAIT_TIMEOUT)
        if not config.get("log_directory"):
            config["log_directory"] = str(Path(log_directory or DEFAULT_SLURM_LOGS).resolve())
        with _slurm_client(config, device, jobs, wait_timeout) as client:
            yield client
        return

    cluster, threads = _BUILDERS[kind](config, device)
    with cluster, Client(cluster) as client:
        client.register_plugin(WorkerSettings(threads))
        if client.dashboard_link:
            log.info("Dask dashboard: %s", client.dashboard_link)
        yield client
