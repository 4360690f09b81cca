"""VCF input and annotated output through pysam (htslib): VCF, bgzip VCF or BCF in; bgzip VCF
plus tabix index out.

``iter_records`` turns every record into a plain row (``record, line, chrom, pos, id, ref,
alts``), a bounded chunk at a time, and names the file, line and fault of a record htslib
cannot parse. ``write_annotated`` copies every input record in order, adding INFO entries and
the ``##contig`` lines the input lacks, to a temporary bgzip file, indexes it with tabix and
only then renames both into place. ``readable_copy`` turns a plain-gzip VCF (which htslib
cannot read) into a bgzip copy.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .atomic import atomic_path
from .errors import MissingInputError, VCFFormatError

log = logging.getLogger(__name__)

RECORD_COLUMNS = ["record", "line", "chrom", "pos", "id", "ref", "alts"]
SPLICEAI_INFO = (
    '##INFO=<ID=SpliceAI,Number=.,Type=String,Description="SpliceAIv1.3.1 variant annotation. '
    "These include delta scores (DS) and delta positions (DP) for acceptor gain (AG), acceptor "
    "loss (AL), donor gain (DG), and donor loss (DL). "
    'Format: ALLELE|SYMBOL|DS_AG|DS_AL|DS_DG|DS_DL|DP_AG|DP_AL|DP_DG|DP_DL">'
)
SPTRANSFORMER_INFO = (
    '##INFO=<ID=SpTransformer,Number=.,Type=String,Description="SpliceTransformer variant '
    "effect (sptx-pipeline), one entry per ALT and gene, values of the gene's strand: splice "
    "score (largest change of max(acceptor, donor) within the scored distance), the largest "
    "tissue usage change and its tissue, and the tissues flagged by the tool's z-score rule "
    "(joined by &, . if none). "
    'Format: ALLELE|SYMBOL|STRAND|SPLICE_SCORE|MAX_TISSUE_DELTA|MAX_TISSUE|FLAGGED_TISSUES">'
)

END_INFO = '##INFO=<ID=END,Number=1,Type=Integer,Description="End position of the variant">'


@contextlib.contextmanager
def quiet_htslib(level: int = 0) -> Iterator[None]:
    """Lower htslib's verbosity for a while (0: silent, 1: errors only).

    htslib prints ``[E::idx_find_and_load] Could not retrieve index file`` whenever it opens an
    unindexed bgzip VCF, which we never need indexed, and a warning per record of a contig the
    header does not define, which the output header then does (``write_annotated``).
    """
    import pysam

    previous = pysam.set_verbosity(level)
    try:
        yield
    finally:
        pysam.set_verbosity(previous)


def is_plain_gzip(path: str | os.PathLike) -> bool:
    """A gzip file that is not BGZF: htslib reads it only from the start, and pysam not at all."""
    from .genome import _is_bgzf

    return _is_bgzf(Path(path)) is False


def readable_copy(path: str | os.PathLike, directory: str | os.PathLike) -> Path:
    """``path`` itself, or for a plain-gzip VCF a bgzip copy of it in ``directory``.

    The copy is streamed (bounded memory) and written atomically; an existing copy is reused.
    """
    import pysam

    if not Path(path).is_file():
        raise MissingInputError(f"VCF file not found: {path}")
    if not is_plain_gzip(path):
        return Path(path)
    copy = Path(directory) / "input.vcf.gz"
    if copy.is_file():
        return copy
    log.info("%s is plain gzip, not bgzip: reading it through a bgzip copy %s", path, copy)
    with atomic_path(copy, keep_suffix=True) as tmp:
        try:
            with (
                gzip.open(path, "rb") as source,
                pysam.BGZFile(str(tmp), "wb", index=None) as target,
            ):
                shutil.copyfileobj(source, target, 1 << 20)
        except (OSError, EOFError) as err:
            raise VCFFormatError(
                f"{path}: cannot decompress this gzip file ({err}); recompress it with bgzip: "
                f"'gunzip -c {path} | bgzip > fixed.vcf.gz'"
            ) from None
    return copy


def _open(path: str | os.PathLike) -> Any:
    import pysam

    if not Path(path).is_file():
        raise MissingInputError(f"VCF file not found: {path}")
    if is_plain_gzip(path):
        raise VCFFormatError(
            f"{path} is compressed with plain gzip, which htslib cannot read as a VCF: recompress "
            f"it with bgzip ('gunzip -c {path} | bgzip > fixed.vcf.gz') or decompress it"
        )
    try:
        with quiet_htslib():
            return pysam.VariantFile(str(path))
    except (OSError, ValueError) as err:
        raise VCFFormatError(f"{path}: not a readable VCF/BCF file: {err}") from None


def read_records(path: str | os.PathLike) -> pd.DataFrame:
    """Every record of a VCF/BCF as a row; ``alts`` joined by ``,`` (empty for ``.``).

    ``line`` is the line number in a text VCF (the record number in a BCF).
    """
    chunks = list(iter_records(path))
    if not chunks:
        return _frame([])
    return pd.concat(chunks, ignore_index=True)


def _frame(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=RECORD_COLUMNS)
    return frame.astype({"record": "int64", "line": "int64", "pos": "int64"})


def iter_records(path: str | os.PathLike, chunk_size: int = 100_000) -> Iterator[pd.DataFrame]:
    """The rows of ``read_records``, at most ``chunk_size`` at a time (none for an empty VCF)."""
    rows: list[tuple[Any, ...]] = []
    count = 0
    with _open(path) as vcf, quiet_htslib(1):
        binary = vcf.format == "BCF"
        first_line = 1 if binary else _header_line_count(path) + 1
        iterator = iter(vcf)
        while True:
            number = first_line + count
            where = f"record {count + 1}" if binary else f"line {number}"
            try:
                rec = next(iterator)
            except StopIteration:
                break
            except (OSError, ValueError) as err:
                fault = None if binary else _fault(path, number)
                raise VCFFormatError(
                    f"{path}, {where}: malformed record: "
                    + (fault or f"htslib cannot parse it ({err})")
                ) from None
            if rec.ref is None or rec.pos < 1:
                raise VCFFormatError(f"{path}, {where}: malformed record: no REF or position")
            rows.append(
                (
                    count,
                    number,
                    rec.chrom,
                    rec.pos,
                    rec.id or ".",
                    rec.ref,
                    ",".join(rec.alts or ()),
                )
            )
            count += 1
            if len(rows) == chunk_size:
                yield _frame(rows)
                rows = []
    if rows:
        yield _frame(rows)


def _fault(path: str | os.PathLike, number: int) -> str | None:
    """What is wrong with line ``number`` of a text VCF, as far as a quick look can tell."""
    from .genome import open_text

    with open_text(path) as handle:
        text = next((line for i, line in enumerate(handle, start=1) if i == number), None)
    if text is None:
        return "the file ends inside this record (truncated?)"
    fields = text.rstrip("\n").split("\t")
    shown = text.strip()[:80]
    if len(fields) < 8:
        return f"{len(fields)} tab-separated columns, a VCF record has at least 8: {shown!r}"
    if not fields[1].isdigit():
        return f"POS {fields[1]!r} is not a number: {shown!r}"
    return f"htslib cannot parse it: {shown!r}"


def _header_line_count(path: str | os.PathLike) -> int:
    """Header lines of a text VCF (plain or bgzip), to name the line of a bad record."""
    from .genome import open_text

    count = 0
    with open_text(path) as handle:
        for line in handle:
            if not line.startswith("#"):
                break
            count += 1
    return count


def provenance_line(provenance: Mapping[str, Any]) -> str:
    """An unstructured header line carrying the run's provenance as JSON."""
    return "##sptx_provenance=" + json.dumps(provenance, sort_keys=True, separators=(",", ":"))


def write_annotated(
    source: str | os.PathLike,
    out: str | os.PathLike,
    info: Mapping[str, Callable[[int], Sequence[str]]],
    header_lines: Sequence[str],
    symbolic: bool = False,
    contigs: Mapping[str, int | None] | None = None,
) -> bool:
    """Write ``source`` to ``out`` (bgzip VCF) with INFO keys added, and its tabix index.

    ``info`` maps an INFO key to a function of the record number giving its entries (none:
    the record keeps its INFO as it was). Written under temporary names and renamed at the
    end. Returns whether the index could be built (input not sorted: warning, no index).
    ``symbolic``: the input has symbolic ALTs; htslib gives them an implicit ``END``, which
    cannot be written without a header line defining it, so one is added if missing.
    ``contigs``: the contigs of the records, with their FASTA lengths (None: not in the FASTA);
    those the input header does not define get a ``##contig`` line (htslib writes no record
    of an undefined contig).
    """
    import pysam

    out = Path(out)
    index = Path(f"{out}.tbi")
    with atomic_path(out, keep_suffix=True) as tmp:
        try:
            with _open(source) as vcf:
                header = vcf.header
                if symbolic and "END" not in header.info:
                    header.add_line(END_INFO)
                for name, length in (contigs or {}).items():
                    if name not in header.contigs:
                        if length is None:
                            header.contigs.add(name)
                        else:
                            header.contigs.add(name, length=length)
                for line in header_lines:
                    defined = re.match(r"##INFO=<ID=([^,>]+)", line)
                    if defined is None or defined.group(1) not in header.info:
                        header.add_line(line)
                with (
                    pysam.VariantFile(str(tmp), "wz", header=header) as output,
                    quiet_htslib(1),
                ):
                    for number, rec in enumerate(vcf):
                        for key, entries_of in info.items():
                            entries = entries_of(number)
                            if entries:
                                rec.info[key] = list(entries)
                        output.write(rec)
            try:
                with quiet_htslib():
                    pysam.tabix_index(str(tmp), preset="vcf", force=True)
                indexed = True
            except (OSError, ValueError) as err:
                reason = str(err).replace(str(tmp), str(out))  # name the output, not the temporary
                log.warning(
                    "%s: written without a tabix index: its records are not sorted by position "
                    "(as in the input %s); sort it (bcftools sort) to index it. htslib: %s",
                    out,
                    source,
                    reason,
                )
                indexed = False
            index.unlink(missing_ok=True)
            if indexed:
                os.replace(f"{tmp}.tbi", index)
        finally:
            Path(f"{tmp}.tbi").unlink(missing_ok=True)
    return indexed


def info_header_lines(keys: Sequence[str]) -> list[str]:
    """The ``##INFO`` definitions of the keys written (SpliceAI's is the official tool's)."""
    known = {"SpliceAI": SPLICEAI_INFO, "SpTransformer": SPTRANSFORMER_INFO}
    return [known[key] for key in keys]
