"""Pangolin: the model against the official network's outputs, sources, sites and errors.

The weights are the published ``final.<replica>.<head>.3.v2`` files in ``../shared/data/pangolin``
(next to the repository; CI has it). ``tests/data/pangolin_official.npz`` holds the official
network's per-position outputs on five windows of the bundled chr19 region, written by
``validation/make_pangolin_parity.py`` (official code not in this repository).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sptx_pipeline.errors import CheckpointError, InputError, MissingInputError
from sptx_pipeline.merge import SiteFinder
from sptx_pipeline.models import describe_model, load_model, local_model_files, parse_source
from sptx_pipeline.models.pangolin import (
    PANGOLIN_CHANNELS,
    PANGOLIN_FILES,
    Pangolin,
    load_pangolin,
    read_pangolin,
)
from sptx_pipeline.variants import resolve_convention
from tests.genome_fixtures import EXAMPLE_FASTA, REPO, reference_tokens, reference_window

# ../shared next to the repository (CI); SPTX_PANGOLIN_WEIGHTS for a checkout elsewhere
WEIGHTS = Path(os.environ.get("SPTX_PANGOLIN_WEIGHTS", REPO.parent / "shared/data/pangolin"))
OFFICIAL = REPO / "tests" / "data" / "pangolin_official.npz"


@pytest.fixture(scope="module")
def weights() -> str:
    """The weights folder; a missing one fails (CI has it), never skips."""
    assert (WEIGHTS / PANGOLIN_FILES[0]).is_file(), f"Pangolin weights expected in {WEIGHTS}"
    return str(WEIGHTS)


def test_source_parsing_and_geometry():
    assert parse_source("pangolin") == ("pangolin", None)
    assert parse_source("pangolin:/w") == ("pangolin", "/w")
    assert parse_source("pangolinish")[0] == "sptransformer"  # not a pangolin source
    info = describe_model("pangolin:/nowhere")  # geometry without reading weights
    assert info == {
        "flank": 5000,
        "channels": [
            *("heart_p_splice", "heart_usage", "liver_p_splice", "liver_usage"),
            *("brain_p_splice", "brain_usage", "testis_p_splice", "testis_usage"),
        ],
        "default_chunk_size": 5000,
    }
    assert len(PANGOLIN_FILES) == 24 and "final.3.7.3.v2" in PANGOLIN_FILES
    assert local_model_files(f"pangolin:{WEIGHTS}") == [str(WEIGHTS)]


def test_missing_weights_are_one_line_errors(tmp_path, weights):
    with pytest.raises(MissingInputError, match=r"final\.1\.0\.3\.v2.*and 21 more.*tkzeng"):
        load_model(f"pangolin:{tmp_path}")
    (tmp_path / "final.1.0.3.v2").write_bytes(b"not a state dict")
    with pytest.raises(CheckpointError, match="not a PyTorch state dict"):
        read_pangolin(tmp_path / "final.1.0.3.v2", 0)
    spliceai_like = torch.load(WEIGHTS / "final.1.0.3.v2", map_location="cpu", weights_only=True)
    del spliceai_like["conv_last1.weight"]
    torch.save(spliceai_like, tmp_path / "final.1.0.3.v2")
    with pytest.raises(CheckpointError, match="conv_last1.weight"):
        read_pangolin(tmp_path / "final.1.0.3.v2", 0)


def test_default_source_without_the_package_says_where_to_get_weights(monkeypatch):
    import sptx_pipeline.models.pangolin as module

    monkeypatch.setattr(module, "pangolin_package_models", lambda: None)
    with pytest.raises(MissingInputError, match="github.com/tkzeng/Pangolin"):
        load_pangolin()


def test_postprocess_gives_back_the_averaged_probabilities():
    """logits = log p - log(1 - p) of the replica mean: a sigmoid on every channel (the generic
    post-processing would softmax the first three)."""
    p = torch.tensor([[[1e-7, 0.5, 0.999, 0.3, 1e-4, 0.9, 0.02, 0.7]]])
    assert torch.allclose(Pangolin.postprocess(torch.log(p) - torch.log1p(-p)), p, rtol=1e-5)


@pytest.mark.slow
def test_parity_with_the_official_network(weights):
    """Every channel within 1e-5 of the official network's replica mean (5 windows: both
    strands, real flanks, the contig's leading N run, N padding past the contig end)."""
    data = np.load(OFFICIAL)
    assert list(data["channels"]) == list(PANGOLIN_CHANNELS)
    flank, target = int(data["flank"]), data["probabilities"].shape[1]
    seq = str(next(iter(__import__("pyfaidx").Fasta(str(EXAMPLE_FASTA)).values()))[:])
    tokens = [
        reference_tokens(reference_window(seq, s - flank, s + target + flank, strand))
        for s, strand in zip(data["target_start"], data["strand"], strict=True)
    ]
    model = load_model(f"pangolin:{weights}")
    assert model.provenance["files"] == list(PANGOLIN_FILES)
    with torch.no_grad():
        got = model.postprocess(model(torch.tensor(tokens))).numpy()
    error = np.abs(got - data["probabilities"]).max(axis=(0, 1))
    print("max abs error per channel", dict(zip(PANGOLIN_CHANNELS, error.tolist(), strict=True)))
    assert error.max() <= 1e-5, error
    assert data["probabilities"][:2].max() > 0.5  # the windows hold real splice sites


def test_sites_are_scored_by_the_largest_p_splice():
    """Pangolin's sites: type ``splice``, score = max P(splice) over tissues, all 8 channels."""
    channels = list(PANGOLIN_CHANNELS)
    genes = pd.DataFrame(
        {"chrom": ["1"], "start": [1], "end": [100], "strand": ["+"], "gene_id": ["G"]}
    )
    finder = SiteFinder(channels, genes, min_score=0.5)
    values = np.zeros((4, 8))
    values[1, 4] = 0.6  # brain P(splice)
    values[2, [0, 2]] = 0.7, 0.9  # heart and liver P(splice)
    values[3, 1] = 0.95  # heart usage alone does not make a site
    rows = np.column_stack([np.array([10, 20, 30, 40]), values])
    table = finder.table("1", "+", rows).to_pandas()
    assert list(table.pos) == [20, 30]
    assert list(table.site_type) == ["splice", "splice"]
    assert table.score.tolist() == pytest.approx([0.6, 0.9])
    assert list(table.columns[5:-1]) == channels
    assert table.liver_p_splice.tolist() == pytest.approx([0.0, 0.9])
    with pytest.raises(InputError, match="p_splice"):
        SiteFinder(["heart_usage"], genes, min_score=0.5)


def test_variant_scoring_refuses_pangolin_channels_clearly():
    with pytest.raises(InputError, match="Pangolin's variant convention is not implemented"):
        resolve_convention("auto", PANGOLIN_CHANNELS)
