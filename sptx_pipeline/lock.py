"""One writer per store: an exclusive lock that other processes wait for and can name.

``with store_lock(path, "predict"):`` holds an ``flock`` on ``<path>.lock`` (next to the store,
not inside it, because a stage may delete and recreate the store directory while it holds the
lock). The kernel drops the lock when its process dies, however it dies, so a stale lock file of
a dead process never blocks anyone. The file also records who holds the lock (host, pid,
purpose, start time), so a process that has to wait says for whom: e.g. an ``sptx predict``
left running after its Snakemake was killed, or a run from another clone on the same outdir.
"""

from __future__ import annotations

import fcntl
import functools
import inspect
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from .errors import StoreInUseError

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


def lock_path(store: str | os.PathLike) -> Path:
    """The lock file of a store: ``predictions.zarr`` -> ``predictions.zarr.lock``."""
    path = Path(store).resolve()
    return path.with_name(path.name + ".lock")


def holder(store: str | os.PathLike) -> dict[str, Any] | None:
    """Who last took the lock (host, pid, purpose, since), or None when unknown."""
    try:
        return json.loads(lock_path(store).read_text() or "null")
    except (OSError, ValueError):
        return None


def describe(info: dict[str, Any] | None) -> str:
    if not info:
        return "another process (no holder recorded yet)"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("since", 0)))
    return (
        f"{info.get('purpose', '?')} on host {info.get('host', '?')}, pid {info.get('pid', '?')},"
        f" since {since}"
    )


@contextmanager
def store_lock(
    store: str | os.PathLike, purpose: str, wait: bool = True, poll_s: float = 0.5
) -> Iterator[None]:
    """Hold the store's lock for the body of the ``with``; wait for (or refuse) another holder."""
    path = lock_path(store)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        waiting_since = None
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                who = describe(holder(store))
                if not wait:
                    raise StoreInUseError(
                        f"{store} is being written by {who}; wait for it to finish (or end that "
                        "process) and run again"
                    ) from None
                if waiting_since is None:
                    waiting_since = time.monotonic()
                    log.warning("%s is being written by %s; waiting for it to finish", store, who)
                time.sleep(poll_s)
        if waiting_since is not None:
            log.info("lock on %s acquired after %.0f s", store, time.monotonic() - waiting_since)
        record = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "purpose": purpose,
            "since": time.time(),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # released: no holder to name
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def holds_store_lock(argument: str, purpose: str) -> Callable[[F], F]:
    """Decorator: run the function under ``store_lock`` of its parameter ``argument``."""

    def decorate(function: F) -> F:
        signature = inspect.signature(function)

        @functools.wraps(function)
        def locked(*args: Any, **kwargs: Any) -> Any:
            store = signature.bind(*args, **kwargs).arguments[argument]
            with store_lock(store, purpose):
                return function(*args, **kwargs)

        return locked  # type: ignore[return-value]

    return decorate
