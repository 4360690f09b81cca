"""One writer per store: predict's lock across processes; a dead holder's lock never blocks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sptx_pipeline import store
from sptx_pipeline.errors import StoreInUseError
from sptx_pipeline.lock import holder, lock_path, store_lock
from sptx_pipeline.testing import THREADED, make_windows

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
HOLD = """
import sys, time
from sptx_pipeline.lock import store_lock
with store_lock(sys.argv[1], "test holder"):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _wait_for_holder(path, pid, proc, timeout=60):
    deadline = time.monotonic() + timeout
    while (holder(path) or {}).get("pid") != pid:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the lock was never taken"
        time.sleep(0.05)


def test_a_held_lock_names_host_and_pid(tmp_path):
    path = tmp_path / "predictions.zarr"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), "60"], env=ENV, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(StoreInUseError) as err, store_lock(path, "second", wait=False):
            pass
        message = str(err.value)
        assert f"host {socket.gethostname()}" in message and f"pid {proc.pid}" in message
        assert "test holder" in message
    finally:
        proc.kill()  # dies holding the lock: the kernel releases it
        proc.wait()
    # a stale lock file of a dead process does not block
    assert holder(path)["pid"] == proc.pid
    with store_lock(path, "third", wait=False):
        assert holder(path)["pid"] == os.getpid()
    assert lock_path(path).exists() and holder(path) is None  # released: no holder named


def test_a_waiter_takes_the_lock_when_the_holder_ends(tmp_path):
    path = tmp_path / "store"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), "1.5"], env=ENV, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "locked"
    began = time.monotonic()
    with store_lock(path, "waiter"):
        waited = time.monotonic() - began
        assert holder(path)["purpose"] == "waiter"
    assert waited > 1.0  # acquired only once the holder had let go
    assert proc.wait(timeout=30) == 0


def _predict(windows, out, sleep):
    command = [
        *(sys.executable, "-m", "tests.stand_in_predict", str(windows), str(out)),
        *("--sleep", str(sleep), "--cluster", json.dumps(THREADED)),
    ]
    return subprocess.Popen(
        command, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.slow
def test_two_predicts_on_one_store_never_write_together(tmp_path):
    windows = tmp_path / "windows.zarr"
    make_windows(windows, n_windows=24, shard_size=4)  # 6 shards
    out = tmp_path / "predictions.zarr"
    first = _predict(windows, out, sleep=1.5)  # ~9 s: outlives the start of the second
    _wait_for_holder(out, first.pid, first)
    second = _predict(windows, out, sleep=0.0)
    first_out, first_err = first.communicate(timeout=300)
    second_out, second_err = second.communicate(timeout=300)
    assert first.returncode == 0, first_err
    assert second.returncode == 0, second_err
    assert f"pid {first.pid}" in second_err and "waiting for it to finish" in second_err
    # the second found every shard done: it wrote nothing beside the first
    first_summary, second_summary = json.loads(first_out), json.loads(second_out)
    assert first_summary["computed"] == 6
    assert (second_summary["skipped"], second_summary["computed"]) == (6, 0)
    run_ids = {store.read_done(out, s)["run_id"] for s in range(6)}
    assert run_ids == {first_summary["run_id"]}
