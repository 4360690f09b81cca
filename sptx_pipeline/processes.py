"""Run one function over many items in worker processes, the calling process working too.

``merge`` (one item per chrom/strand partition) and ``tracks`` (one per bigWig file) share it.
Workers are spawned, not forked: a forked merge worker was seen to hang in a fresh
``sptx merge`` process (a lock held by another thread at the fork), so each spawned worker
imports for about a second. The calling process takes items itself meanwhile, so ``workers``
processes in all (``workers - 1`` spawned) keep ``workers`` cores busy from the start and the
imports cost only the spawned workers' share. Items are taken largest first (fewer processes
idle at the end).
"""

from __future__ import annotations

import collections
import multiprocessing
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def map_largest_first(
    task: Callable[[Item], Result],
    items: Sequence[Item],
    sizes: Sequence[int],
    workers: int,
) -> list[Result]:
    """``[task(item) for item in items]``, computed by ``workers`` processes in all.

    ``task`` and the items must be picklable. The first error raised by any ``task`` is raised
    here once every process has stopped taking items; ``multiprocessing.Pool.__exit__``
    terminates the spawned workers, so an error or a signal in this process stops them all.
    """
    if workers < 2 or len(items) < 2:
        return [task(item) for item in items]
    queue = collections.deque(sorted(range(len(items)), key=lambda i: -sizes[i]))
    results: dict[int, Result] = {}
    errors: list[BaseException] = []
    stopped = threading.Event()

    def take() -> int | None:
        if errors or stopped.is_set():
            return None
        try:
            return queue.popleft()  # deque.popleft is atomic: no two takers get one item
        except IndexError:
            return None

    def feed(pool: multiprocessing.pool.Pool) -> None:
        """One spawned worker's share: hand it the next item until none is left."""
        while (i := take()) is not None:
            pending = pool.apply_async(task, (items[i],))
            while not pending.ready():
                if stopped.is_set():  # the caller failed: the pool is being terminated
                    return
                pending.wait(0.05)
            try:
                results[i] = pending.get()
            except Exception as error:  # noqa: BLE001 - re-raised by the caller
                errors.append(error)

    spawned = min(workers, len(items)) - 1
    with multiprocessing.get_context("spawn").Pool(spawned) as pool:
        feeders = [threading.Thread(target=feed, args=(pool,), daemon=True) for _ in range(spawned)]
        try:
            for feeder in feeders:
                feeder.start()
            while (i := take()) is not None:
                results[i] = task(items[i])
            for feeder in feeders:
                feeder.join()
        finally:
            stopped.set()  # after an error or a signal here: the feeders stop waiting
    if errors:
        raise errors[0]
    return [results[i] for i in range(len(items))]
