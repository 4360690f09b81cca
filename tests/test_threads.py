"""predict's torch threads follow the cores granted to the job; the model runs one task at a
time per worker while a second task does its I/O."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import torch

from sptx_pipeline.inference import predict
from sptx_pipeline.runtime import ThreadTuner, granted_cores
from sptx_pipeline.testing import StandInModel


def test_granted_cores_takes_the_smallest_limit(monkeypatch):
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    monkeypatch.delenv("SLURM_CPUS_ON_NODE", raising=False)
    affinity = len(__import__("os").sched_getaffinity(0))
    assert granted_cores() == affinity
    assert granted_cores(1) == 1
    assert granted_cores(affinity + 5) == affinity
    monkeypatch.setenv("SLURM_CPUS_ON_NODE", "1")
    assert granted_cores() == 1
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    monkeypatch.setenv("SLURM_CPUS_ON_NODE", "64")  # per task wins over the node's
    assert granted_cores() == 1


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
