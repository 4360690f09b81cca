"""SpliceAI through the real Snakemake workflow on real chr19 genes: biology and model-agnosticism.

Five genes on both strands of GRCh37 chr19 (ten windows of T=5000 with 5000-nt flanks) run
through genes -> model -> tile -> predict -> merge -> tracks with ``model: spliceai``; the top-k
accuracy of ``scores/`` against the GTF's annotated splice sites must be that of a real splice
model, and collapse when the sites are shifted by one base (an off-by-one or strand flip in the
tile grid or merge would do the same). The whole region is scored by validation/topk_pipeline.py.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import zarr

from sptx_pipeline.accuracy import splice_sites, topk_table
from sptx_pipeline.models.spliceai import SPLICEAI_CHANNELS, SPLICEAI_CHUNK_SIZE, SPLICEAI_FLANK
from tests.genome_fixtures import EXAMPLE_GTF, run_bundled_example

pytestmark = pytest.mark.slow  # SpliceAI's real weights through the whole workflow (~30 s)

GENES = {"GPX4": "+", "ATP5D": "+", "RPS15": "+", "GAMT": "-", "CBARP": "-"}
STRANDS = {"plus": "+", "minus": "-"}


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    """The bundled config with SpliceAI and the genes above (default output_dtype float16)."""
    base = tmp_path_factory.mktemp("spliceai")
    return run_bundled_example(
        base,
        "model=spliceai",
        f"genes=[{','.join(GENES)}]",
        "gene_types=[]",
    )


@pytest.fixture(scope="module")
def scores(out) -> pd.DataFrame:
    frame = pd.read_parquet(out / "scores")
    return frame.assign(
        chrom=frame["chrom"].astype(str), strand=frame["strand"].astype(str).map(STRANDS)
    )


@pytest.fixture(scope="module")
def sites() -> pd.DataFrame:
    """Annotated sites of the selected genes' transcripts."""
    frame = splice_sites(EXAMPLE_GTF)
    return frame[frame["transcript_id"].isin(_transcripts(set(GENES)))]


def _transcripts(names: set[str]) -> set[str]:
    import pyranges as pr

    gtf = pr.read_gtf(str(EXAMPLE_GTF), as_df=True)
    rows = gtf[(gtf["Feature"] == "transcript") & gtf["gene_name"].isin(names)]
    return set(rows["transcript_id"].astype(str))


def test_geometry_comes_from_the_model(out):
    info = json.loads((out / "model.json").read_text())
    assert info["source"] == "spliceai" and info["channels"] == list(SPLICEAI_CHANNELS)
    assert info["flank"] == SPLICEAI_FLANK == 5000
    assert info["default_chunk_size"] == SPLICEAI_CHUNK_SIZE == 5000
    windows = pd.read_parquet(out / "windows.parquet")
    assert ((windows["target_end"] - windows["target_start"]) == 5000).all()
    assert (windows["target_start"] % 5000 == 0).all()
    genes = pd.read_parquet(out / "genes.parquet")
    expected = {
        (gene.strand, k)
        for gene in genes.itertuples()
        for k in range((gene.start - 1) // 5000, (gene.end - 1) // 5000 + 1)
    }  # the fixed 5000-nt tile grid over each gene body (1-based inclusive)
    assert set(zip(windows["strand"], windows["tile"], strict=True)) == expected
    assert len(windows) == len(expected) == 10
    tokens = zarr.open_group(str(out / "windows.zarr"), mode="r")["tokens"]
    assert tokens.shape == (len(windows), 5000 + 2 * 5000)
    probabilities = zarr.open_group(str(out / "predictions.zarr"), mode="r")["probabilities"]
    assert probabilities.shape == (len(windows), 5000, 3)


def test_scores_have_exactly_the_splice_columns(out, scores):
    for path in (out / "scores").rglob("*.parquet"):
        assert pq.read_schema(path).names == ["pos", *SPLICEAI_CHANNELS], path
    genes = pd.read_parquet(out / "genes.parquet")
    assert dict(zip(genes["gene_name"], genes["strand"], strict=True)) == GENES
    assert not scores.duplicated(["chrom", "strand", "pos"]).any()
    total = scores[list(SPLICEAI_CHANNELS)].to_numpy(np.float64).sum(axis=1)
    assert np.abs(total - 1).max() < 3e-3  # softmax, stored as float16
    sites = pd.read_parquet(out / "sites.parquet")
    assert list(sites.columns) == ["chrom", "pos", "strand", "site_type", "score", "gene_ids"]
    tracks = {path.name for path in (out / "tracks").glob("*.bw")}
    assert tracks == {f"{c}.{s}.bw" for c in SPLICEAI_CHANNELS for s in ("plus", "minus")}


def test_topk_accuracy_on_annotated_sites(scores, sites):
    assert set(sites["strand"]) == {"+", "-"}
    accuracy = topk_table(scores, sites)
    print("top-k", accuracy)
    assert accuracy["acceptor"] >= 0.9 and accuracy["donor"] >= 0.9, accuracy


@pytest.mark.parametrize("shift", [-1, 1])
def test_sites_shifted_by_one_base_score_far_lower(scores, sites, shift):
    shifted = topk_table(scores, sites.assign(pos=sites["pos"] + shift))
    assert shifted["acceptor"] <= 0.2 and shifted["donor"] <= 0.2, shifted


def test_predicted_sites_are_the_annotated_ones(out, sites):
    """sites.parquet (merge's thresholded calls) finds the annotated sites on their strands."""
    called = pd.read_parquet(out / "sites.parquet").query("score >= 0.5")
    called = called.assign(chrom=called["chrom"].astype(str))
    keys = ["chrom", "strand", "pos", "site_type"]
    annotated = sites[keys].drop_duplicates()
    hits = called[keys].merge(annotated, on=keys)
    assert len(hits) >= 0.9 * len(annotated)  # measured: all 52
    # the GTF has one canonical transcript per gene; SpliceAI also calls sites of other
    # isoforms, so not every confident call is annotated (measured: 52 of 69)
    assert len(hits) >= 0.6 * len(called)
