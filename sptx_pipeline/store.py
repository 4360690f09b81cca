"""Zarr layout of the window and prediction stores.

``windows.zarr/tokens``: uint8 ``[n_windows, T + 2F]``. ``predictions.zarr/probabilities``:
``[n_windows, T, C]``. Both are Zarr v3 arrays whose shard is ``shard_size`` windows, so one
Dask task reads or writes exactly one shard object and no two tasks touch the same file.
A prediction shard counts as complete only once its marker under ``predictions.zarr/done/``
exists; the marker is written after the data and carries SHA-256 checksums of the stored values
and of the input tokens (``array_sha256``), so a damaged or stale shard is recognised.
Sharding keeps the file count at about one object per shard (plus its marker).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from . import atomic
from .errors import IncompletePredictionsError, InputError, MissingInputError

log = logging.getLogger(__name__)
AccessMode = Literal["r", "r+", "a", "w", "w-"]

TOKENS = "tokens"
PROBABILITIES = "probabilities"
DONE_DIR = "done"


@dataclass(frozen=True)
class Shard:
    """Items ``[start, stop)`` of a store: the unit of one task, one file and one done marker."""

    index: int
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start

    def describe(self, noun: str = "items") -> str:
        """``shard 3 (windows 24-31)``: how errors and logs name a shard."""
        return f"shard {self.index} ({noun} {self.start}-{self.stop - 1})"


def shard_grid(n_items: int, shard_size: int) -> list[Shard]:
    """The shards of ``n_items`` items in shards of ``shard_size`` (the last may be short)."""
    return [
        Shard(index, start, min(start + shard_size, n_items))
        for index, start in enumerate(range(0, n_items, shard_size))
    ]


def n_shards(n_windows: int, shard_size: int) -> int:
    return -(-n_windows // shard_size)


def _create(
    path: str | os.PathLike,
    name: str,
    shape: tuple[int, ...],
    shard_size: int,
    dtype: Any,
    fill_value: Any,
    attrs: dict[str, Any],
    chunk_windows: int = 1,
) -> zarr.Array:
    group = zarr.open_group(str(path), mode="w")
    group.attrs.update(attrs)
    shard_len = max(1, min(shard_size, shape[0] or 1))
    # inner chunks must tile the shard: the largest divisor of shard_len up to chunk_windows
    inner = max(d for d in range(1, min(chunk_windows, shard_len) + 1) if shard_len % d == 0)
    return group.create_array(
        name,
        shape=shape,
        chunks=(inner, *shape[1:]),
        shards=(shard_len, *shape[1:]),
        dtype=dtype,
        fill_value=fill_value,
        compressors=ZstdCodec(level=3),
    )


def create_windows(
    path: str | os.PathLike,
    n_windows: int,
    window_length: int,
    shard_size: int,
    attrs: dict[str, Any],
) -> zarr.Array:
    """A fresh token store; ``attrs`` must include flank, chunk_size and shard_size."""
    return _create(
        path,
        TOKENS,
        (n_windows, window_length),
        shard_size,
        np.uint8,
        4,
        {**attrs, "shard_size": shard_size},
    )


def _array(path: str | os.PathLike, name: str, mode: AccessMode = "r") -> zarr.Array:
    array = zarr.open_group(str(path), mode=mode)[name]
    if not isinstance(array, zarr.Array):
        raise InputError(f"{path}/{name} is not an array")
    return array


def open_windows(path: str | os.PathLike) -> zarr.Array:
    return _array(path, TOKENS)


def create_predictions(
    path: str | os.PathLike,
    n_windows: int,
    chunk_size: int,
    channels: list[str],
    shard_size: int,
    dtype: str,
    attrs: dict[str, Any],
) -> zarr.Array:
    """A fresh prediction store; unwritten values read back as NaN.

    Inner chunks of 8 windows: writing and reading a whole shard is ~4x faster than with
    one-window chunks (fewer codec calls), and reading one window costs about the same.
    """
    arr = _create(
        path,
        PROBABILITIES,
        (n_windows, chunk_size, len(channels)),
        shard_size,
        np.dtype(dtype),
        np.nan,
        {**attrs, "channels": list(channels), "shard_size": shard_size},
        chunk_windows=8,
    )
    (Path(path) / DONE_DIR).mkdir(exist_ok=True)
    return arr


def open_predictions(path: str | os.PathLike, mode: AccessMode = "r") -> zarr.Array:
    return _array(path, PROBABILITIES, mode)


def done_marker(path: str | os.PathLike, shard: int) -> Path:
    return Path(path) / DONE_DIR / f"{shard:08d}.json"


def mark_done(path: str | os.PathLike, shard: int, info: dict[str, Any]) -> None:
    """Atomically record that ``shard`` is fully written."""
    atomic.write_text(done_marker(path, shard), json.dumps({"shard": shard, **info}))


def read_done(path: str | os.PathLike, shard: int) -> dict[str, Any] | None:
    marker = done_marker(path, shard)
    return json.loads(marker.read_text()) if marker.exists() else None


def array_sha256(data: Any) -> str:
    """SHA-256 of an array's values (C order): a checksum independent of codec and file layout."""
    return hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest()


def done_shards(path: str | os.PathLike) -> set[int]:
    """Shards that have a done marker (their data is not verified here)."""
    folder = Path(path) / DONE_DIR
    if not folder.is_dir():
        return set()
    return {int(p.stem) for p in folder.glob("*.json") if p.stem.isdigit()}


def missing_shards(path: str | os.PathLike, check: bool = False) -> list[int]:
    """Shards of a prediction store that have no done marker, in order.

    ``check``: raise :class:`IncompletePredictionsError` if there are any (and
    :class:`MissingInputError` if there is no store), naming them; what ``merge`` does first.
    """
    if check and not Path(path).is_dir():
        raise MissingInputError(f"{path} not found: run `predict` first")
    arr = open_predictions(path)
    shard_size = int(str(zarr.open_group(str(path), mode="r").attrs["shard_size"]))
    done = done_shards(path)
    total = n_shards(arr.shape[0], shard_size)
    missing = [s for s in range(total) if s not in done]
    if check and missing:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise IncompletePredictionsError(
            f"{path}: {len(missing)} of {total} prediction shards are missing "
            f"(no done marker: {shown}); run `predict` again to finish them before merging"
        )
    return missing


def clear_shard(arr: zarr.Array, shard: int) -> None:
    """Delete a shard's stored object, so that rewriting it never reads damaged bytes."""
    from zarr.core.sync import sync

    key = arr.metadata.encode_chunk_key((shard,) + (0,) * (arr.ndim - 1))
    sync(arr.store.delete(f"{arr.path}/{key}"))


def resumable(
    path: str | os.PathLike, fingerprint: dict[str, Any], existing: dict[str, Any] | None
) -> bool:
    """Whether the output at ``path``, made for ``existing`` inputs (None: absent or
    unreadable), can be resumed for ``fingerprint``; logs the decision, naming the keys that
    differ when the caller has to start afresh. The one rule of predict's and variants' resume."""
    if existing == fingerprint:
        log.info("resuming %s", path)
        return True
    if Path(path).exists():
        known = existing if isinstance(existing, dict) else {}
        differs = sorted(k for k in fingerprint if known.get(k) != fingerprint[k])
        log.warning(
            "%s was made for other inputs (differs in: %s); starting afresh",
            path,
            ", ".join(differs) if known else "unreadable",
        )
    return False


def read_marker(path: str | os.PathLike, shard: int) -> dict[str, Any] | None:
    """A shard's done marker; None when absent, ``{}`` when unreadable (damaged)."""
    try:
        return read_done(path, shard)
    except (OSError, ValueError):
        return {}


def read_verified(
    predictions: zarr.Array, start: int, stop: int, marker: dict[str, Any]
) -> tuple[np.ndarray | None, str | None]:
    """``(values, None)`` for a marked shard whose stored values match its marker, else
    ``(None, why not)``: a damaged marker, other windows, unreadable data or a checksum
    mismatch (e.g. flipped bytes, a truncated object, another shard's object in its place)."""
    if not marker:
        return None, "its done marker is damaged"
    if (marker.get("start"), marker.get("stop")) != (start, stop):
        return None, f"its marker covers windows {marker.get('start')}-{marker.get('stop')}"
    try:
        values = np.asarray(predictions[start:stop])
    except Exception as err:  # any decode or I/O failure: the stored object is damaged
        return None, f"its data is unreadable ({type(err).__name__}: {err})"
    if array_sha256(values) != marker.get("sha256"):
        return None, "its data does not match the checksum in its done marker"
    return values, None


def clear_done(path: str | os.PathLike, shard: int) -> None:
    """Remove a shard's done marker (before recomputing it)."""
    done_marker(path, shard).unlink(missing_ok=True)


def remove_store(path: str | os.PathLike) -> None:
    """Delete a store directory (a prediction store being started afresh)."""
    shutil.rmtree(path, ignore_errors=False)


def finish_pending_io(timeout: float = 30.0) -> None:
    """Wait for the reads and writes zarr still has in flight in its I/O thread.

    An ``array[...] = values`` interrupted by a signal stops waiting, but zarr's event loop
    goes on writing; deleting the store before that write lands would leave a directory that
    the write re-creates. Call this before removing a store that was being written.
    """
    from zarr.core.sync import _get_loop

    async def pending() -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    asyncio.run_coroutine_threadsafe(pending(), _get_loop()).result(timeout + 1)
