"""plot_region: the figure's axes, their data and ranges, exons from the run's GTF, the heatmap."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from matplotlib.patches import Rectangle

from sptx_pipeline.plot import plot_region
from sptx_pipeline.query import query
from tests.results_fixtures import GENES, SPLICEAI_CHANNELS, build_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return build_run(tmp_path_factory.mktemp("run"))


def _axes(fig):
    return {ax.get_label(): ax for ax in fig.axes}


def _n_exons(chrom, start, end, strands):
    n = 0
    for _, _, gene_chrom, gs, ge, strand in GENES:
        if strand in strands and gene_chrom == chrom:
            exons = {(gs, min(ge, gs + 29)), (max(gs, ge - 29), ge)}
            n += sum(1 for s, e in exons if e >= start and s <= end)
    return n


def test_both_strands_with_exons_and_heatmap(run, tmp_path):
    out = tmp_path / "region.png"
    fig = plot_region(run.outdir, "chrA:100-700", out, both_strands=True)
    axes = _axes(fig)
    assert list(axes) == ["scores +", "scores -", "exons", "tissue usage", "colorbar"]
    for strand in "+-":
        ax = axes[f"scores {strand}"]
        assert ax.get_xlim() == (100, 700) and ax.get_ylim() == (0, 1.05)
        want = query(run.outdir, "chrA:100-700", strand=strand)
        acceptor, donor = ax.get_lines()
        np.testing.assert_array_equal(acceptor.get_xdata(), want.pos)
        np.testing.assert_array_equal(acceptor.get_ydata(), want.acceptor)
        np.testing.assert_array_equal(donor.get_ydata(), want.donor)
    # exons come from the GTF recorded in the run's provenance (no gtf argument)
    boxes = [p for p in axes["exons"].patches if isinstance(p, Rectangle)]
    assert len(boxes) == _n_exons("chrA", 100, 700, "+-") > 0
    sites = pd.read_parquet(run.sites)
    sites = sites[(sites.chrom == "chrA") & sites.pos.between(100, 700)]
    sites = sites.sort_values(["pos", "site_type"])
    image = axes["tissue usage"].get_images()[0].get_array()
    assert len(sites) > 60 and image.shape == (15, 60)  # capped at the 60 strongest sites
    strongest = sites.nlargest(60, "score").sort_values(["pos", "site_type"])
    np.testing.assert_array_equal(np.asarray(image), strongest[run.channels[3:]].to_numpy().T)
    png = matplotlib.image.imread(out)
    assert png.ndim == 3 and png.shape[0] > 300


def test_gene_region_uses_its_strand(run, tmp_path):
    fig = plot_region(run.outdir, "GAMMA", tmp_path / "gamma.png", gtf=run.outdir / "genes.gtf")
    axes = _axes(fig)
    sites = pd.read_parquet(run.sites)
    sites = sites[(sites.chrom == "chrA") & sites.pos.between(1001, 1100) & (sites.strand == "+")]
    sites = sites.sort_values(["pos", "site_type"])
    image = np.asarray(axes["tissue usage"].get_images()[0].get_array())
    assert 0 < len(sites) <= 60
    np.testing.assert_array_equal(image, sites[run.channels[3:]].to_numpy().T)
    fig = plot_region(run.outdir, "BETA", tmp_path / "beta.png", gtf=run.outdir / "genes.gtf")
    axes = _axes(fig)
    assert "scores -" not in axes
    assert axes["scores +"].get_xlim() == (200, 650)
    assert axes["exons"].get_xlim() == (200, 650)
    boxes = [p for p in axes["exons"].patches if isinstance(p, Rectangle)]
    assert len(boxes) == _n_exons("chrA", 200, 650, "+")


def test_strand_with_data_is_chosen_and_missing_gtf(run, tmp_path):
    fig = plot_region(run.outdir, "chrB:1-1250", None, gtf=None)
    assert "scores -" in _axes(fig) and "scores +" not in _axes(fig)
    fig = plot_region(run.outdir, "chrB", None)  # a whole contig: up to its last scored base
    assert _axes(fig)["scores -"].get_xlim() == (1, 1163)
    with pytest.raises(FileNotFoundError, match="GTF"):
        plot_region(run.outdir, "chrB:1-1250", None, gtf=tmp_path / "missing.gtf")


def test_no_tissue_channels_no_heatmap(tmp_path):
    run = build_run(tmp_path, channels=SPLICEAI_CHANNELS)
    fig = plot_region(run.outdir, "chrA:1-1100", tmp_path / "x.png", both_strands=True)
    assert list(_axes(fig)) == ["scores +", "scores -", "exons"]
    assert (tmp_path / "x.png").stat().st_size > 0


def test_cli_plot(run, tmp_path):
    from sptx_pipeline.cli import main

    out = tmp_path / "cli.png"
    assert (
        main(["plot", str(run.outdir), "chrA:1,001-1,100", "-o", str(out), "--both-strands"]) == 0
    )
    assert matplotlib.image.imread(out).shape[0] > 300
    assert main(["plot", str(run.outdir), "NOPE", "-o", str(out)]) == 1
