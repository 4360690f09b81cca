"""The ``genes`` stage: select gene bodies from a GTF and merge them into scoring regions.

Outputs (see DESIGN.md, "Files between stages"): ``genes.parquet`` with 1-based inclusive
``start``/``end`` as in the GTF, and ``regions.parquet``, the union of the selected gene bodies
per chrom and strand, 0-based half-open. Contig names are those of the FASTA.
"""

from __future__ import annotations

import gzip
import logging
import os
import tempfile
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import pandas as pd
import pyranges as pr

from .atomic import remove_stale
from .errors import GTFFormatError, InputError, MissingInputError
from .genome import (
    contig_aliases,
    contig_lengths,
    merge_intervals,
    open_fasta,
    open_text,
    reconcile_contigs,
)
from .gtf import attributes, check_fields, first
from .options import (
    DEFAULT_GENE_TYPES,
    DEFAULT_MISSING_CONTIGS,
    MISSING_CONTIGS,
    MissingContigs,
    check_choice,
)
from .provenance import package_provenance, sha256_file
from .results import write_table

log = logging.getLogger(__name__)

GENE_COLUMNS = ["gene_id", "gene_name", "gene_type", "chrom", "start", "end", "strand"]


def extract_gene_lines(gtf: str | os.PathLike, out: Path) -> int:
    """Validate every line of ``gtf`` and copy its ``gene`` records to ``out``.

    pyranges' reader fails on malformed lines without saying where, so each line is checked here
    and a problem is reported with file and line number. Handing pyranges only the gene records
    keeps memory at the size of the gene table, not of the whole annotation.
    """
    count = 0
    number = 0
    with open_text(gtf) as src, open(out, "w") as dst:
        try:
            for number, line in enumerate(src, start=1):
                count += _copy_gene_line(gtf, number, line, dst)
        except (EOFError, gzip.BadGzipFile, zlib.error) as err:
            raise GTFFormatError(
                f"{gtf}: the gzip file is truncated or damaged after line {number} ({err}); "
                "download or compress it again"
            ) from None
    return count


def _copy_gene_line(gtf: str | os.PathLike, number: int, line: str, dst: TextIO) -> int:
    """Check one GTF line; copy it to ``dst`` if it is a gene record (returns 1, else 0)."""
    if line.startswith("#") or not line.strip():
        return 0
    fields = line.rstrip("\n").split("\t")
    try:
        check_fields(fields)
        if fields[2] == "gene":
            if not first(attributes(fields[8]), "gene_id"):
                raise ValueError("gene record without a gene_id attribute")
            if fields[6] == ".":
                raise ValueError("gene record without a strand")
    except ValueError as err:
        raise GTFFormatError(f"{gtf}, line {number}: malformed GTF line: {err}") from None
    if fields[2] != "gene":
        return 0
    dst.write(line if line.endswith("\n") else line + "\n")
    return 1


def read_genes(gtf: str | os.PathLike) -> pd.DataFrame:
    """All gene records of a GTF as ``gene_id, gene_name, gene_type, chrom, start, end, strand``
    (``start``/``end`` 1-based inclusive, ``chrom`` as in the GTF)."""
    with tempfile.TemporaryDirectory(prefix="sptx-genes-") as tmp:
        genes_only = Path(tmp) / "genes.gtf"
        if extract_gene_lines(gtf, genes_only) == 0:
            raise InputError(f"{gtf} has no 'gene' records; the genes stage needs them")
        with warnings.catch_warnings():  # pyranges 0.1 uses a pandas API deprecated in pandas 3
            warnings.filterwarnings("ignore", message="The inplace keyword", module="pyranges")
            frame = pr.read_gtf(str(genes_only), as_df=True)
    for column in ("gene_name", "gene_type"):
        if column not in frame:
            frame[column] = pd.NA
    gene_type = frame["gene_type"].fillna(frame.get("gene_biotype", pd.Series(pd.NA, frame.index)))
    return pd.DataFrame(
        {
            "gene_id": frame["gene_id"].astype(str),
            "gene_name": frame["gene_name"].fillna(frame["gene_id"]).astype(str),
            "gene_type": gene_type.fillna("").astype(str),
            "chrom": frame["Chromosome"].astype(str),
            "start": frame["Start"].astype("int64") + 1,  # pyranges is 0-based
            "end": frame["End"].astype("int64"),
            "strand": frame["Strand"].astype(str),
        }
    )


def strip_version(gene_id: pd.Series) -> pd.Series:
    """Gene ids without their version (``ENSG...5`` and ``ENSG...5_PAR_Y`` -> ``ENSG...``).

    The one rule for which gene an unversioned id names, used by the ``genes`` filter and by
    ``query``.
    """
    return gene_id.str.replace(r"\.\d+(_PAR_Y)?$", "", regex=True)


def filter_genes(
    genes: pd.DataFrame,
    gene_types: Sequence[str] = (),
    chromosomes: Sequence[str] = (),
    names: Sequence[str] = (),
) -> pd.DataFrame:
    """Apply the selection filters; an empty filter keeps everything.

    ``chromosomes`` match a contig under either naming scheme (``1`` or ``chr1``); ``names``
    match gene names or gene ids with or without version. A requested gene not found is an error.
    """
    keep = pd.Series(True, index=genes.index)
    if gene_types:
        keep &= genes["gene_type"].isin(gene_types)
    if chromosomes:
        wanted_contigs = set(chromosomes)
        matches = {
            name: name in wanted_contigs or bool(wanted_contigs & set(contig_aliases(name)))
            for name in genes["chrom"].unique()
        }
        keep &= genes["chrom"].map(matches).astype(bool)
    if names:
        wanted = set(names)
        by_name = genes["gene_name"].isin(wanted)
        by_id = genes["gene_id"].isin(wanted) | strip_version(genes["gene_id"]).isin(wanted)
        found = set(genes.loc[keep & (by_name | by_id), ["gene_name", "gene_id"]].stack())
        found |= set(strip_version(genes.loc[keep & by_id, "gene_id"]))
        missing = sorted(wanted - found)
        if missing:
            raise InputError(
                f"requested genes not found among the genes passing the type/chromosome filters: "
                f"{', '.join(missing)}"
            )
        keep &= by_name | by_id
    return genes[keep]


def _reconcile(
    genes: pd.DataFrame, lengths: dict[str, int], missing_contigs: MissingContigs, gtf: str
) -> pd.DataFrame:
    mapping = reconcile_contigs(genes["chrom"].unique(), lengths)
    missing = sorted(name for name, target in mapping.items() if target is None)
    if missing:
        counts = genes["chrom"].value_counts()
        listing = ", ".join(f"{name} ({counts[name]} genes)" for name in missing)
        if missing_contigs != "skip":
            raise InputError(
                f"selected genes of {gtf} lie on contigs missing from the FASTA: {listing}. "
                "Use a matching genome, restrict 'chromosomes', or set missing_contigs: skip."
            )
        log.warning("skipping genes on contigs missing from the FASTA: %s", listing)
    genes = genes.assign(chrom=genes["chrom"].map(mapping))
    genes = genes[genes["chrom"].notna()]
    too_long = genes[genes["end"] > genes["chrom"].map(lengths)]
    if not too_long.empty:
        row = too_long.iloc[0]
        raise InputError(
            f"{len(too_long)} genes end beyond their contig in the FASTA, e.g. {row.gene_id} "
            f"ends at {row.end} but {row.chrom} has {lengths[row.chrom]} bases: the annotation "
            "and the genome are from different assemblies"
        )
    return genes


def merge_regions(genes: pd.DataFrame, contig_order: Sequence[str]) -> pd.DataFrame:
    """Union of gene bodies per chrom and strand, 0-based half-open, in FASTA order
    (``genome.merge_intervals``, the one interval union of the package)."""
    rows = [
        (chrom, strand, start, end)
        for (chrom, strand), group in genes.groupby(["chrom", "strand"], sort=False)
        for start, end in merge_intervals(group["start"].to_numpy() - 1, group["end"].to_numpy())
    ]
    regions = pd.DataFrame(rows, columns=["chrom", "strand", "start", "end"])
    regions = regions.astype({"chrom": str, "strand": str, "start": "int64", "end": "int64"})
    return _sort(regions, contig_order, ["strand", "start"])


def _sort(frame: pd.DataFrame, contig_order: Sequence[str], by: list[str]) -> pd.DataFrame:
    rank = {name: i for i, name in enumerate(contig_order)}
    frame = frame.assign(_rank=frame["chrom"].map(rank))
    return (
        frame.sort_values(["_rank", *by], kind="stable")
        .drop(columns="_rank")
        .reset_index(drop=True)
    )


def select_genes(
    gtf: str | os.PathLike,
    fasta: str | os.PathLike,
    out_genes: str | os.PathLike,
    out_regions: str | os.PathLike,
    gene_types: Sequence[str] = DEFAULT_GENE_TYPES,
    chromosomes: Sequence[str] = (),
    genes: Sequence[str] = (),
    missing_contigs: MissingContigs = DEFAULT_MISSING_CONTIGS,
    out_exons: str | os.PathLike | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the genes stage; returns the genes and regions tables it wrote.

    With ``out_exons``, also the exons of each selected gene's canonical transcript
    (``transcripts.canonical_exons``), which variant masking needs.
    """
    check_choice("missing_contigs", missing_contigs, MISSING_CONTIGS)
    if not Path(gtf).is_file():
        raise MissingInputError(f"GTF file not found: {gtf}")
    remove_stale(*(p for p in (out_genes, out_regions, out_exons) if p is not None))
    lengths = contig_lengths(open_fasta(fasta))
    table = read_genes(gtf)
    log.info("%s: %d gene records", gtf, len(table))
    table = filter_genes(table, gene_types=gene_types, chromosomes=chromosomes, names=genes)
    if not table.empty:
        table = _reconcile(table, lengths, missing_contigs, str(gtf))
    if table.empty:
        raise InputError(
            f"no genes selected from {gtf} (gene_types={list(gene_types)}, "
            f"chromosomes={list(chromosomes)}, genes={list(genes)}): check the filters"
        )
    table = _sort(table[GENE_COLUMNS], list(lengths), ["start", "end", "gene_id"])
    regions = merge_regions(table, list(lengths))
    log.info(
        "selected %d genes; %d regions covering %d bases",
        len(table),
        len(regions),
        int((regions["end"] - regions["start"]).sum()),
    )
    metadata = {
        "gtf": str(Path(gtf).resolve()),
        "gtf_sha256": sha256_file(gtf),
        "fasta": str(Path(fasta).resolve()),
        "gene_types": list(gene_types),
        "chromosomes": list(chromosomes),
        "genes": list(genes),
        "missing_contigs": missing_contigs,
        **package_provenance(),
    }
    write_table(table, out_genes, metadata)
    write_table(regions, out_regions, metadata)
    if out_exons is not None:
        from .transcripts import canonical_exons

        write_table(canonical_exons(gtf, table["gene_id"]), out_exons, metadata)
    return table, regions
