"""Resume and failure recovery: SIGKILL of predict, a dying worker, a corrupted shard."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import zarr

from sptx_pipeline import store
from sptx_pipeline.inference import predict
from sptx_pipeline.testing import THREADED, StandInFactory, make_windows

ROOT = Path(__file__).resolve().parents[1]


def _read(path):
    return store.open_predictions(path)[:]


def _markers(path):
    return {shard: store.read_done(path, shard) for shard in sorted(store.done_shards(path))}


@pytest.mark.slow
def test_sigkill_then_resume_computes_only_the_rest(tmp_path):
    windows = tmp_path / "windows.zarr"
    make_windows(windows, n_windows=40, shard_size=4)  # 10 shards
    out = tmp_path / "predictions.zarr"
    command = [
        sys.executable, "-m", "tests.stand_in_predict", str(windows), str(out),
        "--sleep", "0.4", "--cluster", json.dumps(THREADED),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while len(store.done_shards(out)) < 3 and proc.poll() is None:
            assert time.monotonic() < deadline, "predict made no progress"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the process running predict, and anything it started
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = _markers(out)
    assert 3 <= len(before) < 10, "the kill must land in the middle of the run"

    summary = predict(windows, out, StandInFactory(), device="cpu", batch_size=4,
                      cluster=THREADED, progress=False)  # fmt: skip
    assert summary.skipped == len(before)
    assert summary.computed == 10 - len(before) and summary.recomputed == 0
    after = _markers(out)
    assert sorted(after) == list(range(10))
    assert all(after[shard] == marker for shard, marker in before.items())  # not rewritten
    assert len({after[s]["run_id"] for s in after if s not in before}) == 1

    reference = tmp_path / "uninterrupted.zarr"
    predict(windows, reference, StandInFactory(), device="cpu", batch_size=4,
            cluster=THREADED, progress=False)  # fmt: skip
    assert _read(out).tobytes() == _read(reference).tobytes()


def _kill_first_worker_to_start(signal_dir: Path, killed: list[int], stop: threading.Event):
    while not stop.is_set():
        started = sorted(signal_dir.glob("*.started"))
        if started:
            pid = int(started[0].stem)
            assert pid != os.getpid()
            os.kill(pid, signal.SIGKILL)  # a worker process of the cluster predict started
            killed.append(pid)
            return
        time.sleep(0.02)


@pytest.mark.slow
def test_killed_worker_task_is_retried(tmp_path):
    windows = tmp_path / "windows.zarr"
    make_windows(windows, n_windows=24, shard_size=4)  # 6 shards
    two_workers = {"type": "local", "n_workers": 2}
    signal_dir = tmp_path / "signals"
    signal_dir.mkdir()
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(
        target=_kill_first_worker_to_start, args=(signal_dir, killed, stop), daemon=True
    )
    killer.start()
    try:
        disturbed = predict(
            windows, tmp_path / "disturbed.zarr",
            StandInFactory(sleep=0.5, signal_dir=str(signal_dir)),
            device="cpu", batch_size=4, cluster=two_workers, max_retries=2, progress=False,
        )  # fmt: skip
    finally:
        stop.set()
        killer.join()
    assert len(killed) == 1
    with pytest.raises(ProcessLookupError):
        os.kill(killed[0], 0)  # really gone
    assert disturbed.computed == 6 and store.missing_shards(tmp_path / "disturbed.zarr") == []
    pids = {m["pid"] for m in _markers(tmp_path / "disturbed.zarr").values()}
    assert killed[0] not in pids  # every shard was finished by a surviving or restarted worker

    predict(windows, tmp_path / "calm.zarr", StandInFactory(), device="cpu", batch_size=4,
            cluster=two_workers, progress=False)  # fmt: skip
    assert _read(tmp_path / "disturbed.zarr").tobytes() == _read(tmp_path / "calm.zarr").tobytes()


def _flip_bytes(shard_file: Path) -> None:
    data = bytearray(shard_file.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    shard_file.write_bytes(bytes(data))


def _truncate(shard_file: Path) -> None:
    shard_file.write_bytes(shard_file.read_bytes()[:100])


def _delete(shard_file: Path) -> None:
    shard_file.unlink()


@pytest.mark.parametrize("damage", [_flip_bytes, _truncate, _delete])
def test_corrupted_shard_is_detected_and_recomputed(windows, tmp_path, damage):
    path, _ = windows
    out = tmp_path / "predictions.zarr"
    kwargs = {"device": "cpu", "cluster": THREADED, "progress": False, "batch_size": 4}
    predict(path, out, StandInFactory(), **kwargs)
    good = _read(out)
    shard_file = out / store.PROBABILITIES / "c" / "2" / "0" / "0"
    assert shard_file.is_file()
    damage(shard_file)
    summary = predict(path, out, StandInFactory(), **kwargs)
    assert (summary.recomputed, summary.computed, summary.skipped) == (1, 1, 3)
    assert _read(out).tobytes() == good.tobytes()


def test_damaged_or_missing_marker_means_not_done(windows, tmp_path):
    path, _ = windows
    out = tmp_path / "predictions.zarr"
    kwargs = {"device": "cpu", "cluster": THREADED, "progress": False, "batch_size": 4}
    predict(path, out, StandInFactory(), **kwargs)
    good = _read(out)
    store.done_marker(out, 0).write_text("{not json")
    store.done_marker(out, 3).unlink()  # data written, marker never made: not complete
    assert store.missing_shards(out) == [3]
    summary = predict(path, out, StandInFactory(), **kwargs)
    assert (summary.computed, summary.recomputed, summary.skipped) == (2, 1, 2)
    assert _read(out).tobytes() == good.tobytes()


@pytest.mark.slow
def test_shard_that_keeps_killing_workers_stops_the_run(tmp_path):
    windows = tmp_path / "windows.zarr"
    make_windows(windows, n_windows=12, shard_size=4)
    zarr.open_group(str(windows), mode="r+")[store.TOKENS][6] = 4  # shard 1 kills its worker
    with pytest.raises(RuntimeError, match=r"shard 1 \(windows 4-7\) failed after 1 retries"):
        predict(
            windows, tmp_path / "p.zarr", StandInFactory(die_on_all_n=True), device="cpu",
            cluster={"type": "local", "n_workers": 1, "processes": True, "tasks_per_worker": 1},
            max_retries=1,
            progress=False,
        )  # fmt: skip
    assert 1 not in store.done_shards(tmp_path / "p.zarr")
