"""Both ways of running on SLURM, on a real SLURM cluster (``.ci/slurm/start-slurm.sh``).

The SLURM tier: marked ``slurm``, which the README's test command deselects (a login node with
a cluster but without the ``[slurm]`` extra passes it); ``.ci/run`` starts a cluster, installs
the extra and runs ``pytest -m slurm``. Skipped, with the reason, where no cluster answers
``sinfo`` (a failure under ``SPTX_REQUIRE_SLURM``). Every test runs real jobs on the cluster's
default partition with a tiny random SpTransformer (the bundled example) or the stand-in model, and
compares outputs exactly with a local run with the same torch threads (one per worker).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sptx_pipeline import store
from sptx_pipeline.cluster import WATCHDOG_INTERVAL
from sptx_pipeline.models.random_checkpoint import TINY_CONFIG, write_random_checkpoint
from sptx_pipeline.testing import make_windows
from tests.genome_fixtures import EXAMPLE_FASTA, EXAMPLE_GTF, REPO

PROFILE = REPO / "profiles" / "slurm-cpu"
ACTIVE = {"PENDING", "RUNNING", "CONFIGURING", "SUSPENDED", "REQUEUED"}


def _sinfo() -> dict | None:
    """Default partition, CPUs and memory (MB) of its nodes; None when no cluster answers."""
    if shutil.which("sinfo") is None:
        return None
    try:
        result = subprocess.run(
            ["sinfo", "-h", "-o", "%P|%c|%m|%T"], capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        return None
    rows = [line.split("|") for line in result.stdout.split() if line.count("|") == 3]
    usable = [r for r in rows if r[3].rstrip("*~#") in ("idle", "mixed", "allocated")]
    if result.returncode or not usable:
        return None
    default = next((r for r in usable if r[0].endswith("*")), usable[0])
    return {"partition": default[0].rstrip("*"), "cpus": int(default[1]), "mem": int(default[2])}


CLUSTER = _sinfo()
if CLUSTER is None and os.environ.get("SPTX_REQUIRE_SLURM"):  # .ci/run, after starting one
    pytest.fail("SPTX_REQUIRE_SLURM is set but no SLURM cluster answers sinfo", pytrace=False)
# Every test but the profile checks at the end runs jobs: skipped, with the reason, without
# a cluster, and selected on their own by ``pytest -m slurm``.
_NO_CLUSTER = "no SLURM cluster answers sinfo (as root: .ci/slurm/start-slurm.sh)"


def on_slurm(test):
    """Marks ``slurm``, skipped without a cluster, run with an empty queue before and after."""
    test = pytest.mark.usefixtures("empty_queue")(test)
    return pytest.mark.slurm(pytest.mark.skipif(CLUSTER is None, reason=_NO_CLUSTER)(test))


def squeue(states: str = "all") -> dict[str, tuple[str, str]]:
    """``{job id: (name, state)}`` of the jobs SLURM lists."""
    out = subprocess.run(
        ["squeue", "-h", f"--states={states}", "-o", "%i|%j|%T"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {i: (name, state) for i, name, state in (line.split("|") for line in out.split())}


def active_jobs() -> set[str]:
    return {i for i, (_, state) in squeue().items() if state in ACTIVE}


def wait_until(condition, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def empty_queue():
    """Each test starts with, and must leave, no pending or running job."""
    wait_until(lambda: not active_jobs(), 60, "an empty queue before the test")
    yield
    left = active_jobs()
    if left:
        subprocess.run(["scancel", *left], check=False)
    assert not left, f"jobs left pending or running: {left}"


def slurm_cluster(**options) -> dict:
    """A cluster config for the test partition: one core (one torch thread) per job."""
    config = {
        "type": "slurm",
        "queue": CLUSTER["partition"],
        "walltime": "00:20:00",
        "cores": 1,
        "memory": "2GB",
        "jobs": 1,
        "wait_timeout": 120,
    }
    return {**config, **options}


# ------------------------------------------------------------------ the bundled example, 2 ways


def snakemake(workdir: Path, *args: str, config: tuple[str, ...] = ()) -> str:
    command = [
        *(sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")),
        *("--directory", str(workdir), "--configfile", str(REPO / "config" / "config.yaml")),
        *args,
        *("--config", f"fasta={EXAMPLE_FASTA}", f"gtf={EXAMPLE_GTF}", *config),
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(command, capture_output=True, text=True, cwd=workdir, env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    return output


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """A tiny random checkpoint and the bundled example run locally, one torch thread."""
    base = tmp_path_factory.mktemp("example")
    checkpoint = write_random_checkpoint(base / "tiny", seed=5, **TINY_CONFIG)
    local = base / "local"
    one_thread = json.dumps({"type": "local", "threads_per_worker": 1})
    snakemake(
        base,
        "--cores",
        "2",
        config=(f"model={checkpoint}", f"outdir={local}", f"cluster={one_thread}"),
    )
    return base, checkpoint, local


def assert_same_outputs(out: Path, local: Path) -> None:
    """predictions.zarr and scores/ identical to the local run's, value for value."""
    np.testing.assert_array_equal(
        store.open_predictions(out / "predictions.zarr")[:],
        store.open_predictions(local / "predictions.zarr")[:],
    )
    key = ["chrom", "strand", "pos"]
    ours = pd.read_parquet(out / "scores").sort_values(key, ignore_index=True)
    theirs = pd.read_parquet(local / "scores").sort_values(key, ignore_index=True)
    assert len(ours) > 20_000  # 25,977 positions of the six genes
    pd.testing.assert_frame_equal(ours, theirs, check_exact=True)


@on_slurm
def test_bundled_example_with_dask_slurm_workers_equals_local(example):
    base, checkpoint, local = example
    out = base / "dask-slurm"
    cluster = json.dumps(slurm_cluster(jobs=2))
    started = time.monotonic()
    snakemake(
        base, "--cores", "2", config=(f"model={checkpoint}", f"outdir={out}", f"cluster={cluster}")
    )
    print(f"Dask way: bundled example in {time.monotonic() - started:.0f} s")
    assert_same_outputs(out, local)
    log = (out / "logs" / "predict.log").read_text()
    ids = re.search(r"SLURM job\(s\) ([\d, ]+) ended", log).group(1).split(", ")
    assert len(ids) >= 2, log
    # worker logs next to predict.log, none in the working directory
    assert {p.name for p in (out / "logs" / "slurm").iterdir()} >= {
        f"dask-worker-{ids[0]}.out",
        f"dask-worker-{ids[0]}.err",
    }
    assert not list(base.glob("slurm-*.out")) and not (base / "slurm-logs").exists()


def cpu_profile_for(cluster: dict, directory: Path) -> dict:
    """profiles/slurm-cpu sized for the test node: CPUs and memory capped to what a
    node has, the partition the test cluster's; every other key as shipped."""
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    memory = cluster["mem"] // 2

    def fit(resources: dict) -> None:
        if "cpus_per_task" in resources:
            resources["cpus_per_task"] = 1  # one torch thread, as in the local run
        if "mem_mb" in resources:
            resources["mem_mb"] = min(resources["mem_mb"], memory)

    profile["default-resources"]["slurm_partition"] = cluster["partition"]
    fit(profile["default-resources"])
    for resources in profile["set-resources"].values():
        fit(resources)
    profile["set-threads"] = {rule: 1 for rule in profile["set-threads"]}
    # a test cluster runs a job in seconds: check soon (the shipped value suits real queues)
    profile["slurm-init-seconds-before-status-checks"] = 2
    profile["latency-wait"] = 5
    directory.mkdir()
    (directory / "config.yaml").write_text(yaml.safe_dump(profile))
    return profile


@on_slurm
def test_bundled_example_through_the_cpu_profile_equals_local(example):
    """Every rule a SLURM job (executor plugin, squeue status checks, no accounting)."""
    base, checkpoint, local = example
    out = base / "profile"
    profile = cpu_profile_for(CLUSTER, base / "profile-cpu")
    assert profile["slurm-status-command"] == "squeue"
    started = time.monotonic()
    output = snakemake(
        base,
        "--profile",
        str(base / "profile-cpu"),
        config=(f"model={checkpoint}", f"outdir={out}"),
    )
    print(f"Snakemake way: bundled example in {time.monotonic() - started:.0f} s")
    assert_same_outputs(out, local)

    submitted = dict(re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", output))
    rules = {}
    for job, rule in re.findall(r"Finished jobid: (\d+) \(Rule: (\w+)\)", output):
        rules[rule] = submitted.get(job)
    jobs = {rule: slurm_id for rule, slurm_id in rules.items() if slurm_id}
    assert set(jobs) == {"genes", "model", "tile", "predict", "merge", "tracks"}, output[-3000:]
    defaults, per_rule = profile["default-resources"], profile["set-resources"]
    for rule, slurm_id in jobs.items():
        shown = subprocess.run(
            ["scontrol", "show", "job", slurm_id], capture_output=True, text=True, check=True
        ).stdout
        wanted = {**defaults, **per_rule.get(rule, {})}
        assert f"Partition={CLUSTER['partition']} " in shown, (rule, shown)
        assert f"MinMemoryNode={wanted['mem_mb']}M" in shown, (rule, shown)
        assert f"NumCPUs={wanted['cpus_per_task']} " in shown, (rule, shown)
        assert "gres/gpu" not in shown, (rule, shown)  # no GPU asked of a CPU partition
    # inside its 1-CPU job predict uses that CPU, not all of the node's
    log = (out / "logs" / "predict.log").read_text()
    assert "local cluster: 1 CPU worker(s), 1 torch thread(s) each" in log, log


# ----------------------------------------------------------- the Dask way: failures and exits


def stand_in_predict(tmp_path: Path, cluster: dict, sleep: float = 0.0, n_windows: int = 48):
    """Windows in shards of 4, and a started ``predict`` process on them (stand-in model)."""
    windows = tmp_path / "windows.zarr"
    if not windows.exists():
        make_windows(windows, n_windows=n_windows, shard_size=4)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    command = [
        sys.executable,
        "-m",
        "tests.stand_in_predict",
        str(windows),
        str(tmp_path / "p.zarr"),
    ]
    command += ["--sleep", str(sleep), "--cluster", json.dumps(cluster)]
    log = open(tmp_path / "predict.log", "w")  # noqa: SIM115 - closed by the caller's wait
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, env=env)


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory) -> np.ndarray:
    """The stand-in windows predicted locally with one torch thread."""
    base = tmp_path_factory.mktemp("stand-in-local")
    process = stand_in_predict(base, {"type": "local", "threads_per_worker": 1})
    assert process.wait(timeout=120) == 0, (base / "predict.log").read_text()
    return store.open_predictions(base / "p.zarr")[:]


def worker_jobs() -> set[str]:
    return {
        i for i, (name, state) in squeue().items() if name == "dask-worker" and state == "RUNNING"
    }


@on_slurm
@pytest.mark.parametrize("jobs", [1, 2])
def test_scancel_of_a_worker_job_mid_run_is_survived(tmp_path, jobs, local_reference):
    started = time.monotonic()
    process = stand_in_predict(tmp_path, slurm_cluster(jobs=jobs), sleep=1.0)
    try:
        done = tmp_path / "p.zarr" / "done"
        wait_until(lambda: done.is_dir() and any(done.iterdir()), 120, "a first finished shard")
        running = wait_until(lambda: len(worker_jobs()) >= jobs and worker_jobs(), 60, "jobs")
        killed = sorted(running)[:1]
        shards_then = len(list(done.iterdir()))
        subprocess.run(["scancel", *killed], check=True)
        assert process.wait(timeout=240) == 0, (tmp_path / "predict.log").read_text()[-4000:]
    finally:
        process.kill()
    log = (tmp_path / "predict.log").read_text()
    print(f"scancel with {jobs} job(s): run took {time.monotonic() - started:.0f} s")
    assert shards_then < 12, "the scancel landed after the run"
    assert store.done_shards(tmp_path / "p.zarr") == set(range(12))
    np.testing.assert_array_equal(store.open_predictions(tmp_path / "p.zarr")[:], local_reference)
    ids = re.search(r"SLURM job\(s\) ([\d, ]+) ended", log).group(1).split(", ")
    assert set(ids) - set(killed), f"no job replaced the cancelled {killed}: {ids}"


@on_slurm
def test_a_job_slurm_refuses_fails_predict_with_slurms_reason(tmp_path):
    too_big = f"{CLUSTER['mem'] * 4 // 1000}GB"  # more memory than the node has
    started = time.monotonic()
    process = stand_in_predict(tmp_path, slurm_cluster(memory=too_big, wait_timeout=60))
    returncode = process.wait(timeout=90)
    seconds = time.monotonic() - started
    log = (tmp_path / "predict.log").read_text()
    assert returncode != 0, log
    assert seconds < 60, f"took {seconds:.0f} s"
    error = re.search(
        r"^sptx_pipeline\.errors\.ClusterError: SLURM refused a worker job: (sbatch: error: .*)$",
        log,
        re.M,
    )
    assert error, log[-3000:]
    assert "Requested node configuration is not available" in error.group(1)
    assert "AssertionError" not in log


def logged_at(log: str, pattern: str) -> float:
    """Epoch time of the first line of ``log`` (tests/stand_in_predict.py's format) that
    matches ``pattern``."""
    match = re.search(rf"^(\d+\.\d+) {pattern}", log, re.M)
    assert match, (pattern, log[-3000:])
    return float(match.group(1))


WATCHDOG_STARTED = r"INFO sptx_pipeline\.cluster: SLURM watchdog started"
WATCHDOG_FAILED = r"ERROR sptx_pipeline\.cluster: no Dask worker connected"


@on_slurm
def test_a_job_that_never_starts_fails_predict_after_wait_timeout(tmp_path):
    """Measured from the watchdog's start (its clock) to its failure, both as the code logs
    them: a bound from the test's own clock would include the process's start-up (76 s once,
    at a load of 28 on 2 cores)."""
    cluster = slurm_cluster(job_extra_directives=["--begin=now+1hour"], wait_timeout=10)
    process = stand_in_predict(tmp_path, cluster)
    returncode = process.wait(timeout=300)
    log = (tmp_path / "predict.log").read_text()
    assert returncode != 0, log[-3000:]
    seconds = logged_at(log, WATCHDOG_FAILED) - logged_at(log, WATCHDOG_STARTED)
    assert 10 <= seconds < 10 + WATCHDOG_INTERVAL + 10, (seconds, log[-3000:])
    assert re.search(
        r"^sptx_pipeline\.errors\.ClusterError: "
        r"no Dask worker connected for 10 s \(cluster option wait_timeout\); "
        r"SLURM says: job \d+: PENDING \(BeginTime\)",
        log,
        re.M,
    ), log[-3000:]


@on_slurm
def test_losing_every_worker_with_no_replacement_fails_predict_after_wait_timeout(tmp_path):
    """Mid-run: the only job cancelled while the partition is down, so its replacement pends.

    The contract: predict fails naming the timeout and SLURM's reason, keeps the done shards,
    and fails no earlier than the watchdog's clock allows. That clock starts at its last poll
    that saw a worker (every ``WATCHDOG_INTERVAL`` s); the worker is connected until the
    scancel below, so the clock cannot start earlier than one interval before ``started``
    (taken before the scancel); the failure's time is the one the code logs, not the process's
    exit. Measured from after the scancel, as before, the bound was broken by the poll
    granularity: 29.60 s against 30 s in a SLURM run.
    """
    partition = CLUSTER["partition"]
    wait_timeout = 30  # longer than dask-jobqueue takes to replace a lost job (15-20 s)
    process = stand_in_predict(tmp_path, slurm_cluster(wait_timeout=wait_timeout), sleep=1.0)
    try:
        done = tmp_path / "p.zarr" / "done"
        wait_until(lambda: done.is_dir() and any(done.iterdir()), 120, "a first finished shard")
        subprocess.run(
            ["scontrol", "update", f"PartitionName={partition}", "State=DOWN"], check=True
        )
        running = wait_until(worker_jobs, 30, "the running worker job")
        started = time.time()
        subprocess.run(["scancel", *running], check=True)
        returncode = process.wait(timeout=300)
    finally:
        subprocess.run(["scontrol", "update", f"PartitionName={partition}", "State=UP"], check=True)
        process.kill()
    log = (tmp_path / "predict.log").read_text()
    assert returncode != 0, log[-3000:]
    seconds = logged_at(log, WATCHDOG_FAILED) - started
    assert wait_timeout - WATCHDOG_INTERVAL <= seconds < wait_timeout + 30, (seconds, log[-3000:])
    assert re.search(
        r"^sptx_pipeline\.errors\.ClusterError: "
        r"no Dask worker connected for 30 s \(cluster option wait_timeout\); "
        r"SLURM says: .*job \d+: PENDING \(PartitionDown\)",
        log,
        re.M,
    ), log[-3000:]
    assert 0 < len(store.done_shards(tmp_path / "p.zarr")) < 12  # the done shards are kept


@on_slurm
def test_sigterm_cancels_every_job(tmp_path):
    # three one-core jobs on a node with fewer cores: one stays pending
    jobs = CLUSTER["cpus"] + 1
    process = stand_in_predict(tmp_path, slurm_cluster(jobs=jobs), sleep=1.0)
    try:
        done = tmp_path / "p.zarr" / "done"
        wait_until(lambda: done.is_dir() and any(done.iterdir()), 120, "a first finished shard")
        ours = {i for i, (name, _) in squeue().items() if name == "dask-worker"}
        states = {squeue()[i][1] for i in ours if i in squeue()}
        assert "PENDING" in states and "RUNNING" in states, states
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=60)
    finally:
        process.kill()
    log = (tmp_path / "predict.log").read_text()
    assert returncode == 128 + signal.SIGTERM, log[-3000:]
    assert "SIGTERM: cancelling the SLURM worker jobs" in log
    assert not active_jobs() & ours, squeue()


# -------------------------------------------------------------- the profiles (no cluster needed)


def read_profile(name: str) -> dict:
    return yaml.safe_load((REPO / "profiles" / name / "config.yaml").read_text())


def test_the_cpu_profile_is_the_gpu_profile_without_gpus():
    gpu, cpu = read_profile("slurm"), read_profile("slurm-cpu")
    for profile in (gpu, cpu):
        # sacct fails on clusters without accounting storage, and the plugin then waits forever
        assert profile["executor"] == "slurm" and profile["slurm-status-command"] == "squeue"
        assert (
            profile["set-threads"]["predict"]
            == profile["set-resources"]["predict"]["cpus_per_task"]
        )
    assert gpu["set-resources"]["predict"]["gpu"] == 1
    assert not {"gpu", "gres", "gpu_model"} & set(cpu["set-resources"]["predict"])
    assert "gpu" not in json.dumps(cpu["default-resources"])
    # every rule's resources are in each profile (a --set-resources would replace them all)
    assert set(cpu["set-resources"]) >= set(gpu["set-resources"])
    assert cpu["set-resources"]["merge"] == gpu["set-resources"]["merge"]
    assert {k: v for k, v in cpu.items() if k not in ("set-resources", "set-threads")} == {
        k: v for k, v in gpu.items() if k not in ("set-resources", "set-threads")
    }


@pytest.mark.slurm
def test_slurm_executor_settings_in_the_profiles_exist():
    """The profile keys slurm-* are fields of the installed plugin's ExecutorSettings.

    In the SLURM tier (``-m slurm``), where ``.ci/run`` has installed the ``[slurm]`` extra: the
    plugin is not in ``[test]``, and a skip here used to hide the test from every CI run."""
    import snakemake_executor_plugin_slurm as plugin

    fields = {f.replace("_", "-") for f in plugin.ExecutorSettings.__dataclass_fields__}
    for name in ("slurm", "slurm-cpu"):
        keys = {k.removeprefix("slurm-") for k in read_profile(name) if k.startswith("slurm-")}
        assert keys and keys <= fields, keys - fields


# ------------------------------------------------- granted CPUs, sbatch's words (no cluster)


def test_threads_never_exceed_the_cpus_slurm_granted(monkeypatch):
    from types import SimpleNamespace

    from sptx_pipeline.cluster import TORCH_THREADS_ENV, WorkerSettings
    from sptx_pipeline.resources import granted_cores

    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    WorkerSettings(threads=4).setup(SimpleNamespace(name="w"))
    assert os.environ[TORCH_THREADS_ENV] == "4"  # outside SLURM: as configured
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("SLURM_CPUS_ON_NODE", "3")
    WorkerSettings(threads=4).setup(SimpleNamespace(name="w"))
    assert os.environ[TORCH_THREADS_ENV] == "3"
    WorkerSettings(threads=4, processes_per_job=2).setup(SimpleNamespace(name="w-1"))
    assert os.environ[TORCH_THREADS_ENV] == "1"  # 3 CPUs shared by the job's 2 workers
    monkeypatch.setenv("SLURM_CPUS_ON_NODE", "1")
    assert granted_cores() == 1


def test_a_local_cluster_in_a_slurm_job_uses_the_granted_cpus(monkeypatch):
    from sptx_pipeline.cluster import TORCH_THREADS_ENV, open_client

    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("SLURM_CPUS_ON_NODE", "1")
    with open_client({"type": "local", "processes": False}, "cpu") as client:
        threads = set(client.run(lambda: os.environ[TORCH_THREADS_ENV]).values())
    assert threads == {"1"}


def test_sbatchs_reason_is_kept_from_dask_jobqueues_error():
    from sptx_pipeline.cluster import SlurmJobs

    record = SlurmJobs()
    record.refused(
        RuntimeError(
            "Command exited with non-zero exit code.\nExit code: 1\nCommand:\nsbatch /tmp/x.sh\n"
            "stdout:\n\nstderr:\nsbatch: error: Invalid generic resource (gres) specification\n\n"
        )
    )
    assert record.refusals == ["sbatch: error: Invalid generic resource (gres) specification"]
