"""Run one function over many items in worker processes, the calling process working too.

``merge`` (one item per chrom/strand partition) and ``tracks`` (one per bigWig file) share it.
Workers are spawned, not forked: a forked merge worker was seen to hang in a fresh
``sptx merge`` process (a lock held by another thread at the fork), so each spawned worker
imports for about a second. The calling process takes items itself meanwhile, so ``workers``
processes in all (``workers - 1`` spawned) keep ``workers`` cores busy from the start and the
imports cost only the spawned workers' share. Items are taken largest first (fewer processes
idle at the end). A worker that dies (killed, out of memory) fails the call instead of hanging
it, and an error or a signal in the calling process terminates the workers.
"""

from __future__ import annotations

import collections
import multiprocessing
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import wait as wait_for
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from .errors import WorkerDiedError

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
    here once every process has stopped taking items (a worker that died: WorkerDiedError).
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

    def feed(pool: ProcessPoolExecutor) -> None:
        """One spawned worker's share: hand it the next item until none is left."""
        while (i := take()) is not None:
            pending = pool.submit(task, items[i])
            while not wait_for([pending], timeout=0.05).done:
                if stopped.is_set():  # the caller failed: the workers are being terminated
                    return
            try:
                results[i] = pending.result()
            except BrokenProcessPool:
                errors.append(
                    WorkerDiedError(
                        f"a worker process running {_name(task)} ended without an answer "
                        "(killed: out of memory?)"
                    )
                )
            except Exception as error:  # noqa: BLE001 - re-raised by the caller
                errors.append(error)

    spawned = min(workers, len(items)) - 1
    pool = ProcessPoolExecutor(spawned, mp_context=multiprocessing.get_context("spawn"))
    feeders = [threading.Thread(target=feed, args=(pool,), daemon=True) for _ in range(spawned)]
    finished = False
    try:
        for feeder in feeders:
            feeder.start()
        while (i := take()) is not None:
            results[i] = task(items[i])
        for feeder in feeders:
            feeder.join()
        finished = not errors
    finally:
        stopped.set()  # after an error or a signal here: the feeders stop waiting
        if not finished:
            _terminate(pool)
        pool.shutdown(wait=True, cancel_futures=True)
    if errors:
        raise errors[0]
    return [results[i] for i in range(len(items))]


def _name(task: Callable) -> str:
    """The task's function name, for messages (``functools.partial`` included)."""
    return getattr(getattr(task, "func", task), "__name__", repr(task))


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Stop the pool's worker processes now, mid-task (the executor only waits for them)."""
    for process in list((pool._processes or {}).values()):
        process.terminate()
