"""Reference genome access: FASTA (plain or bgzip) via pyfaidx, contig names, token encoding.

Tokens are uint8 codes A=0, C=1, G=2, T=3, N=4 (the multimolecule order A, C, G, U, N).
Soft-masked (lower-case) bases are upper-cased and every other IUPAC code becomes N.
Coordinates are 0-based half-open throughout this module.
"""

from __future__ import annotations

import gzip
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO

import numpy as np
import pyfaidx

from .errors import InputError, MissingInputError

log = logging.getLogger(__name__)

N_TOKEN = 4
_BGZF_MAGIC = b"\x1f\x8b\x08\x04"  # gzip with FEXTRA set, as every BGZF block has
_GZIP_MAGIC = b"\x1f\x8b"


def _lookup_table() -> np.ndarray:
    table = np.full(256, N_TOKEN, dtype=np.uint8)
    for code, base in enumerate("ACGT"):
        table[ord(base)] = code
        table[ord(base.lower())] = code
    return table


ENCODE_TABLE = _lookup_table()
COMPLEMENT = np.array([3, 2, 1, 0, N_TOKEN], dtype=np.uint8)  # A<->T, C<->G, N->N


def encode(sequence: str | bytes) -> np.ndarray:
    """Tokens (uint8) of a DNA string: A,C,G,T -> 0..3 in either case; anything else -> N (4)."""
    raw = sequence.encode("ascii", errors="replace") if isinstance(sequence, str) else sequence
    return ENCODE_TABLE[np.frombuffer(raw, dtype=np.uint8)]


def reverse_complement(tokens: np.ndarray) -> np.ndarray:
    """Reverse complement of tokens along the last axis (works on one window or a batch)."""
    return COMPLEMENT[tokens[..., ::-1]]


def _is_bgzf(path: Path) -> bool | None:
    """True for BGZF, False for plain gzip, None for an uncompressed file."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    if not head.startswith(_GZIP_MAGIC):
        return None
    if head != _BGZF_MAGIC:
        return False
    with open(path, "rb") as handle:  # the extra subfield of a BGZF block is tagged "BC"
        block = handle.read(18)
    return block[12:14] == b"BC"


def open_fasta(path: str | os.PathLike) -> pyfaidx.Fasta:
    """Open a plain or bgzip FASTA, building the ``.fai`` (and ``.gzi``) index when missing."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"FASTA file not found: {path}")
    if _is_bgzf(path) is False:
        raise InputError(
            f"{path} is compressed with plain gzip, which does not allow random access. "
            f"Recompress it with bgzip: 'gunzip -c {path} | bgzip > {path.with_suffix('')}.bgz' "
            "(bgzip is in htslib/tabix), or decompress it."
        )
    try:
        return pyfaidx.Fasta(str(path), as_raw=True, sequence_always_upper=False, build_index=True)
    except pyfaidx.FastaIndexingError as err:
        raise InputError(f"cannot index FASTA {path}: {err}") from err
    except PermissionError as err:
        raise InputError(
            f"cannot write the index of {path} ({err.filename}): its directory is read-only. "
            "Create the .fai (and .gzi) with 'samtools faidx' where you can, or use a copy."
        ) from err


def contig_lengths(fasta: pyfaidx.Fasta) -> dict[str, int]:
    """Contig name -> length, in FASTA order."""
    return {name: len(record) for name, record in fasta.records.items()}


def contig_aliases(name: str) -> list[str]:
    """Names the same contig commonly has in other naming schemes (UCSC vs Ensembl)."""
    bare = name[3:] if name.lower().startswith("chr") else name
    if bare.upper() in ("M", "MT"):
        return ["chrM", "MT", "chrMT", "M"]
    return [f"chr{bare}", bare]


def reconcile_contigs(names: Iterable[str], fasta_contigs: Iterable[str]) -> dict[str, str | None]:
    """Map annotation contig names to FASTA contig names (``1``/``chr1``, ``MT``/``chrM``).

    Exact matches win; otherwise the first alias present in the FASTA is used and the renaming is
    logged. Names with no counterpart map to ``None``.
    """
    available = set(fasta_contigs)
    mapping: dict[str, str | None] = {}
    for name in dict.fromkeys(names):
        if name in available:
            mapping[name] = name
            continue
        match = next((alias for alias in contig_aliases(name) if alias in available), None)
        if match is not None:
            log.info("contig %r of the annotation is %r in the FASTA", name, match)
        mapping[name] = match
    return mapping


def fetch_tokens(
    fasta: pyfaidx.Fasta, chrom: str, start: int, end: int, lengths: Mapping[str, int] | None = None
) -> np.ndarray:
    """Tokens of ``chrom[start:end]``; positions outside the chromosome are N.

    ``start`` may be negative and ``end`` may exceed the chromosome length (window flanks).
    """
    if end < start:
        raise ValueError(f"empty interval {chrom}:{start}-{end}")
    length = lengths[chrom] if lengths is not None else len(fasta[chrom])
    out = np.full(end - start, N_TOKEN, dtype=np.uint8)
    lo, hi = max(start, 0), min(end, length)
    if lo < hi:
        out[lo - start : hi - start] = encode(fasta[chrom][lo:hi])
    return out


def is_gzip(path: str | os.PathLike) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == _GZIP_MAGIC


def open_text(path: str | os.PathLike) -> IO[str]:
    """Open a plain or gzip (including bgzip) text file for reading."""
    if is_gzip(path):
        return gzip.open(path, "rt")
    return open(path)
