"""SpliceAI-10k: weight loading, contracts, numerics against numpy, and biology on real chr19."""

from __future__ import annotations

import importlib.util
import json
import shutil
import types
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from sptx_pipeline.accuracy import splice_sites, topk_accuracy, topk_table
from sptx_pipeline.models import load_model
from sptx_pipeline.models import spliceai as spliceai_module
from sptx_pipeline.models.spliceai import (
    SPLICEAI_CHANNELS,
    SPLICEAI_CHUNK_SIZE,
    SPLICEAI_FILES,
    SPLICEAI_FLANK,
    load_spliceai,
    spliceai_package_models,
)

ROOT = Path(__file__).resolve().parents[1]


def _validation_module(name: str) -> types.ModuleType:
    """A module of validation/ (scripts, not a package), imported from its path."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "validation" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


direct_scoring = _validation_module("direct_scoring")
read_genes, score_genes = direct_scoring.read_genes, direct_scoring.score_genes

FASTA = ROOT / "config/example/grch37_chr19_1-1500000.fa"
GTF = ROOT / "config/example/grch37_chr19_1-1500000.gtf"


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return load_model("spliceai")


@pytest.fixture(scope="module")
def weights_dir() -> Path:
    folder = spliceai_package_models()
    assert folder is not None, "the spliceai package (weights) is a test dependency"
    return folder


# --------------------------------------------------------------------------- loading


def test_load_from_directory_matches_package(tmp_path, weights_dir, model):
    for name in SPLICEAI_FILES:
        shutil.copy(weights_dir / name, tmp_path / name)
    local = load_model(f"spliceai:{tmp_path}")
    assert local.provenance["source"] == f"spliceai:{tmp_path}"
    assert local.provenance["sha256"] == model.provenance["sha256"]
    assert len(local.provenance["sha256"]) == 64
    assert len(local.nets) == 5 and not local.training
    tokens = torch.randint(0, 5, (1, 2 * SPLICEAI_FLANK + 9))
    with torch.no_grad():
        assert torch.equal(local(tokens), model(tokens))


def test_missing_files_name_the_fix(tmp_path, weights_dir, monkeypatch):
    for name in SPLICEAI_FILES[:4]:
        shutil.copy(weights_dir / name, tmp_path / name)
    with pytest.raises(FileNotFoundError, match=r"spliceai5\.h5.*pip install --no-deps spliceai"):
        load_spliceai(tmp_path)
    monkeypatch.setattr(spliceai_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps spliceai.*spliceai:/path"):
        load_model("spliceai")


def test_not_a_spliceai_file_is_rejected(tmp_path, weights_dir):
    for name in SPLICEAI_FILES:
        with h5py.File(tmp_path / name, "w") as handle:
            handle.attrs["model_config"] = json.dumps(
                {"class_name": "Model", "config": {"layers": [_layer("InputLayer", "in", [])]}}
            )
    with pytest.raises(ValueError, match="not a SpliceAI model"):
        load_spliceai(tmp_path)


def _layer(kind: str, name: str, inputs: list[str]) -> dict:
    return {
        "class_name": kind,
        "name": name,
        "config": {},
        "inbound_nodes": [[[i] for i in inputs]],
    }


# --------------------------------------------------------------------------- contracts


def test_constants_and_shapes(model):
    assert (SPLICEAI_FLANK, SPLICEAI_CHUNK_SIZE) == (5000, 5000)
    assert SPLICEAI_CHANNELS == ("no_splice", "acceptor", "donor")
    assert model.flank == SPLICEAI_FLANK and model.channels == SPLICEAI_CHANNELS
    assert model.default_chunk_size == SPLICEAI_CHUNK_SIZE
    assert [net.receptive for net in model.nets] == [(5000, 5000)] * 5
    tokens = torch.randint(0, 5, (2, 2 * SPLICEAI_FLANK + 37))
    with torch.no_grad():
        probs = model.postprocess(model(tokens))
    assert probs.shape == (2, 37, 3)
    assert torch.allclose(probs.sum(-1), torch.ones(2, 37), atol=1e-6)
    with pytest.raises(ValueError, match="exceed"):
        model(torch.zeros(1, 2 * SPLICEAI_FLANK, dtype=torch.long))
    with pytest.raises(ValueError, match="0..4"):
        model(torch.full((1, 2 * SPLICEAI_FLANK + 1), 5))


def test_output_depends_only_on_the_receptive_field(model):
    """Position i sees tokens [i, i + 2 * flank]: so windows can be tiled freely."""
    gen = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, 4, (1, 2 * SPLICEAI_FLANK + 40), generator=gen)

    def mutate(index: int) -> torch.Tensor:
        changed = tokens.clone()
        changed[0, index] = (changed[0, index] + 2) % 4
        return model(changed)[0]

    with torch.no_grad():
        whole = model(tokens)[0]
        part = model(tokens[:, 15 : 15 + 2 * SPLICEAI_FLANK + 10])[0]
        beyond = mutate(2 * SPLICEAI_FLANK + 21)  # out of reach for outputs i <= 20
        centre = mutate(SPLICEAI_FLANK + 20)  # the base at output 20 itself
    assert torch.allclose(part, whole[15:25], atol=1e-5)
    assert torch.equal(beyond[:21], whole[:21])
    assert (centre[20] - whole[20]).abs().max() > 1e-3


# --------------------------------------------------------------------------- numpy reference


def _numpy_keras_forward(path: Path, onehot: np.ndarray) -> np.ndarray:
    """Run a Keras HDF5 functional model in numpy, layer by layer as Keras does.

    Written from Keras semantics, not from our module: 'same' zero padding (extra on the right
    for even totals), dilated Conv1D as a sum of shifted matmuls, BatchNormalization with the
    stored moving statistics and epsilon, Add, Cropping1D, ReLU and softmax.
    """
    with h5py.File(path, "r") as handle:
        layers = json.loads(handle.attrs["model_config"])["config"]["layers"]
        weights = {}
        for layer in layers:
            group = handle["model_weights"][layer["name"]]
            weights[layer["name"]] = {
                n.decode().split("/")[-1].split(":")[0]: np.asarray(group[n.decode()])
                for n in group.attrs["weight_names"]
            }
    values = {}
    pending = list(layers)
    while pending:  # topological execution over the stored graph
        for layer in list(pending):
            inputs = (
                [node[0] for node in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else []
            )
            if any(i not in values for i in inputs):
                continue
            pending.remove(layer)
            kind, cfg, w = layer["class_name"], layer["config"], weights[layer["name"]]
            xs = [values[i] for i in inputs]
            if kind == "InputLayer":
                out = onehot.astype(np.float64)
            elif kind == "Conv1D":
                out = _np_conv1d(xs[0], w["kernel"], w["bias"], cfg["dilation_rate"][0], cfg)
            elif kind == "BatchNormalization":
                scale = w["gamma"] / np.sqrt(w["moving_variance"] + cfg["epsilon"])
                out = (xs[0] - w["moving_mean"]) * scale + w["beta"]
            elif kind == "Activation":
                out = _np_activation(xs[0], cfg["activation"])
            elif kind == "Add":
                out = np.sum(xs, axis=0)
            elif kind == "Cropping1D":
                left, right = cfg["cropping"]
                out = xs[0][left : xs[0].shape[0] - right]
            else:
                raise AssertionError(f"unexpected layer {kind}")
            values[layer["name"]] = out
    return values[layers[-1]["name"]]


def _np_conv1d(x, kernel, bias, dilation, cfg):
    k = kernel.shape[0]
    if cfg["padding"] == "same":
        total = (k - 1) * dilation
        x = np.pad(x, ((total // 2, total - total // 2), (0, 0)))
    length = x.shape[0] - (k - 1) * dilation
    out = sum(x[j * dilation : j * dilation + length] @ kernel[j] for j in range(k)) + bias
    return _np_activation(out, cfg["activation"])


def _np_activation(x, name):
    if name == "relu":
        return np.maximum(x, 0)
    if name == "softmax":
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)
    assert name == "linear"
    return x


@pytest.mark.slow
def test_forward_matches_numpy_keras_graph(model, weights_dir):
    """Real weights, real sequence with Ns, vs. an independent numpy run of the Keras graphs."""
    import pyfaidx

    target = 24
    seq = pyfaidx.Fasta(str(FASTA))["chr19"][1105000 - 5000 : 1105000 + target + 5000].seq
    seq = "N" * 700 + seq[700:]  # exercise N = all-zero at the window edge
    tokens = np.array(["ACGTN".index(b) for b in seq.upper()])
    onehot = np.eye(5)[tokens][:, :4]
    reference = np.mean([_numpy_keras_forward(weights_dir / f, onehot) for f in SPLICEAI_FILES], 0)
    with torch.no_grad():
        ours = model.postprocess(model(torch.from_numpy(tokens)[None]))[0].numpy()
    assert reference.shape == ours.shape == (target, 3)
    assert np.abs(ours - reference).max() < 1e-5
    assert reference[:, 1:].max() > 0.5  # the window holds GPX4's exon 2 acceptor region


# --------------------------------------------------------------------------- accuracy helpers


def test_splice_sites_are_inner_exon_boundaries(tmp_path):
    gtf = tmp_path / "toy.gtf"
    lines = []
    for strand, tid in (("+", "P-1"), ("-", "M-1")):
        for start, end in ((101, 200), (301, 400), (501, 600)):
            attrs = f'gene_id "{tid[0]}"; transcript_id "{tid}";'
            lines.append(f"chr1\tt\texon\t{start}\t{end}\t.\t{strand}\t.\t{attrs}")
    gtf.write_text("\n".join(lines) + "\n")
    sites = splice_sites(gtf).sort_values(["strand", "site_type", "pos"])
    got = {(r.strand, r.site_type): list(sites.pos[(sites.strand == r.strand) &
           (sites.site_type == r.site_type)]) for r in sites.itertuples()}  # fmt: skip
    assert got == {
        ("+", "acceptor"): [301, 501],
        ("+", "donor"): [200, 400],
        ("-", "acceptor"): [200, 400],
        ("-", "donor"): [301, 501],
    }


def test_topk_accuracy_definition():
    scores = np.array([0.9, 0.1, 0.8, 0.7, 0.2])
    assert topk_accuracy(scores, np.array([1, 0, 1, 0, 0])) == 1.0
    assert topk_accuracy(scores, np.array([1, 1, 0, 0, 0])) == 0.5
    assert topk_accuracy(scores, np.array([0, 1, 0, 0, 1])) == 0.0
    with pytest.raises(ValueError, match="no annotated sites"):
        topk_accuracy(scores, np.zeros(5))


# --------------------------------------------------------------------------- biology


@pytest.mark.slow
def test_topk_accuracy_on_real_genes_both_strands(model):
    """GPX4, STK11 (+) and CBARP, GAMT (-), scored from windows cut with pyfaidx."""
    genes = read_genes(str(GTF))
    genes = genes[genes["gene_name"].isin(["GPX4", "STK11", "CBARP", "GAMT"])]
    assert sorted(genes["strand"]) == ["+", "+", "-", "-"]
    sites = splice_sites(GTF)
    sites = sites[sites["transcript_id"].str.rsplit("-", n=1).str[0].isin(genes["gene_name"])]
    scores = score_genes(model, str(FASTA), genes, SPLICEAI_CHUNK_SIZE)
    assert len(scores) == (genes["end"] - genes["start"] + 1).sum() - _overlap(genes)
    accuracy = topk_table(scores, sites)
    print(f"top-k accuracy, 4 genes: {accuracy}")
    assert accuracy["acceptor"] >= 0.9 and accuracy["donor"] >= 0.9
    # Negative control: one base off, the same scores miss nearly every site.
    shifted = topk_table(scores, sites.assign(pos=sites["pos"] + 1))
    assert shifted["acceptor"] < 0.2 and shifted["donor"] < 0.2
    # Per strand, so a strand flip cannot hide behind the other strand's sites.
    for strand in "+-":
        per = topk_table(scores[scores.strand == strand], sites[sites.strand == strand])
        assert min(per.values()) >= 0.85, (strand, per)


def _overlap(genes: pd.DataFrame) -> int:
    """Positions shared by same-strand genes (scored once)."""
    total = 0
    for _, group in genes.groupby("strand"):
        spans = sorted(zip(group["start"], group["end"], strict=True))
        for (_, e1), (s2, _) in zip(spans, spans[1:], strict=False):
            total += max(0, e1 - s2 + 1)
    return total
