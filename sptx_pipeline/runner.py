"""The shard runner: Dask tasks over a list of shards, with retries, resume and progress.

Every expensive stage (``predict``, the variant stage) is a picklable task that turns one
``Shard`` into a ``ShardResult`` (skipped when its done marker holds, else computed or
recomputed). ``run_shards`` submits them with a bounded number in flight, consumes results as
they finish, shows a progress bar in items/s and stops with an error naming the shard that
failed ``max_retries`` times. ``RunSummary`` is what a stage reports and writes at the end.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import dask
from distributed import as_completed
from tqdm import tqdm

from .errors import ShardFailedError
from .store import Shard


@dataclass(frozen=True)
class ShardResult:
    """What a task returns (never the data itself): its shard, size and what it did."""

    shard: int
    size: int
    status: str  # "skipped", "computed" or "recomputed"


@dataclass(frozen=True)
class RunSummary:
    """Shard counts and timing of one run; ``computed`` includes ``recomputed``."""

    shards: int
    skipped: int
    computed: int
    recomputed: int
    items: int
    items_computed: int
    seconds: float
    shard_seconds: float  # without model check and cluster start-up
    run_id: str

    @property
    def items_per_s(self) -> float:
        return round(self.items_computed / self.shard_seconds, 3) if self.shard_seconds else 0.0

    def as_dict(self, unit: str = "items") -> dict[str, Any]:
        """JSON-ready, with the item counts named by ``unit`` (e.g. ``windows_computed``)."""
        return {
            "shards": self.shards,
            "skipped": self.skipped,
            "computed": self.computed,
            "recomputed": self.recomputed,
            unit: self.items,
            f"{unit}_computed": self.items_computed,
            "seconds": round(self.seconds, 3),
            "shard_seconds": round(self.shard_seconds, 3),
            f"{unit}_per_s": self.items_per_s,
            "run_id": self.run_id,
        }


@contextmanager
def scheduler_settings(max_retries: int) -> Iterator[None]:
    """Dask settings every shard run uses: lost workers count as failures, one task a thread."""
    with dask.config.set(
        {
            # a task may take this many workers down with it before it counts as failed
            "distributed.scheduler.allowed-failures": max_retries,
            # one task per worker thread, so a dying worker takes no queued shard with it
            "distributed.scheduler.worker-saturation": 1.0,
        }
    ):
        yield


def _progress_bar(total: int, enabled: bool, desc: str, unit: str) -> tqdm:
    interactive = sys.stderr.isatty()
    return tqdm(
        total=total,
        unit=unit,
        desc=desc,
        file=sys.stderr,
        disable=not enabled,
        dynamic_ncols=interactive,
        mininterval=0.5 if interactive else 30.0,  # log files get a line every 30 s
        smoothing=0.05,
    )


def run_shards(
    client: Any,
    task: Callable[[Shard], ShardResult],
    shards: Sequence[Shard],
    *,
    run_id: str,
    desc: str,
    unit: str,
    noun: str,
    max_retries: int,
    max_in_flight: int | None = None,
    progress: bool = True,
) -> Counter:
    """Run ``task`` on every shard; returns counts per status and ``items_computed``.

    At most ``max_in_flight`` tasks are outstanding (default four per worker thread), so a
    run of 100,000 shards costs the scheduler little; results are consumed as tasks finish,
    so few are lost with a worker that dies later. A task that fails ``max_retries`` times
    cancels the rest and raises, naming its shard.
    """
    threads = sum(client.nthreads().values()) or 1
    limit = max_in_flight or max(8, 4 * threads)
    queue = iter(shards)
    in_flight: dict[Any, Shard] = {}
    finished = as_completed(with_results=True, raise_errors=False)
    counts: Counter = Counter()

    def submit_next() -> None:
        shard = next(queue, None)
        if shard is not None:
            future = client.submit(
                task,
                shard,
                key=f"sptx-{desc}-{shard.index:08d}-{run_id}",
                retries=max_retries,
                pure=False,
            )
            in_flight[future] = shard
            finished.add(future)

    for _ in range(limit):
        submit_next()
    with _progress_bar(sum(s.size for s in shards), progress, desc, unit) as bar:
        for future, result in finished:
            shard = in_flight.pop(future)
            if future.status != "finished":
                client.cancel(list(in_flight))
                error = _task_error(result)
                raise ShardFailedError(
                    f"{desc}: {shard.describe(noun)} failed after {max_retries} retries: "
                    f"{type(error).__name__}: {error}"
                ) from (error if isinstance(error, BaseException) else None)
            future.release()
            counts[result.status] += 1
            if result.status == "skipped":
                bar.total -= result.size
                bar.refresh()
            else:
                counts["items_computed"] += result.size
                bar.update(result.size)
            bar.set_postfix(skipped=counts["skipped"], done=counts["computed"], refresh=False)
            submit_next()
    return counts


def resume_order(shards: Sequence[Shard], done: set[int]) -> list[Shard]:
    """Shards with a done marker first: verifying them is quick and settles the progress
    bar's total before the long computations start."""
    return [s for s in shards if s.index in done] + [s for s in shards if s.index not in done]


def run_stage(
    make_task: Callable[[Any], Callable[[Shard], ShardResult]],
    shards: Sequence[Shard],
    *,
    cluster: Mapping[str, Any] | None,
    device: str,
    run_id: str,
    began: float,
    desc: str,
    unit: str,
    noun: str,
    max_retries: int,
    log_directory: str | os.PathLike | None = None,
    max_in_flight: int | None = None,
    progress: bool = True,
) -> RunSummary:
    """Run a stage's shards on the Dask cluster ``cluster`` and summarise the run.

    ``make_task(client)`` returns the picklable task (it may tune the task to the workers the
    client sees); ``log_directory`` is where SLURM worker jobs write their logs; ``began``
    is the stage's start (``time.perf_counter()``). Nothing is started when there are no
    shards. See :func:`run_shards` for the rest.
    """
    from .cluster import open_client

    counts: Counter = Counter()
    working = 0.0
    if shards:
        with scheduler_settings(max_retries), open_client(cluster, device, log_directory) as client:
            task = make_task(client)
            started = time.perf_counter()
            counts = run_shards(
                client,
                task,
                shards,
                run_id=run_id,
                desc=desc,
                unit=unit,
                noun=noun,
                max_retries=max_retries,
                max_in_flight=max_in_flight,
                progress=progress,
            )
            working = time.perf_counter() - started
    return summarise(shards, counts, run_id, began, working)


def _task_error(result: Any) -> Any:
    """The exception of a failed future's result (``as_completed`` gives (type, exc, tb))."""
    if isinstance(result, tuple) and len(result) == 3 and isinstance(result[1], BaseException):
        return result[1]
    return result


def summarise(
    shards: Sequence[Shard], counts: Counter, run_id: str, began: float, shard_seconds: float
) -> RunSummary:
    """The run summary from ``run_shards``' counts; ``began`` is the stage's start time."""
    return RunSummary(
        shards=len(shards),
        skipped=counts["skipped"],
        computed=counts["computed"] + counts["recomputed"],
        recomputed=counts["recomputed"],
        items=sum(s.size for s in shards),
        items_computed=counts["items_computed"],
        seconds=time.perf_counter() - began,
        shard_seconds=shard_seconds,
        run_id=run_id,
    )
