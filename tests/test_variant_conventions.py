"""``sptx variants`` never deviates from the official tools without a word.

- SpliceAI convention without exons: an error (the official tool's genes are canonical
  transcripts, whose span N-masks the window), not gene bodies used silently.
- A gene without canonical exons where they are needed (the SpliceAI convention, the mask): its
  rows say so (status ``no_exons``) and a warning names the genes, instead of every loss being
  zeroed by a mask with no boundary.
- SpTransformer convention on a ``genes.parquet`` filtered by gene type: a warning, since the
  official SpliceTransformer tool scores the strand of every gene at the locus.

A synthetic genome and the stand-in model (flank 50) keep these fast: ``chr1`` with G1 (+,
protein coding, three exons), G2 (-, protein coding, two exons) and G3 (-, a pseudogene inside
G1 with a gene line only, so no transcript and no exons).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from sptx_pipeline.annotation import select_genes
from sptx_pipeline.errors import SptxError
from sptx_pipeline.testing import THREADED, WIDE_CHANNELS, StandInFactory
from sptx_pipeline.variants import score_variants
from tests.genome_fixtures import write_fasta

SPTRANSFORMER = StandInFactory(channels=WIDE_CHANNELS)  # 18 channels: sptransformer convention
GENES = (  # name, type, strand, start, end, exons (None: gene line only)
    ("G1", "protein_coding", "+", 200, 3000, [(200, 900), (1200, 1500), (2000, 3000)]),
    ("G2", "protein_coding", "-", 1500, 3990, [(1500, 1800), (2500, 3990)]),
    ("G3", "processed_pseudogene", "-", 400, 800, None),
)


@pytest.fixture(scope="module")
def genome(tmp_path_factory):
    base = tmp_path_factory.mktemp("genome")
    chr1 = "".join(np.random.default_rng(5).choice(list("ACGT"), 4000))
    fasta = write_fasta(base / "g.fa", {"chr1": chr1})
    lines = []
    for name, kind, strand, start, end, exons in GENES:
        attrs = f'gene_id "{name}"; gene_name "{name}"; gene_type "{kind}";'
        lines.append(f"chr1\tT\tgene\t{start}\t{end}\t.\t{strand}\t.\t{attrs}\n")
        if exons is None:
            continue
        tx = attrs + f' transcript_id "{name}.1";'
        lines.append(f"chr1\tT\ttranscript\t{start}\t{end}\t.\t{strand}\t.\t{tx}\n")
        lines += [f"chr1\tT\texon\t{s}\t{e}\t.\t{strand}\t.\t{tx}\n" for s, e in exons]
    gtf = base / "g.gtf"
    gtf.write_text("".join(lines))
    paths = {"fasta": fasta, "chr1": chr1}
    for label, types in (("all", []), ("coding", ["protein_coding"])):
        genes, exons = base / f"genes_{label}.parquet", base / f"exons_{label}.parquet"
        select_genes(
            gtf, fasta, genes, base / f"regions_{label}.parquet", gene_types=types, out_exons=exons
        )
        paths[f"genes_{label}"], paths[f"exons_{label}"] = genes, exons
    vcf = base / "in.vcf"
    other = {"A": "C", "C": "G", "G": "T", "T": "A"}
    body = "".join(  # 600: G1 (+) and G3 (-); 1600: G1 (+) and G2 (-)
        f"1\t{p}\t.\t{chr1[p - 1]}\t{other[chr1[p - 1]]}\t.\t.\t.\n" for p in (600, 1600)
    )
    vcf.write_text(
        "##fileformat=VCFv4.2\n##contig=<ID=1>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
        + body
    )
    paths["vcf"] = vcf
    return paths


def run(genome, out, genes="all", model=None, exons="default", **kwargs) -> pd.DataFrame:
    score_variants(
        genome["vcf"],
        genome["fasta"],
        genome[f"genes_{genes}"],
        model or StandInFactory(),
        out / "variants.parquet",
        out / "variants.vcf.gz",
        exons=genome[f"exons_{genes}"] if exons == "default" else exons,
        device="cpu",
        cluster=THREADED,
        progress=False,
        **kwargs,
    )
    return pd.read_parquet(out / "variants.parquet")


def statuses(frame: pd.DataFrame) -> dict[tuple[int, str], str]:
    return {(int(r.pos), r.gene_name): r.status for r in frame.itertuples()}


def test_spliceai_convention_without_exons_is_an_error(genome, tmp_path):
    with pytest.raises(SptxError, match=r"--exons .*sptx genes --out-exons") as error:
        run(genome, tmp_path, exons=None)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "variants.parquet").exists()


def test_gene_without_exons_is_not_scored_in_the_spliceai_convention(genome, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="sptx_pipeline.variants"):
        frame = run(genome, tmp_path)
    assert statuses(frame) == {
        (600, "G1"): "ok",
        (600, "G3"): "no_exons",
        (1600, "G1"): "ok",
        (1600, "G2"): "ok",
    }
    assert frame.loc[frame["status"] == "no_exons", "ds_al"].isna().all()
    warned = [r.getMessage() for r in caplog.records if "no canonical exons" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith("1 genes") and "G3 (G3)" in warned[0]


@pytest.mark.parametrize("mask", [False, True])
def test_sptransformer_convention_needs_exons_only_for_the_mask(genome, tmp_path, caplog, mask):
    """Unmasked, G3 is scored on its gene body (as the official tool does); masked, a gene with
    no boundary would have every loss zeroed, so its rows are ``no_exons`` and named."""
    with caplog.at_level(logging.WARNING, logger="sptx_pipeline.variants"):
        frame = run(genome, tmp_path, model=SPTRANSFORMER, mask=mask)
    assert statuses(frame)[(600, "G3")] == ("no_exons" if mask else "ok")
    assert statuses(frame)[(600, "G1")] == "ok"
    warned = [r.getMessage() for r in caplog.records if "no canonical exons" in r.getMessage()]
    assert len(warned) == int(mask)


def test_sptransformer_convention_warns_about_a_gene_type_filter(genome, tmp_path, caplog):
    """The official tool scores the '-' strand at 600 (the pseudogene G3); a genes.parquet of
    protein-coding genes cannot, and the run says so."""
    with caplog.at_level(logging.WARNING, logger="sptx_pipeline.variants"):
        coding = run(genome, tmp_path / "coding", genes="coding", model=SPTRANSFORMER)
    warned = [r.getMessage() for r in caplog.records if "gene_types" in r.getMessage()]
    assert len(warned) == 1 and "protein_coding" in warned[0] and "--gene-types=" in warned[0]
    assert set(coding.loc[coding["pos"] == 600, "strand"]) == {"+"}
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sptx_pipeline.variants"):
        every = run(genome, tmp_path / "all", genes="all", model=SPTRANSFORMER)
    assert not [r for r in caplog.records if "gene_types" in r.getMessage()]
    assert set(every.loc[every["pos"] == 600, "strand"]) == {"+", "-"}
