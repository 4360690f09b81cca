"""map_largest_first: results in item order, the calling process working too, errors raised."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sptx_pipeline.errors import WorkerDiedError
from sptx_pipeline.processes import map_largest_first

ROOT = Path(__file__).resolve().parents[1]


def _pid_after(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def _square_unless(item: tuple[int, int, str]) -> int:
    """``value**2``, or a ValueError where ``where`` says (in the caller ``parent``, or in a
    spawned worker)."""
    value, parent, where = item
    here = "parent" if os.getpid() == parent else "worker"
    if where == here:
        raise ValueError(f"item {value} failed in the {here}")
    time.sleep(0.05)
    return value * value


def test_results_come_in_item_order_whatever_the_sizes():
    items = [(v, os.getpid(), "nowhere") for v in range(7)]
    sizes = [3, 9, 1, 9, 4, 0, 2]
    assert map_largest_first(_square_unless, items, sizes, workers=3) == [v * v for v in range(7)]


def test_the_calling_process_works_alongside_the_spawned_workers():
    # the spawned worker needs about a second to start (imports); the caller does not wait
    pids = map_largest_first(_pid_after, [0.3] * 8, [1] * 8, workers=2)
    assert os.getpid() in pids
    assert len(set(pids)) == 2


def test_one_worker_runs_everything_here():
    assert set(map_largest_first(_pid_after, [0.0] * 3, [1] * 3, workers=1)) == {os.getpid()}


@pytest.mark.parametrize("where", ["parent", "worker"])
def test_an_error_in_any_process_is_raised(where):
    items = [(v, os.getpid(), where) for v in range(6)]
    with pytest.raises(ValueError, match=f"failed in the {where}"):
        map_largest_first(_square_unless, items, [1] * 6, workers=2)


def _die_in_a_worker(parent: int) -> int:
    if os.getpid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)  # as the out-of-memory killer would
    time.sleep(0.2)
    return 1


def test_a_worker_that_dies_fails_the_call_instead_of_hanging_it():
    with pytest.raises(WorkerDiedError, match="_die_in_a_worker ended without an answer"):
        map_largest_first(_die_in_a_worker, [os.getpid()] * 6, [1] * 6, workers=2)


def test_an_error_here_terminates_the_workers_mid_task():
    """The caller's own item fails at once; the worker's item would run for a minute."""
    script = (
        "import os, time\n"
        "from tests.test_processes import _slow_in_a_worker\n"
        "from sptx_pipeline.processes import map_largest_first\n"
        "if __name__ == '__main__':\n"
        "    map_largest_first(_slow_in_a_worker, [os.getpid()] * 4, [1] * 4, workers=2)\n"
    )
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=50, cwd=ROOT
    )
    assert done.returncode == 1 and "ValueError: failed here" in done.stderr, done.stderr
    assert time.monotonic() - began < 30


def _slow_in_a_worker(parent: int) -> int:
    if os.getpid() != parent:
        time.sleep(60)
        return 1
    time.sleep(1.5)  # the worker has started its item by now
    raise ValueError("failed here")
