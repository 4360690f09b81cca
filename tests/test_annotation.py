"""The genes stage: GTF validation, filters, contig reconciliation, regions, atomic outputs."""

import json
import logging

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from sptx_pipeline.annotation import select_genes
from sptx_pipeline.errors import GTFFormatError
from sptx_pipeline.provenance import sha256_file
from tests.genome_fixtures import (
    EXAMPLE_FASTA,
    EXAMPLE_GTF,
    gtf_line,
    random_sequence,
    write_fasta,
    write_gtf,
)

GENES = [
    ("chr1", 101, 300, "+", "G1.3", "ALPHA"),
    ("chr1", 250, 400, "+", "G2.1", "BETA"),  # overlaps G1 on +
    ("chr1", 401, 450, "+", "G3.1", "GAMMA"),  # book-ended to G2
    ("chr1", 200, 350, "-", "G4.1", "DELTA"),  # same span on -, must stay separate
    ("chr1", 600, 700, "-", "G5.1", "EPS", "lncRNA"),
    ("chr1", 800, 900, "+", "G6.1", "ZETA", "unprocessed_pseudogene"),
    ("chr2", 1, 50, "-", "G7.1", "ETA"),
    ("chrM", 10, 100, "+", "G8.1", "MT-X"),
]


@pytest.fixture()
def inputs(tmp_path):
    rng = np.random.default_rng(3)
    contigs = {"chr2": random_sequence(rng, 300), "chr1": random_sequence(rng, 1000)}
    contigs["chrM"] = random_sequence(rng, 200)
    return write_gtf(tmp_path / "a.gtf", GENES), write_fasta(tmp_path / "g.fa", contigs), tmp_path


def run(gtf, fasta, tmp_path, **kwargs):
    return select_genes(
        gtf, fasta, tmp_path / "genes.parquet", tmp_path / "regions.parquet", **kwargs
    )


def union(intervals):
    """Independent union of half-open intervals, as a set of positions."""
    return {p for start, end in intervals for p in range(start, end)}


def test_select_genes_tables(inputs):
    gtf, fasta, tmp = inputs
    genes, regions = run(gtf, fasta, tmp)
    assert list(genes.columns) == [
        "gene_id",
        "gene_name",
        "gene_type",
        "chrom",
        "start",
        "end",
        "strand",
    ]
    # default gene types drop the pseudogene; FASTA order: chr2 first
    assert genes["gene_id"].tolist() == ["G7.1", "G1.3", "G4.1", "G2.1", "G3.1", "G5.1", "G8.1"]
    assert genes.set_index("gene_id").loc["G1.3", ["start", "end"]].tolist() == [101, 300]
    assert pd.read_parquet(tmp / "genes.parquet").equals(genes)
    assert list(regions.columns) == ["chrom", "strand", "start", "end"]
    assert pd.read_parquet(tmp / "regions.parquet").equals(regions)
    for (chrom, strand), group in regions.groupby(["chrom", "strand"]):
        sel = genes[(genes.chrom == chrom) & (genes.strand == strand)]
        expected = union(zip(sel.start - 1, sel.end, strict=True))
        got = list(zip(group.start, group.end, strict=True))
        assert union(got) == expected
        assert sum(end - start for start, end in got) == len(expected)  # disjoint
    plus = regions[(regions.chrom == "chr1") & (regions.strand == "+")]
    assert list(zip(plus.start, plus.end, strict=True)) == [(100, 450)]
    assert regions["chrom"].tolist()[0] == "chr2"
    meta = json.loads(pq.read_metadata(tmp / "genes.parquet").metadata[b"sptx"])
    assert meta["gtf_sha256"] == sha256_file(gtf)


def test_filters(inputs):
    gtf, fasta, tmp = inputs
    genes, _ = run(gtf, fasta, tmp, gene_types=[])
    assert "G6.1" in set(genes.gene_id)
    genes, _ = run(gtf, fasta, tmp, gene_types=["lncRNA"])
    assert genes.gene_id.tolist() == ["G5.1"]
    genes, _ = run(gtf, fasta, tmp, chromosomes=["2"])  # alias of chr2
    assert genes.gene_id.tolist() == ["G7.1"]
    genes, _ = run(gtf, fasta, tmp, genes=["ALPHA", "G4", "G7.1"])  # name, id w/o version, id
    assert sorted(genes.gene_id) == ["G1.3", "G4.1", "G7.1"]
    with pytest.raises(ValueError, match="requested genes not found.*NOPE"):
        run(gtf, fasta, tmp, genes=["ALPHA", "NOPE"])


def test_contig_reconciliation_1_vs_chr1_and_mt(tmp_path, caplog):
    rng = np.random.default_rng(4)
    fasta = write_fasta(tmp_path / "g.fa", {"chr1": random_sequence(rng, 500), "chrM": "ACGT" * 50})
    gtf = write_gtf(tmp_path / "a.gtf", [("1", 10, 100, "+", "A"), ("MT", 5, 60, "-", "B")])
    with caplog.at_level(logging.INFO):
        genes, regions = run(gtf, fasta, tmp_path)
    assert genes.chrom.tolist() == ["chr1", "chrM"]
    assert regions.chrom.tolist() == ["chr1", "chrM"]
    assert "'1' of the annotation is 'chr1'" in caplog.text
    assert "'MT' of the annotation is 'chrM'" in caplog.text
    fasta2 = write_fasta(tmp_path / "e.fa", {"1": "ACGT" * 100, "MT": "ACGT" * 50})
    gtf2 = write_gtf(tmp_path / "b.gtf", [("chr1", 10, 100, "+", "A"), ("chrM", 5, 60, "-", "B")])
    genes, _ = run(gtf2, fasta2, tmp_path)
    assert genes.chrom.tolist() == ["1", "MT"]


def test_missing_contigs_error_or_skip(inputs, caplog):
    gtf, _, tmp = inputs
    fasta = write_fasta(tmp / "only1.fa", {"chr1": "ACGT" * 250})
    with pytest.raises(
        ValueError, match=r"missing from the FASTA: chr2 \(1 genes\), chrM \(1 genes\)"
    ):
        run(gtf, fasta, tmp)
    assert not (tmp / "genes.parquet").exists()
    with caplog.at_level(logging.WARNING):
        genes, _ = run(gtf, fasta, tmp, missing_contigs="skip")
    assert set(genes.chrom) == {"chr1"} and len(genes) == 5
    assert "skipping genes on contigs missing from the FASTA: chr2" in caplog.text
    genes, _ = run(gtf, fasta, tmp, chromosomes=["chr1"])  # not selected: not missing
    assert len(genes) == 5


def test_gene_beyond_contig_end_is_an_error(tmp_path):
    fasta = write_fasta(tmp_path / "g.fa", {"chr1": "ACGT" * 10})
    gtf = write_gtf(tmp_path / "a.gtf", [("chr1", 10, 100, "+", "A")])
    with pytest.raises(ValueError, match="beyond their contig.*different assemblies"):
        run(gtf, fasta, tmp_path)


@pytest.mark.parametrize(
    "bad, reason",
    [
        ('chr1\tX\tgene\tabc\t100\t.\t+\t.\tgene_id "Q";\n', "positive integers"),
        ("chr1\tX\tgene\t10\t100\t.\t+\n", "expected 9 tab-separated fields, found 7"),
        ('chr1\tX\tgene\t100\t10\t.\t+\t.\tgene_id "Q";\n', "must be >= 1 and <= end"),
        ('chr1\tX\tgene\t10\t100\t.\t*\t.\tgene_id "Q";\n', "strand must be"),
        ('chr1\tX\tgene\t10\t100\t.\t+\t.\tgene_name "Q";\n', "without a gene_id"),
        ('chr1\tX\texon\t10\t100\t.\t+\t.\tgene_id "Q\n', "cannot parse attributes"),
    ],
)
def test_malformed_gtf_line_names_file_and_line(inputs, bad, reason):
    gtf, fasta, tmp = inputs
    lines = gtf.read_text().splitlines(keepends=True)
    lines.insert(4, bad)  # becomes line 5
    broken = tmp / "broken.gtf"
    broken.write_text("".join(lines))
    with pytest.raises(
        GTFFormatError, match=rf"broken\.gtf, line 5: malformed GTF line: .*{reason}"
    ):
        run(broken, fasta, tmp)


def test_empty_selection_is_an_error_and_writes_nothing(inputs):
    gtf, fasta, tmp = inputs
    with pytest.raises(ValueError, match="no genes selected"):
        run(gtf, fasta, tmp, gene_types=["snoRNA"])
    assert not (tmp / "genes.parquet").exists() and not (tmp / "regions.parquet").exists()
    assert not list(tmp.glob(".*tmp*"))


def test_gzip_gtf_equals_plain(inputs):
    gtf, fasta, tmp = inputs
    packed = write_gtf(tmp / "a.gtf.gz", GENES, compress=True)
    plain_genes, plain_regions = run(gtf, fasta, tmp)
    genes, regions = run(packed, fasta, tmp)
    assert genes.equals(plain_genes) and regions.equals(plain_regions)


def test_ensembl_gene_biotype(tmp_path):
    """Ensembl GTFs name the type gene_biotype; it is used when gene_type is absent."""
    fasta = write_fasta(tmp_path / "g.fa", {"1": "ACGT" * 100})
    gtf = tmp_path / "e.gtf"
    gtf.write_text(
        '1\tensembl\tgene\t11\t40\t.\t+\t.\tgene_id "E1"; gene_biotype "protein_coding";\n'
        '1\tensembl\tgene\t51\t90\t.\t-\t.\tgene_id "E2"; gene_biotype "snRNA";\n'
    )
    genes, regions = run(gtf, fasta, tmp_path)
    assert genes[["gene_id", "gene_name", "gene_type", "chrom"]].values.tolist() == [
        ["E1", "E1", "protein_coding", "1"]
    ]
    assert regions.values.tolist() == [["1", "+", 10, 40]]


def test_gtf_without_gene_records(tmp_path):
    fasta = write_fasta(tmp_path / "g.fa", {"chr1": "ACGT" * 10})
    gtf = tmp_path / "a.gtf"
    gtf.write_text(gtf_line("chr1", 1, 10, "+", "A", feature="exon"))
    with pytest.raises(ValueError, match="no 'gene' records"):
        run(gtf, fasta, tmp_path)


def test_example_region(tmp_path):
    genes, regions = run(EXAMPLE_GTF, EXAMPLE_FASTA, tmp_path, genes=["GPX4", "CBARP"])
    assert genes[["gene_name", "chrom", "start", "end", "strand"]].values.tolist() == [
        ["GPX4", "chr19", 1103936, 1106789, "+"],
        ["CBARP", "chr19", 1228286, 1238026, "-"],
    ]
    assert regions.values.tolist() == [
        ["chr19", "+", 1103935, 1106789],
        ["chr19", "-", 1228285, 1238026],
    ]
