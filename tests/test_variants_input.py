"""``sptx variants --gtf`` and the streamed driver, on the bundled example region.

The VCF has the contig named ``19`` (the FASTA: ``chr19``), the 18 records of SpliceAI's test VCF
that lie in the bundled region and SNVs at the canonical exon boundaries of every gene, with
the REF read from the FASTA (an independent re-derivation of the bases).
"""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pysam
import pytest

import sptx_pipeline.variants as variants
from sptx_pipeline.annotation import select_genes
from sptx_pipeline.errors import InputError
from sptx_pipeline.testing import THREADED, StandInFactory
from sptx_pipeline.variants import (
    Annotation,
    Settings,
    _spliceai_entry,
    score_records,
    score_variants,
)
from sptx_pipeline.vcf import read_records
from tests.genome_fixtures import EXAMPLE_FASTA, EXAMPLE_GTF, REPO

SPLICEAI_VCF = REPO / "tests" / "data" / "variants" / "spliceai_chr19_variants.vcf"
COLUMNS = "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"


def _official_records() -> list[str]:
    """SpliceAI's test records on the bundled region (with malformed REFs and symbolic ALTs)."""
    return [x for x in SPLICEAI_VCF.read_text().splitlines(True) if not x.startswith("#")]


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    base = tmp_path_factory.mktemp("example")
    genes, exons = base / "genes.parquet", base / "exons.parquet"
    select_genes(EXAMPLE_GTF, EXAMPLE_FASTA, genes, base / "regions.parquet", out_exons=exons)
    fasta = pysam.FastaFile(str(EXAMPLE_FASTA))
    sites = pd.read_parquet(exons).groupby("gene_id")["start"].min().sort_values()
    lines = []
    for pos in sites.to_numpy()[::3]:
        for p in (int(pos) - 2, int(pos) + 1):
            ref = fasta.fetch("chr19", p - 1, p).upper()
            alt = "A" if ref != "A" else "G"
            lines.append(f"19\t{p}\t.\t{ref}\t{alt}\t.\t.\t.\n")
    vcf = base / "calls.vcf"
    vcf.write_text(
        "##fileformat=VCFv4.2\n" + COLUMNS + "".join(lines) + "".join(_official_records())
    )
    return {"genes": genes, "exons": exons, "vcf": vcf, "base": base}


def _run(vcf, out, genes=None, exons=None, **kwargs):
    return score_variants(
        vcf,
        EXAMPLE_FASTA,
        genes,
        StandInFactory(),
        out / "variants.parquet",
        out / "variants.vcf.gz",
        exons=exons,
        device="cpu",
        cluster=THREADED,
        progress=False,
        **{"shard_size": 7, **kwargs},
    )


def test_gtf_gives_the_same_result_as_genes_and_exons(example, tmp_path):
    _run(example["vcf"], tmp_path / "a", example["genes"], example["exons"], mask=True)
    _run(example["vcf"], tmp_path / "b", gtf=EXAMPLE_GTF, mask=True)
    a = pd.read_parquet(tmp_path / "a" / "variants.parquet")
    b = pd.read_parquet(tmp_path / "b" / "variants.parquet")
    assert (a["status"] == "ok").sum() > 40 and a["gene_name"].nunique() > 5
    pd.testing.assert_frame_equal(a, b)
    entries = []
    for name in ("a", "b"):
        with pysam.VariantFile(str(tmp_path / name / "variants.vcf.gz")) as result:
            entries.append([r.info.get("SpliceAI") for r in result])
    assert entries[0] == entries[1]
    provenance = pq.read_schema(tmp_path / "b" / "variants.parquet").metadata
    assert str(EXAMPLE_GTF.resolve()).encode() in provenance[b"sptx"]


def test_gtf_gene_types_select_as_the_genes_stage(example, tmp_path):
    """A gene-type filter that keeps no gene of the GTF fails as the genes stage fails, also
    when rerun over a finished run with other gene types (not resumed from its selection)."""
    _run(example["vcf"], tmp_path / "none", gtf=EXAMPLE_GTF)
    with pytest.raises(InputError, match=r"no genes selected from .*gene_types=\['lncRNA'\]"):
        _run(example["vcf"], tmp_path / "none", gtf=EXAMPLE_GTF, gene_types=["lncRNA"])


def test_streamed_outputs_equal_the_in_memory_scoring(example, tmp_path, monkeypatch):
    """Records read in chunks of 5 and written part by part give what the in-memory driver
    gave (``read_records`` of the whole VCF, ``score_records`` per shard, the tables
    concatenated in memory), for the Parquet and the VCF."""
    monkeypatch.setattr(variants, "RECORD_CHUNK", 5)
    monkeypatch.setattr(variants, "RECORD_GROUP", 3)
    plain = tmp_path / "calls.vcf.gz"
    plain.write_bytes(gzip.compress(example["vcf"].read_bytes()))
    _run(plain, tmp_path, example["genes"], example["exons"], shard_size=4)
    got = pq.read_table(tmp_path / "variants.parquet")
    assert pq.ParquetFile(tmp_path / "variants.parquet").metadata.num_row_groups > 5
    records = pq.ParquetFile(tmp_path / "variants.parquet.work" / "records.parquet")
    assert records.metadata.num_row_groups > 5
    annotation = Annotation.load(str(EXAMPLE_FASTA), str(example["genes"]), str(example["exons"]))
    model = StandInFactory()().eval()
    every = read_records(example["vcf"])
    settings = Settings("spliceai", 50, False, 50)
    parts = [  # the previous driver: every record in memory, the same shards of 4 records
        score_records(every[start : start + 4], annotation, settings, model)
        for start in range(0, len(every), 4)
    ]
    expected = pa.concat_tables(parts)
    assert got.to_pylist() == expected.to_pylist()
    by_record: dict[int, list[str]] = {}
    for row in expected.to_pylist():
        entry = _spliceai_entry(row)
        if entry is not None:
            by_record.setdefault(row["record"], []).append(entry)
    with pysam.VariantFile(str(tmp_path / "variants.vcf.gz")) as result:
        written = [list(r.info.get("SpliceAI") or ()) for r in result]
    assert written == [by_record.get(i, []) for i in range(len(every))]
    assert np.count_nonzero([bool(w) for w in written]) > 25
