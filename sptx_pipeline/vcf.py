"""VCF input and annotated output through pysam (htslib): VCF, bgzip VCF or BCF in; bgzip VCF
plus tabix index out.

``read_records`` turns every record into a plain row (``record, line, chrom, pos, id, ref,
alts``) and names the file and line of a record htslib cannot parse. ``write_annotated``
copies every input record in order, adding INFO entries, to a temporary bgzip file, indexes
it with tabix and only then renames both into place.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .atomic import atomic_path
from .errors import InputError, MissingInputError

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


class VCFFormatError(InputError):
    """A record htslib cannot read; the message names the file and line (or record number)."""


def _open(path: str | os.PathLike) -> Any:
    import pysam

    if not Path(path).is_file():
        raise MissingInputError(f"VCF file not found: {path}")
    try:
        return pysam.VariantFile(str(path))
    except (OSError, ValueError) as err:
        raise VCFFormatError(f"{path}: not a readable VCF/BCF file: {err}") from None


def read_records(path: str | os.PathLike) -> pd.DataFrame:
    """Every record of a VCF/BCF as a row; ``alts`` joined by ``,`` (empty for ``.``).

    ``line`` is the line number in a text VCF (the record number in a BCF).
    """
    rows: list[tuple[Any, ...]] = []
    with _open(path) as vcf:
        binary = vcf.format == "BCF"
        first_line = 1 if binary else _header_line_count(path) + 1
        iterator = iter(vcf)
        while True:
            number = first_line + len(rows)
            where = f"record {len(rows) + 1}" if binary else f"line {number}"
            try:
                rec = next(iterator)
            except StopIteration:
                break
            except (OSError, ValueError) as err:
                raise VCFFormatError(
                    f"{path}, {where}: htslib cannot parse this record ({err}; its own message "
                    "above says why)"
                ) from None
            if rec.ref is None or rec.pos < 1:
                raise VCFFormatError(f"{path}, {where}: record without REF or position")
            rows.append(
                (
                    len(rows),
                    number,
                    rec.chrom,
                    rec.pos,
                    rec.id or ".",
                    rec.ref,
                    ",".join(rec.alts or ()),
                )
            )
    frame = pd.DataFrame(rows, columns=RECORD_COLUMNS)
    return frame.astype({"record": "int64", "line": "int64", "pos": "int64"})


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
) -> bool:
    """Write ``source`` to ``out`` (bgzip VCF) with INFO keys added, and its tabix index.

    ``info`` maps an INFO key to a function of the record number giving its entries (none:
    the record keeps its INFO as it was). Written under temporary names and renamed at the
    end. Returns whether the index could be built (input not sorted: warning, no index).
    ``symbolic``: the input has symbolic ALTs; htslib gives them an implicit ``END``, which
    cannot be written without a header line defining it, so one is added if missing.
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
                for line in header_lines:
                    defined = re.match(r"##INFO=<ID=([^,>]+)", line)
                    if defined is None or defined.group(1) not in header.info:
                        header.add_line(line)
                with pysam.VariantFile(str(tmp), "wz", header=header) as output:
                    for number, rec in enumerate(vcf):
                        for key, entries_of in info.items():
                            entries = entries_of(number)
                            if entries:
                                rec.info[key] = list(entries)
                        output.write(rec)
            try:
                pysam.tabix_index(str(tmp), preset="vcf", force=True)
                indexed = True
            except (OSError, ValueError) as err:
                log.warning("%s: no tabix index (is the input sorted by position?): %s", out, err)
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
