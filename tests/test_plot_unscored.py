"""``sptx plot``: genes of the GTF that the run did not select (no scores) are drawn apart."""

from __future__ import annotations

import pytest
from matplotlib.colors import to_rgba
from matplotlib.patches import Rectangle

from sptx_pipeline.plot import plot_region
from tests.results_fixtures import build_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return build_run(tmp_path_factory.mktemp("run"))


def test_genes_not_scored_are_pale_and_labelled(run, tmp_path):
    """Before: an unselected gene's exons were drawn like the scored genes' exons."""
    gtf = tmp_path / "more.gtf"
    attrs = 'gene_id "EXTRA"; transcript_id "TEXTRA"; gene_name "EXTRA"; gene_type "lncRNA";'
    extra = [f"chrA\tsynthetic\texon\t{s}\t{e}\t.\t+\t.\t{attrs}\n" for s, e in ((300, 320),)]
    gtf.write_text((run.outdir / "genes.gtf").read_text() + "".join(extra))
    fig = plot_region(run.outdir, "chrA:100-700", None, gtf=gtf, both_strands=True)
    ax = next(a for a in fig.axes if a.get_label() == "exons")
    boxes = [p for p in ax.patches if isinstance(p, Rectangle)]
    pale = [b for b in boxes if b.get_facecolor() == to_rgba("0.75")]
    dark = [b for b in boxes if b.get_facecolor() == to_rgba("0.2")]
    assert [(b.get_x(), b.get_width()) for b in pale] == [(300, 21)]
    assert len(dark) == len(boxes) - 1 > 0
    labels = [t.get_text() for t in ax.texts]
    assert "EXTRA (+), not scored" in labels
    assert sum("not scored" in t for t in labels) == 1
