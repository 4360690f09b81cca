"""The SpliceAI convention of ``sptx variants`` against the official ``spliceai`` 1.3.1 CLI.

The expected VCF was written by the official tool (GRCh37 annotation, ``-D 50 -M 0``) for the
variants of ``spliceai_chr19_variants.vcf`` (contig ``19``; our FASTA names it ``chr19``):
SNVs, multi-allelic records, deletions, insertions, an MNV, a REF of ``Z``, ``*`` ALTs and
positions 1..3 whose window runs off the chromosome. The model is SpliceAI's published
weights; genes and exons come from the bundled GTF (written from SpliceAI's own annotation
table). Every INFO entry must match as printed: allele, gene, the four DS as text (the sign of
``-0.00`` included) and the four DP of every entry, also where the DS is near zero or the mask
zeroed it.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pysam
import pytest

from tests.genome_fixtures import EXAMPLE_FASTA, EXAMPLE_GTF

DATA = Path(__file__).parent / "data" / "variants"
FIELDS = ("DS_AG", "DS_AL", "DS_DG", "DS_DL", "DP_AG", "DP_AL", "DP_DG", "DP_DL")


def sptx(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "sptx_pipeline.cli", *args], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def annotation(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("genes")
    paths = {name: base / f"{name}.parquet" for name in ("genes", "regions", "exons")}
    sptx(
        *("genes", "--gtf", str(EXAMPLE_GTF), "--fasta", str(EXAMPLE_FASTA)),
        *("--gene-types=", "--out-genes", str(paths["genes"])),
        *("--out-regions", str(paths["regions"]), "--out-exons", str(paths["exons"])),
    )
    return paths


def run_variants(annotation, vcf: Path, out: Path, *extra: str) -> tuple[Path, Path]:
    parquet, vcf_out = out / "variants.parquet", out / "variants.vcf.gz"
    sptx(
        *("variants", "--vcf", str(vcf), "--fasta", str(EXAMPLE_FASTA)),
        *("--genes", str(annotation["genes"]), "--exons", str(annotation["exons"])),
        *("--model", "spliceai", "--out-parquet", str(parquet), "--out-vcf", str(vcf_out)),
        *("--device", "cpu", "--shard-size", "8", "--no-progress", *extra),
    )
    return parquet, vcf_out


def spliceai_entries(path: Path) -> list[tuple[str, tuple, list[str]]]:
    """``(chrom:pos:ref>alts, entries)`` for every record, in file order."""
    with pysam.VariantFile(str(path)) as vcf:
        return [
            (
                f"{rec.chrom}:{rec.pos}:{rec.ref}>{','.join(rec.alts or ())}",
                tuple(rec.info["SpliceAI"]) if "SpliceAI" in rec.info else (),
            )
            for rec in vcf
        ]


def assert_same_spliceai(ours: Path, expected: Path) -> int:
    """Every record and INFO entry equal as the official tool printed it: allele, gene, the
    four DS as text (so ``-0.00`` differs from ``0.00``) and the four DP of every entry,
    including entries whose DS the mask zeroed. Returns the scored entries compared."""
    mine, theirs = spliceai_entries(ours), spliceai_entries(expected)
    assert [key for key, _ in mine] == [key for key, _ in theirs]
    compared = 0
    for (key, got), (_, want) in zip(mine, theirs, strict=True):
        assert len(got) == len(want), (key, got, want)
        for a, b in zip(got, want, strict=True):
            a_fields, b_fields = a.split("|"), b.split("|")
            assert len(a_fields) == len(b_fields) == 10, (key, a, b)
            assert a_fields[:2] == b_fields[:2], (key, a, b)
            for name, x, y in zip(FIELDS, a_fields[2:], b_fields[2:], strict=True):
                assert x == y, (key, name, a, b)
            compared += b_fields[2] != "."
    return compared


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("A|STK11|0.00|0.01|0.00|-0.00|", "A|STK11|0.00|0.01|0.00|0.00|"),  # the sign of -0.00
        ("|24|3|23|-38", "|24|3|23|-37"),  # a DP where the DS is -0.00 (float-noise range)
    ],
    ids=["sign", "dp-near-zero"],
)
def test_the_comparison_is_as_printed(tmp_path, old, new):
    """One printed character changed in an official output fails the comparison: a float
    comparison of DS, or DP only where DS >= 0.05, would accept both of these."""
    official = DATA / "spliceai_D50_M0.vcf"
    changed = tmp_path / "changed.vcf"
    text = official.read_text()
    assert text.count(old) == 1
    changed.write_text(text.replace(old, new))
    assert assert_same_spliceai(official, official) == 93
    with pytest.raises(AssertionError):
        assert_same_spliceai(changed, official)


@pytest.fixture(scope="module")
def shared_run(annotation, tmp_path_factory):
    out = tmp_path_factory.mktemp("shared")
    return run_variants(annotation, DATA / "spliceai_chr19_variants.vcf", out)


@pytest.mark.slow
def test_cli_matches_the_official_tool(shared_run):
    _, vcf_out = shared_run
    assert assert_same_spliceai(vcf_out, DATA / "spliceai_chr19_variants_expected.vcf") == 22


@pytest.mark.slow
def test_output_vcf_is_indexed_and_carries_provenance(shared_run):
    _, vcf_out = shared_run
    assert Path(str(vcf_out) + ".tbi").is_file()
    with pysam.VariantFile(str(vcf_out)) as vcf:
        lines = [r for r in vcf.header.records if r.key == "sptx_provenance"]
        hits = list(vcf.fetch("19", 1228430, 1228433))  # tabix works
    assert [h.pos for h in hits] == [1228431, 1228432, 1228433]
    record = json.loads(lines[0].value)
    assert record["settings"] == {
        "convention": "spliceai",
        "distance": 50,
        "mask": False,
        "precision": "float32",
    }
    assert record["model"]["source"] == "spliceai" and len(record["model"]["weights_sha256"]) == 64
    assert record["inputs"]["annotation"]["gtf_sha256"]


@pytest.mark.slow
def test_parquet_rows_and_statuses(shared_run):
    parquet, _ = shared_run
    frame = pd.read_parquet(parquet)
    assert list(frame.columns[:9]) == [
        *("chrom", "pos", "id", "ref", "alt", "gene_id", "gene_name", "strand", "status"),
    ]
    status = frame.groupby(["pos", "ref", "alt"])["status"].agg(lambda s: sorted(set(s)))
    assert status[(1, "C", "A")] == ["no_gene"]
    assert status[(1228434, "Z", "A")] == ["ref_mismatch"]
    assert status[(1228443, "G", "T/*")] == ["skipped_alt"]
    assert status[(1228442, "GG", "CC")] == ["mnv"]
    assert status[(1228442, "GG", "A")] == ["ok"]
    # one row per record x ALT x gene: 19:1228432 C>A,T over STK11 (+) and CBARP (-)
    rows = frame[frame["pos"] == 1228432]
    assert list(zip(rows["alt"], rows["gene_name"], rows["strand"], strict=True)) == [
        ("A", "STK11", "+"),
        ("A", "CBARP", "-"),
        ("T", "STK11", "+"),
        ("T", "CBARP", "-"),
    ]
    meta = json.loads(pq.read_schema(parquet).metadata[b"sptx"])
    assert meta["settings"]["convention"] == "spliceai"
    assert frame["record"].is_monotonic_increasing


OFFICIAL_RUNS = [  # (input, official output, sptx options)
    ("spliceai_variants_input.vcf", "spliceai_D50_M0.vcf", ()),
    ("spliceai_variants_input.vcf", "spliceai_D50_M1.vcf", ("--mask",)),
    ("spliceai_variants_input.vcf", "spliceai_D500_M0.vcf", ("--distance", "500")),
    ("spliceai_variants_input.vcf", "spliceai_D500_M1.vcf", ("--distance", "500", "--mask")),
    ("spliceai_chr_input.vcf", "spliceai_chr_D50_M0.vcf", ()),
]


@pytest.mark.slow
@pytest.mark.parametrize(("source", "expected", "options"), OFFICIAL_RUNS)
def test_official_edge_cases(annotation, tmp_path, source, expected, options):
    """SNVs at canonical GT/AG on both strands, deletions across exon boundaries, insertions,
    MNVs, multi-allelic records, lower-case, IUPAC and N alleles, gene and contig ends, long
    deletions, ``-D 50/500`` x ``-M 0/1``: the official CLI's outputs in tests/data/variants."""
    _, vcf_out = run_variants(annotation, DATA / source, tmp_path, *options)
    assert assert_same_spliceai(vcf_out, DATA / expected) > 0


@pytest.mark.slow
def test_symbolic_alts_are_written_where_the_official_tool_aborts(annotation, tmp_path):
    """The official CLI dies on ``<DEL>`` (spliceai_symbolic_D50_M0.error.txt); we keep the
    records, give the SNV ALT its entry and mark the symbolic ones."""
    parquet, vcf_out = run_variants(annotation, DATA / "spliceai_symbolic_input.vcf", tmp_path)
    frame = pd.read_parquet(parquet)
    assert sorted(frame["status"]) == ["ok", "symbolic_alt", "symbolic_alt"]
    entries = spliceai_entries(vcf_out)
    assert [len(e) for _, e in entries] == [1, 0]
    assert entries[0][1][0].startswith("T|GPX4|")


@pytest.mark.slow
def test_query_variant_cli(shared_run):
    parquet, _ = shared_run
    result = sptx("query-variant", str(parquet.parent), "chr19:1,228,432:C>T", "--format", "csv")
    rows = pd.read_csv(io.StringIO(result.stdout))
    assert list(zip(rows["gene_name"], rows["strand"], strict=True)) == [
        ("STK11", "+"),
        ("CBARP", "-"),
    ]
    assert (rows["chrom"].astype(str) == "19").all() and (rows["alt"] == "T").all()
    by_gene = sptx("query-variant", str(parquet), "CBARP", "--format", "csv")
    assert set(pd.read_csv(io.StringIO(by_gene.stdout))["gene_name"]) == {"CBARP"}
