"""One way to write an output: under a temporary sibling name, renamed over the final path only
once it is complete, so nothing that looks finished is ever half-written.

Temporary names are ``.<name>.tmp-<pid>`` (plus the final suffix again where a writer goes by
the extension, e.g. pybigtools: ``.<name>.tmp-<pid>.bw``): recognisable, and tied to the process
that writes them, so :func:`remove_stale` (called when a stage starts) can delete those of dead
processes that a kill -9 or a power cut left behind. Process ids are those of this host: a
directory shared by several hosts may hold a live writer's files under a pid unknown here, so
run one writer per output, as Snakemake does.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def temp_path(final: str | os.PathLike, keep_suffix: bool = False) -> Path:
    """The temporary sibling of ``final`` for this process (ending in ``final``'s suffix too
    with ``keep_suffix``)."""
    final = Path(final)
    return final.with_name(f".{final.name}.tmp-{os.getpid()}{final.suffix if keep_suffix else ''}")


def remove_path(path: str | os.PathLike) -> None:
    """Delete a file or a directory tree; nothing if it does not exist."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def atomic_path(final: str | os.PathLike, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling path of ``final`` to write (a file or a directory).

    On success it replaces ``final`` (an existing directory is removed first); on any exception,
    KeyboardInterrupt included, it is deleted and ``final`` is left as it was. The parent
    directory is created; the temporary path itself is not.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(final, keep_suffix)
    remove_path(tmp)
    try:
        yield tmp
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        remove_path(tmp)
        raise


def write_text(final: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``final`` atomically."""
    with atomic_path(final) as tmp:
        tmp.write_text(text)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale(*finals: str | os.PathLike) -> list[Path]:
    """Delete the temporary siblings of ``finals`` whose writing process is gone; return them."""
    removed = []
    for final in map(Path, finals):
        if not final.parent.is_dir():
            continue
        pattern = re.compile(rf"\.{re.escape(final.name)}\.tmp-(\d+)({re.escape(final.suffix)})?")
        for candidate in final.parent.glob(f".{final.name}.tmp-*"):
            match = pattern.fullmatch(candidate.name)
            if match and not _alive(int(match[1])):
                remove_path(candidate)
                removed.append(candidate)
    return removed
