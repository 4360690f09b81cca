"""The package's exceptions: one base class, :class:`SptxError`, for every failure a user causes
or can fix (bad input, files from different runs, unfinished stages, a busy store, a cluster
that does not start).

The CLI prints the message of an ``SptxError`` as one line and exits non-zero; any other
exception is a bug and keeps its traceback. Each class also derives from the builtin that the
same failure raised before (``ValueError``, ``RuntimeError``, ``FileNotFoundError``), so callers
that catch those keep working.
"""

from __future__ import annotations

import os


class SptxError(Exception):
    """Base class of the errors whose message is enough for the user to act on."""


class InputError(SptxError, ValueError):
    """A bad argument, option, region, or input file content; the message names it."""


class GTFFormatError(InputError):
    """A GTF line that cannot be parsed; the message names the file and line number."""


class VCFFormatError(InputError):
    """A record htslib cannot read; the message names the file and line (or record number)."""


class CheckpointError(InputError):
    """A model checkpoint that cannot be read or does not match the architecture."""


class InputMismatchError(InputError):
    """Inputs that come from different runs (e.g. windows and predictions of other tilings)."""


class MissingInputError(SptxError, FileNotFoundError):
    """An input file or directory that does not exist (usually: an earlier stage has not run)."""


class IncompletePredictionsError(SptxError, RuntimeError):
    """A prediction store with shards that are not (validly) written yet."""


class IncompleteVariantsError(SptxError, RuntimeError):
    """Variant shards without a done part: the variants stage has not finished."""


class StoreInUseError(SptxError, RuntimeError):
    """A store that another live process is writing (its lock is held)."""


class ShardFailedError(SptxError, RuntimeError):
    """A shard that failed after all its retries."""


class ClusterError(SptxError, RuntimeError):
    """A Dask cluster that cannot be started or reached."""


class DeviceError(SptxError, RuntimeError):
    """A requested device that is not available here."""


class WorkerDiedError(SptxError, RuntimeError):
    """A worker process of ``merge`` or ``tracks`` that ended without an answer (killed, e.g.
    by the kernel's out-of-memory killer)."""


class DamagedShardError(SptxError, RuntimeError):
    """A prediction shard marked done whose stored values do not match its marker.

    Its arguments are kept as they are, so that it crosses from a merge worker process
    (pickled by its ``args``) intact.
    """

    def __init__(self, path: str | os.PathLike[str], shard: int, lo: int, hi: int, problem: str):
        super().__init__(str(path), shard, lo, hi, problem)
        self.shard = shard

    def __str__(self) -> str:
        path, shard, lo, hi, problem = self.args
        return f"{path}: shard {shard} (windows {lo}-{hi - 1}): {problem}"
