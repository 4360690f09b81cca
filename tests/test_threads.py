"""predict's torch threads follow the cores granted to the job; the model runs one task at a
time per worker while a second task does its I/O."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import torch

from sptx_pipeline.cluster import WorkerSettings
from sptx_pipeline.inference import predict
from sptx_pipeline.resources import granted_cores, machine_cores, slurm_cpus
from sptx_pipeline.runtime import TORCH_THREADS_ENV, ThreadTuner
from sptx_pipeline.testing import StandInModel


def test_granted_cores_takes_the_smallest_limit(monkeypatch):
    for name in ("SLURM_JOB_ID", "SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE"):
        monkeypatch.delenv(name, raising=False)
    machine = machine_cores()
    assert granted_cores() == machine
    assert granted_cores(1) == 1
    assert granted_cores(machine + 5) == machine
    monkeypatch.setenv("SLURM_CPUS_ON_NODE", "1")
    assert granted_cores() == machine  # not in a job: a leftover variable is ignored
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    assert granted_cores() == 1


@pytest.mark.parametrize("order", ["per task set first", "on node set first"])
def test_a_slurm_tasks_cpus_govern_not_the_nodes(monkeypatch, order):
    """``--ntasks=2 --cpus-per-task=4``: SLURM_CPUS_ON_NODE is 8 (both tasks), a task may use
    4. The rule used to be written twice, once each way round (8 in the Dask worker settings,
    4 in predict); both read resources.granted_cores now, whatever order the variables came."""
    monkeypatch.setattr("sptx_pipeline.resources.machine_cores", lambda: 64)
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    pairs = [("SLURM_CPUS_PER_TASK", "4"), ("SLURM_CPUS_ON_NODE", "8")]
    for name, value in pairs if order == "per task set first" else pairs[::-1]:
        monkeypatch.setenv(name, value)
    assert slurm_cpus() == 4
    assert granted_cores() == 4
    WorkerSettings(threads=16).setup(SimpleNamespace(name="w"))
    assert os.environ[TORCH_THREADS_ENV] == "4"
    monkeypatch.delenv("SLURM_CPUS_PER_TASK")  # no --cpus-per-task: the job's CPUs on the node
    assert granted_cores() == 8


CALLS: dict[str, list] = {"threads": [], "active": [0], "most": [0]}
_GUARD = threading.Lock()


class RecordingModel(StandInModel):
    """Records torch's thread count and how many forward passes run at once."""

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        with _GUARD:
            CALLS["threads"].append(torch.get_num_threads())
            CALLS["active"][0] += 1
            CALLS["most"][0] = max(CALLS["most"][0], CALLS["active"][0])
        try:
            time.sleep(0.02)
            return super().logits(tokens)
        finally:
            with _GUARD:
                CALLS["active"][0] -= 1


@dataclass(frozen=True)
class RecordingFactory:
    def __call__(self) -> RecordingModel:
        return RecordingModel()


def test_threads_cap_and_one_forward_pass_at_a_time(windows, tmp_path):
    path, tokens = windows
    before = torch.get_num_threads()
    try:
        summary = predict(
            path,
            tmp_path / "p.zarr",
            RecordingFactory(),
            device="cpu",
            batch_size=4,
            cluster={"type": "local"},  # one worker in this process, two tasks (the default)
            progress=False,
            threads=1,
            tune_threads=True,  # with one thread granted the tuner has nothing else to try
        )
    finally:
        torch.set_num_threads(before)
    assert summary.computed == 4 and summary.items_computed == len(tokens)
    assert CALLS["threads"] and set(CALLS["threads"]) == {1}
    assert CALLS["most"][0] == 1  # two tasks in flight, never two forward passes


def test_thread_tuner_measures_candidates_and_follows_the_load():
    """Simulated machine: 2 threads are twice as fast when idle, half as fast beside a busy
    process; the tuner uses the faster count and switches when the load changes."""
    tuner = ThreadTuner(4, revisit=4)
    assert tuner.candidates == [4, 2, 1]
    busy = False

    def seconds(threads: int) -> float:  # per 10 windows
        speed = {4: 3.0, 2: 2.0, 1: 1.0} if not busy else {4: 0.3, 2: 0.5, 1: 0.9}
        return 10 / speed[threads]

    chosen = []
    for shard in range(40):
        busy = shard >= 20
        threads = tuner.choose()
        chosen.append(threads)
        tuner.record(threads, 10, seconds(threads))
    assert chosen[:4] == [4, 4, 2, 1]  # warm-up (discarded), then each candidate once
    idle, loaded = chosen[4:20], chosen[28:]
    assert idle.count(4) >= 12  # the best, but for the revisits
    assert loaded.count(1) >= 9  # found the new best within a few revisits
