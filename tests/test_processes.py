"""map_largest_first: results in item order, the calling process working too, errors raised."""

from __future__ import annotations

import os
import time

import pytest

from sptx_pipeline.processes import map_largest_first


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
