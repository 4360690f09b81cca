"""``sptx plot-variant``: the plotted maxima are the ``ds_*``/``dp_*`` (and tissue deltas) of
``variants.parquet``, on SNVs of both strands, a deletion and an insertion, in both conventions.

The values are read back from the drawn figure's own lines and image (what a reader sees), and
compared with the rows the variants stage wrote (stand-in model, no masking).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sptx_pipeline.annotation import select_genes
from sptx_pipeline.cli import main
from sptx_pipeline.plot_variant import draw_variant, plot_variant, variant_effects
from sptx_pipeline.testing import THREADED, WIDE_CHANNELS, StandInFactory
from sptx_pipeline.variants import score_variants
from tests.genome_fixtures import write_fasta

HEADER = "##fileformat=VCFv4.2\n##contig=<ID=chr1>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
OTHER = {"A": "C", "C": "G", "G": "T", "T": "A"}
MODELS = {
    "sptransformer": StandInFactory(channels=WIDE_CHANNELS),
    "spliceai": StandInFactory(),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def results(request, tmp_path_factory):
    """A results folder: genes/exons of a + and a - gene, and variants.parquet of four records."""
    out = tmp_path_factory.mktemp(request.param)
    rng = np.random.default_rng(5)
    chr1 = "".join(rng.choice(list("ACGT"), 4000))
    fasta = write_fasta(out / "g.fa", {"chr1": chr1})
    lines = []
    for gene, strand, start, end, exons in (
        ("GP", "+", 200, 3000, [(200, 900), (1200, 1500), (2000, 3000)]),
        ("GM", "-", 1500, 3800, [(1500, 1800), (2500, 3800)]),
    ):
        attrs = f'gene_id "{gene}"; gene_name "{gene}"; gene_type "protein_coding";'
        tx = attrs + f' transcript_id "{gene}.1";'
        lines.append(f"chr1\tT\tgene\t{start}\t{end}\t.\t{strand}\t.\t{attrs}\n")
        lines.append(f"chr1\tT\ttranscript\t{start}\t{end}\t.\t{strand}\t.\t{tx}\n")
        lines += [f"chr1\tT\texon\t{s}\t{e}\t.\t{strand}\t.\t{tx}\n" for s, e in exons]
    (out / "g.gtf").write_text("".join(lines))
    select_genes(
        out / "g.gtf", fasta, out / "genes.parquet", out / "regions.parquet", gene_types=[],
        out_exons=out / "exons.parquet",
    )  # fmt: skip

    def b(pos: int, n: int = 1) -> str:
        return chr1[pos - 1 : pos - 1 + n]

    variants = {
        "snv_plus": f"chr1:1010:{b(1010)}>{OTHER[b(1010)]}",  # GP only
        "snv_both": f"chr1:2498:{b(2498)}>{OTHER[b(2498)]}",  # GP and GM (minus)
        "snv_minus": f"chr1:3300:{b(3300)}>{OTHER[b(3300)]}",  # GM only
        "deletion": f"chr1:1750:{b(1750, 4)}>{b(1750)}",
        "insertion": f"chr1:2010:{b(2010)}>{b(2010)}GTA",
    }
    body = ""
    for text in sorted(variants.values(), key=lambda t: int(t.split(":")[1])):
        chrom, pos, alleles = text.split(":")
        ref, alt = alleles.split(">")
        body += f"{chrom}\t{pos}\t.\t{ref}\t{alt}\t.\t.\t.\n"
    (out / "in.vcf").write_text(HEADER + body)
    score_variants(
        out / "in.vcf", fasta, out / "genes.parquet", MODELS[request.param],
        out / "variants.parquet", out / "variants.vcf.gz", exons=out / "exons.parquet",
        device="cpu", cluster=THREADED, progress=False,
    )  # fmt: skip
    return out, variants, request.param


def _line(ax, label: str):
    (line,) = [x for x in ax.get_lines() if x.get_label() == label]
    return np.asarray(line.get_xdata()), np.asarray(line.get_ydata(), dtype=np.float64)


@pytest.mark.parametrize("kind", ["snv_plus", "snv_both", "snv_minus", "deletion", "insertion"])
def test_plotted_maxima_equal_variants_parquet(results, kind):
    out, variants, convention = results
    text = variants[kind]
    stored = pd.read_parquet(out / "variants.parquet")
    pos = int(text.split(":")[1])
    stored = stored[(stored.pos == pos) & (stored.status == "ok")].set_index("gene_name")
    effects = variant_effects(out, text, model=MODELS[convention], device="cpu")
    assert sorted(e.row["gene_name"] for e in effects) == sorted(stored.index)
    if kind == "snv_both":
        assert {e.row["strand"] for e in effects} == {"+", "-"}
    for effect in effects:
        want = stored.loc[effect.row["gene_name"]]
        fig = draw_variant(effect)
        axes = {ax.get_label(): ax for ax in fig.axes}
        for channel, gain, loss in (("acceptor", "ag", "al"), ("donor", "dg", "dl")):
            x, delta = _line(axes["delta"], f"{channel} Δ")
            distance = 100 if convention == "sptransformer" else 50
            ref_len, alt_len = map(len, text.split(":")[2].split(">"))
            # the SpliceTransformer alignment pads REF for an insertion: more rows, the
            # inserted ones at the variant's position (0 offset); SpliceAI's keeps 2D + 1
            padded = max(0, alt_len - ref_len) if convention == "sptransformer" else 0
            assert len(x) == 2 * distance + 1 + padded
            assert x[distance] == pos and (x[distance : distance + padded + 1] == pos).all()
            np.testing.assert_allclose(delta.max(), want[f"ds_{gain}"], atol=2e-6)
            np.testing.assert_allclose(-delta.min(), want[f"ds_{loss}"], atol=2e-6)
            assert x[delta.argmax()] - pos == want[f"dp_{gain}"]
            assert x[delta.argmin()] - pos == want[f"dp_{loss}"]
            _, ref = _line(axes["probabilities"], f"{channel} REF")
            _, alt = _line(axes["probabilities"], f"{channel} ALT")
            np.testing.assert_allclose(alt - ref, delta, atol=1e-12)
        if convention == "sptransformer":
            (image,) = axes["tissues"].get_images()
            matrix = np.asarray(image.get_array())
            tissues = [t.get_text() for t in axes["tissues"].get_yticklabels()]
            assert len(tissues) == 15
            for tissue, row in zip(tissues, matrix, strict=True):
                np.testing.assert_allclose(row.max(), want[f"delta_{tissue}"], atol=2e-6)
            assert f"splice score {want['splice_score']:.2f}" in fig.texts[0].get_text()
        else:
            assert "tissues" not in axes


def test_one_picture_per_gene(results, tmp_path):
    out, variants, convention = results
    # the run's model source is a test factory: the CLI cannot load it, so call the function
    files = plot_variant(out, variants["snv_both"], tmp_path / "v.png", model=MODELS[convention])
    assert sorted(p.name for p in files) == ["v.GM.png", "v.GP.png"]
    assert all(p.stat().st_size > 10_000 for p in files)


def test_bad_input_is_one_line_error(results, tmp_path, caplog):
    out, variants, _ = results
    png = str(tmp_path / "x.png")
    cases = {
        "chr1:1011:A>G": "is not in",  # not scored in this run
        "chr1:1011": "is not a variant",
        "chr1:1010:Q>A": "is not a variant",
    }
    for text, message in cases.items():
        caplog.clear()
        assert main(["plot-variant", str(out), text, "-o", png]) == 1
        assert message in caplog.records[-1].getMessage()
        assert "\n" not in caplog.records[-1].getMessage()
    caplog.clear()
    assert main(["plot-variant", str(tmp_path), variants["snv_plus"], "-o", png]) == 1
    assert "run the variants stage" in caplog.records[-1].getMessage() or (
        "score variants first" in caplog.records[-1].getMessage()
    )
    assert not Path(png).exists()
    caplog.clear()
    assert main(["report", str(tmp_path), "-o", str(tmp_path / "r.html")]) == 1
    assert "score variants first" in caplog.records[-1].getMessage()


@pytest.mark.slow
def test_real_spliceai_weights_through_the_cli(tmp_path):
    """SpliceAI's published weights (the ``spliceai`` package), the model found from the run's
    provenance (no --model): the CLI writes the picture and its maxima equal variants.parquet."""
    pytest.importorskip("h5py")
    rng = np.random.default_rng(11)
    chr1 = "".join(rng.choice(list("ACGT"), 12_000))
    fasta = write_fasta(tmp_path / "g.fa", {"chr1": chr1})
    tx = 'gene_id "G"; gene_name "G"; gene_type "protein_coding"; transcript_id "G.1";'
    gtf = "".join(
        f"chr1\tT\t{kind}\t{s}\t{e}\t.\t-\t.\t{tx}\n"
        for kind, s, e in (("gene", 1000, 11000), ("transcript", 1000, 11000),
                           ("exon", 1000, 5990), ("exon", 6100, 11000))
    )  # fmt: skip
    (tmp_path / "g.gtf").write_text(gtf)
    select_genes(tmp_path / "g.gtf", fasta, tmp_path / "genes.parquet", tmp_path / "r.parquet",
                 gene_types=[], out_exons=tmp_path / "exons.parquet")  # fmt: skip
    pos = 5991
    text = f"chr1:{pos}:{chr1[pos - 1]}>{OTHER[chr1[pos - 1]]}"
    ref, alt = text.split(":")[2].split(">")
    (tmp_path / "in.vcf").write_text(HEADER + f"chr1\t{pos}\t.\t{ref}\t{alt}\t.\t.\t.\n")
    score_variants(tmp_path / "in.vcf", fasta, tmp_path / "genes.parquet", "spliceai",
                   tmp_path / "variants.parquet", tmp_path / "variants.vcf.gz",
                   exons=tmp_path / "exons.parquet", device="cpu", cluster=THREADED,
                   progress=False)  # fmt: skip
    assert main(["plot-variant", str(tmp_path), text, "-o", str(tmp_path / "v.png")]) == 0
    assert (tmp_path / "v.png").stat().st_size > 10_000
    (effect,) = variant_effects(tmp_path, text, device="cpu")
    want = pd.read_parquet(tmp_path / "variants.parquet").iloc[0]
    for channel, gain, loss in ((1, "ag", "al"), (2, "dg", "dl")):
        delta = effect.alt[:, channel].astype(np.float64) - effect.ref[:, channel]
        np.testing.assert_allclose(delta.max(), want[f"ds_{gain}"], atol=2e-6)
        np.testing.assert_allclose(-delta.min(), want[f"ds_{loss}"], atol=2e-6)
        assert effect.positions[delta.argmax()] - pos == want[f"dp_{gain}"]
