"""open_client: cluster types, sizing, SLURM job scripts (no SLURM needed), clear errors."""

from __future__ import annotations

import importlib.util
import os
from types import SimpleNamespace

import dask.system
import numpy as np
import pytest
import torch
import yaml
from distributed import LocalCluster

from sptx_pipeline import cluster as cluster_module
from sptx_pipeline import store
from sptx_pipeline.cluster import (
    CUDA_INDEX_ENV,
    TORCH_THREADS_ENV,
    WorkerSettings,
    open_client,
    slurm_cluster,
)
from sptx_pipeline.inference import predict
from sptx_pipeline.testing import StandInFactory, reference

PROFILE = os.path.join(os.path.dirname(__file__), "..", "profiles", "slurm")


def test_local_cpu_cluster_shares_the_cores():
    with open_client({"type": "local", "n_workers": 2, "processes": False}, "cpu") as client:
        assert sorted(client.nthreads().values()) == [1, 1]  # one task at a time per worker
        threads = client.run(lambda: os.environ[TORCH_THREADS_ENV])
    assert set(threads.values()) == {str(max(1, dask.system.CPU_COUNT // 2))}
    config = {"type": "local", "processes": False, "tasks_per_worker": 2, "threads_per_worker": 5}
    with open_client(config, "cpu") as client:
        assert list(client.nthreads().values()) == [2]
        assert set(client.run(lambda: os.environ[TORCH_THREADS_ENV]).values()) == {"5"}


def test_address_attaches_to_a_running_scheduler(windows, tmp_path):
    path, tokens = windows
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False) as cluster:
        config = {"type": "address", "address": cluster.scheduler_address}
        with open_client({**config, "threads_per_worker": 3}, "cpu") as client:
            assert client.scheduler.address == cluster.scheduler_address
            assert set(client.run(lambda: os.environ[TORCH_THREADS_ENV]).values()) == {"3"}
        summary = predict(
            path, tmp_path / "p.zarr", StandInFactory(), device="cpu", output_dtype="float32",
            cluster=config, progress=False,
        )  # fmt: skip
        assert summary.computed == 4 and len(cluster.workers) == 1  # still running after
    values = store.open_predictions(tmp_path / "p.zarr")[:]
    np.testing.assert_allclose(values, reference(tokens), rtol=0, atol=1e-6)


def test_slurm_job_script_has_the_directives():
    config = {
        "queue": "gpu",
        "account": "splice-lab",
        "walltime": "06:00:00",
        "cores": 16,
        "memory": "64GB",
        "gpus": 2,
        "job_extra_directives": ["--constraint=a100"],
        "job_script_prologue": ["module load cuda/12.4"],
    }
    cluster, threads = slurm_cluster(config, "cuda")
    with cluster:
        script = cluster.job_script()
    assert threads == 8  # 16 cores shared by one worker per GPU
    for line in (
        "#SBATCH -p gpu",
        "#SBATCH -A splice-lab",
        "#SBATCH -t 06:00:00",
        "#SBATCH --gres=gpu:2",
        "#SBATCH --constraint=a100",
        "#SBATCH --cpus-per-task=16",
        "module load cuda/12.4",
        "--nworkers 2",
    ):
        assert line in script, f"{line!r} missing from:\n{script}"
    assert "#SBATCH --mem=60G" in script  # dask-jobqueue rounds 64GB to GiB


def test_slurm_needs_size_per_job():
    with pytest.raises(ValueError, match="walltime"):
        slurm_cluster({"cores": 4, "memory": "8GB"}, "cpu")


def test_worker_settings_pick_a_gpu_per_worker_of_a_job(monkeypatch):
    monkeypatch.delenv(CUDA_INDEX_ENV, raising=False)
    WorkerSettings(threads=4, gpus_per_job=2).setup(SimpleNamespace(name="SLURMCluster-3-1"))
    assert os.environ[CUDA_INDEX_ENV] == "1" and os.environ[TORCH_THREADS_ENV] == "4"


@pytest.mark.skipif(importlib.util.find_spec("dask_cuda") is not None, reason="dask-cuda present")
def test_local_cuda_without_dask_cuda_says_what_to_install():
    with pytest.raises(RuntimeError, match=r"needs dask-cuda.*\[cuda\]"):
        with open_client({"type": "local_cuda"}, "cuda"):
            pass


def test_bad_cluster_configs():
    with pytest.raises(ValueError, match="cluster type must be one of"):
        with open_client({"type": "kubernetes"}, "cpu"):
            pass
    with pytest.raises(ValueError, match=r"unknown cluster option\(s\) \['queue'\]"):
        with open_client({"type": "local", "queue": "gpu"}, "cpu"):
            pass
    with pytest.raises(ValueError, match="needs 'address'"):
        with open_client({"type": "address"}, "cpu"):
            pass


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_requested_without_gpu():
    with pytest.raises(RuntimeError, match="no GPU"):
        with open_client({"type": "local"}, "cuda"):
            pass


def test_slurm_profile_gives_predict_a_gpu():
    with open(os.path.join(PROFILE, "config.yaml")) as handle:
        profile = yaml.safe_load(handle)
    assert profile["executor"] == "slurm"
    assert {"slurm_partition", "slurm_account", "runtime", "mem_mb"} <= set(
        profile["default-resources"]
    )
    predict_resources = profile["set-resources"]["predict"]
    assert predict_resources["gpu"] == 1 and predict_resources["cpus_per_task"] >= 1


def test_local_gpu_cluster_pins_one_gpu_per_worker(monkeypatch):
    """The GPU branch, run on CPU: what matters is one worker per GPU, each seeing only its own."""
    monkeypatch.setattr(cluster_module, "use_cuda", lambda device: True)
    monkeypatch.setattr(cluster_module, "_visible_gpus", lambda: ["0", "3"])
    with open_client({"type": "local"}, "auto") as client:
        client.wait_for_workers(2, timeout=60)
        assert sorted(client.nthreads().values()) == [1, 1]
        seen = client.run(lambda: os.environ["CUDA_VISIBLE_DEVICES"])
    assert sorted(seen.values()) == ["0", "3"]
