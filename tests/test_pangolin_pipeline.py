"""Pangolin through the real Snakemake workflow on the bundled chr19 example (two genes).

ATP5D (+) and C2CD4C (-) fit one 5000-nt tile each: two windows of 15,000 bases through
genes -> model -> tile -> predict -> merge -> tracks with ``model: pangolin:<weights>`` and
``output_dtype: float32``. ``scores/`` must equal the official network's outputs committed in
tests/data/pangolin_official.npz (two of its windows lie in these genes) and our model run
directly on windows cut from the FASTA with plain string operations; sites.parquet, the bigWigs,
``sptx query`` and ``sptx plot`` must show Pangolin's 8 channels.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pyfaidx
import pytest
import torch

from sptx_pipeline.accuracy import splice_sites
from sptx_pipeline.models import load_model
from sptx_pipeline.models.pangolin import PANGOLIN_CHANNELS
from sptx_pipeline.plot import plot_region
from tests.genome_fixtures import (
    EXAMPLE_FASTA,
    EXAMPLE_GTF,
    reference_tokens,
    reference_window,
    run_bundled_example,
)
from tests.test_pangolin import OFFICIAL, WEIGHTS

pytestmark = pytest.mark.slow
GENES = {"ATP5D": "+", "C2CD4C": "-"}
CHANNELS = list(PANGOLIN_CHANNELS)
P_SPLICE = [c for c in CHANNELS if c.endswith("_p_splice")]


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    assert WEIGHTS.is_dir(), f"Pangolin weights expected in {WEIGHTS}"
    base = tmp_path_factory.mktemp("pangolin")
    return run_bundled_example(
        base,
        f"model=pangolin:{WEIGHTS}",
        f"genes=[{','.join(GENES)}]",
        "gene_types=[]",
        "output_dtype=float32",
    )


@pytest.fixture(scope="module")
def scores(out) -> pd.DataFrame:
    frame = pd.read_parquet(out / "scores")
    strand = frame["strand"].astype(str).map({"plus": "+", "minus": "-"})
    return frame.assign(chrom=frame["chrom"].astype(str), strand=strand)


def _at(scores: pd.DataFrame, strand: str, pos: np.ndarray) -> np.ndarray:
    rows = scores[scores.strand == strand].set_index("pos").reindex(pos)
    assert not rows[CHANNELS].isna().any().any(), "positions missing from scores/"
    return rows[CHANNELS].to_numpy(np.float64)


def test_geometry_and_columns(out, scores):
    info = json.loads((out / "model.json").read_text())
    assert info["channels"] == CHANNELS and info["flank"] == 5000
    windows = pd.read_parquet(out / "windows.parquet")
    assert sorted(windows["strand"]) == ["+", "-"] and len(windows) == 2
    assert list(scores.columns[1:9]) == CHANNELS
    assert not scores.duplicated(["strand", "pos"]).any()
    genes = pd.read_parquet(out / "genes.parquet")
    for gene in genes.itertuples():  # each gene body, 1-based inclusive, on its strand
        pos = scores[scores.strand == gene.strand].pos
        assert pos.tolist() == list(range(gene.start, gene.end + 1)), gene.gene_name
    tracks = {p.name for p in (out / "tracks").glob("*.bw")}
    assert tracks == {f"{c}.{s}.bw" for c in CHANNELS for s in ("plus", "minus")}


def test_scores_equal_the_official_network(scores):
    """Windows 0 (ATP5D, +) and 1 (C2CD4C, -) of the official outputs, 200 positions each."""
    data = np.load(OFFICIAL)
    for w in (0, 1):
        start, strand = int(data["target_start"][w]), str(data["strand"][w])
        official = data["probabilities"][w].astype(np.float64)
        pos = np.arange(start, start + len(official)) + 1  # 1-based
        if strand == "-":
            official = official[::-1]  # minus-strand window order is descending position
        error = np.abs(_at(scores, strand, pos) - official).max()
        assert error <= 1e-5, (w, error)
        assert official.max() > 0.5


def test_scores_equal_our_model_on_windows_cut_from_the_fasta(scores):
    """ATP5D's third exon acceptor (+) and C2CD4C's first exon donor (-), 50 positions each."""
    seq = str(pyfaidx.Fasta(str(EXAMPLE_FASTA))["chr19"][:])
    cases = [(1244096 - 25, "+"), (409006 - 25, "-")]  # 1-based first positions
    tokens = [
        reference_tokens(reference_window(seq, first - 1 - 5000, first - 1 + 50 + 5000, strand))
        for first, strand in cases
    ]
    model = load_model(f"pangolin:{WEIGHTS}")
    with torch.no_grad():
        direct = model.postprocess(model(torch.tensor(tokens))).numpy().astype(np.float64)
    for (first, strand), got in zip(cases, direct, strict=True):
        want = got[::-1] if strand == "-" else got
        stored = _at(scores, strand, np.arange(first, first + 50))
        assert np.abs(stored - want).max() <= 1e-5
        assert stored[25, ::2].max() > 0.5  # the annotated site itself


def test_sites_are_splice_sites_scored_by_the_largest_p_splice(out, scores):
    sites = pd.read_parquet(out / "sites.parquet")
    assert list(sites.columns) == [
        *("chrom", "pos", "strand", "site_type", "score"),
        *CHANNELS,
        "gene_ids",
    ]
    assert set(sites.site_type) == {"splice"}
    both = sites.merge(scores, on=["strand", "pos"], suffixes=("", "_scores"))
    assert len(both) == len(sites)
    np.testing.assert_allclose(both.score, both[[f"{c}_scores" for c in P_SPLICE]].max(axis=1))
    expected = scores[scores[P_SPLICE].max(axis=1) >= 0.1]  # sites_min_score of the config
    assert len(sites) == len(expected)
    # every annotated site of the two genes' transcripts is a confident Pangolin site
    annotated = splice_sites(EXAMPLE_GTF)  # exon boundaries, the transcripts' ends left out
    in_genes = (annotated.strand == "-") & annotated.pos.between(405_438, 409_170)
    in_genes |= (annotated.strand == "+") & annotated.pos.between(1_241_745, 1_244_824)
    keys = annotated[in_genes][["strand", "pos"]].drop_duplicates()
    called = keys.merge(sites[sites.score >= 0.5], on=["strand", "pos"])
    print(f"{len(called)} of {len(keys)} annotated sites called at >= 0.5")
    assert len(called) == len(keys) > 0


def test_query_and_plot_show_pangolins_channels(out, scores, tmp_path):
    command = [sys.executable, "-m", "sptx_pipeline.cli", "query", str(out), "ATP5D"]
    result = subprocess.run(
        [*command, "--min-score", "0.5", "--format", "csv"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    got = pd.read_csv(io.StringIO(result.stdout))
    assert list(got.columns) == ["chrom", "pos", "strand", *CHANNELS]
    plus = scores[(scores.strand == "+") & scores.pos.between(1_241_745, 1_244_824)]
    want = plus[plus[P_SPLICE].max(axis=1) >= 0.5]
    assert got.pos.tolist() == want.pos.tolist() and len(got) > 0
    fig = plot_region(out, "ATP5D", tmp_path / "atp5d.png")
    axes = {ax.get_label(): ax for ax in fig.axes}
    assert list(axes) == ["scores +", "exons", "tissue usage", "colorbar"]
    lines = axes["scores +"].get_lines()
    assert [line.get_label() for line in lines] == P_SPLICE
    heatmap = np.asarray(axes["tissue usage"].get_images()[0].get_array())
    sites = pd.read_parquet(out / "sites.parquet")
    sites = sites[(sites.strand == "+") & sites.pos.between(1_241_745, 1_244_824)]
    assert heatmap.shape == (8, min(len(sites), 60))
    assert (tmp_path / "atp5d.png").stat().st_size > 10_000
