"""Parity of our SpTransformer with multimolecule's (the reference), in float32.

- N flanks: our model on ``N*F + x + N*F`` equals ``SpTransformerModel(x)``;
- real flanks: our model on a whole window equals multimolecule's own submodules composed on
  the un-padded window (what the original does; multimolecule's model always pads).
Full size (the published geometry) for T = 1000 and 201, plus two tiny configs.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from sptx_pipeline.models import load_model, postprocess
from tests.model_fixtures import (
    TINY,
    TINY_ONE_ENCODER,
    mm_model,
    mm_real_flank_logits,
    n_flanked,
    random_tokens,
    to_original_state_dict,
)

TOLERANCE = 1e-4


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """Published geometry, random weights: (multimolecule model, ours loaded from its directory)."""
    mm = mm_model({}, seed=3)
    directory = tmp_path_factory.mktemp("full")
    mm.save_pretrained(directory)
    return mm, load_model(str(directory))


@pytest.mark.slow
@pytest.mark.parametrize("target", [1000, 201])
def test_full_size_n_flanks_match_multimolecule(full, target):
    mm, ours = full
    x = random_tokens(1, target, seed=target)
    with torch.inference_mode():
        ref = mm(x).logits
        out = ours(n_flanked(x, 4000))
    assert out.shape == (1, target, 18)
    assert ref.abs().max() > 0.5  # the comparison is not between near-zero outputs
    assert max_diff(out, ref) <= TOLERANCE


@pytest.mark.slow
def test_full_size_real_flanks_match_composed_submodules(full):
    mm, ours = full
    window = random_tokens(1, 1000 + 8000, seed=7)
    with torch.inference_mode():
        ref = mm_real_flank_logits(mm, window)
        out = ours(window)
        n_out = ours(n_flanked(window[:, 4000:-4000], 4000))
    assert max_diff(out, ref) <= TOLERANCE
    # real flanks matter: the same target with N flanks scores differently
    assert max_diff(out, n_out) > 1e-2


@pytest.mark.slow
def test_direct_convolutions_match_too(full):
    """The direct convolution (the GPU path) gives the same logits as the default FFT one."""
    mm, ours = full
    x = random_tokens(1, 201, seed=201)
    with torch.inference_mode():
        ref = mm(x).logits
        assert ours.conv_method == "auto"
        fft = ours(n_flanked(x, 4000))
        ours.conv_method = "direct"
        try:
            direct = ours(n_flanked(x, 4000))
        finally:
            ours.conv_method = "auto"
    assert max_diff(direct, ref) <= TOLERANCE
    assert 0 < max_diff(direct, fft) <= TOLERANCE  # two different algorithms, same numbers


@pytest.mark.slow
def test_original_checkpoint_gives_the_same_outputs(full, tmp_path):
    """Both position-table namings load to exactly our weights and reproduce multimolecule."""
    mm, ours = full
    reference = ours.state_dict()
    models = []
    for legacy in (True, False):
        path = tmp_path / f"SpTransformer_pytorch_{legacy}.ckpt"
        torch.save({"state_dict": to_original_state_dict(mm, legacy)}, path)
        model = load_model(str(path))
        assert model.flank == 4000 and model.max_seq_len == 8192
        assert model.provenance["source"] == str(path)
        for key, value in model.state_dict().items():
            assert torch.equal(value, reference[key]), key
        models.append(model)
    x = random_tokens(1, 201, seed=11)
    with torch.inference_mode():
        assert max_diff(models[0](n_flanked(x, 4000)), mm(x).logits) <= TOLERANCE


TINY_CASES = [
    (TINY, 37),  # odd window
    (TINY, 64),  # target == max_seq_len
    (TINY, 100),  # target > max_seq_len: output padded with zeros as in the original
    (TINY, 1),
    (TINY_ONE_ENCODER, 21),  # odd window, one encoder, 4 tissues, more local heads
    (TINY_ONE_ENCODER, 60),
]


@pytest.mark.parametrize("method", ["direct", "fft"])
@pytest.mark.parametrize(("config", "target"), TINY_CASES)
def test_tiny_configs_match_multimolecule(config, target, method, tmp_path):
    mm = mm_model(config, seed=target)
    mm.save_pretrained(tmp_path)
    ours = load_model(str(tmp_path))
    ours.conv_method = method
    flank = config["context"]
    x = random_tokens(3, target, seed=1)
    window = random_tokens(3, target + 2 * flank, seed=2)
    with torch.inference_mode():
        assert max_diff(ours(n_flanked(x, flank)), mm(x).logits) <= TOLERANCE
        assert max_diff(ours(window), mm_real_flank_logits(mm, window)) <= TOLERANCE


@pytest.mark.parametrize("method", ["direct", "fft"])
def test_batch_rows_are_independent(method, tmp_path):
    mm = mm_model(TINY)
    mm.save_pretrained(tmp_path)
    ours = load_model(str(tmp_path))
    ours.conv_method = method
    windows = random_tokens(6, 50 + 120, seed=5)  # more than one FFT group
    with torch.inference_mode():
        batched = ours(windows)
        single = torch.cat([ours(windows[i : i + 1]) for i in range(6)])
    assert max_diff(batched, single) <= 1e-5


def test_conv_method_is_validated(tmp_path):
    mm_model(TINY).save_pretrained(tmp_path)
    ours = load_model(str(tmp_path))
    with pytest.raises(ValueError, match="unknown convolution method"):
        ours.conv_method = "winograd"


def test_postprocess_is_softmax_then_sigmoid():
    logits = torch.tensor([[[2.0, 0.0, -1.0, 0.0, 3.0]]])
    probs = postprocess(logits)
    e = torch.tensor([2.0, 0.0, -1.0]).exp()
    assert torch.allclose(probs[0, 0, :3], e / e.sum())
    assert torch.allclose(probs[0, 0, 3:], torch.tensor([0.5, 1 / (1 + torch.e**-3)]))


def test_whole_batch_layers_equal_window_by_window(tmp_path, monkeypatch):
    """On a CPU the encoder runs one window at a time; a GPU runs the layers on whole batches.

    The layers must give the same rows either way, with the MLP split into row blocks that
    cross window boundaries (a tiny block size here).
    """
    from sptx_pipeline.models import sptransformer

    mm_model(TINY).save_pretrained(tmp_path)
    ours = load_model(str(tmp_path))
    dim, length = TINY["attention_hidden_size"], TINY["max_seq_len"]
    x = torch.randn(3, length, dim, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = torch.cat([ours.encoder(x[i : i + 1], 5, 50) for i in range(3)])
        assert torch.equal(ours.encoder(x, 5, 50), expected)
        monkeypatch.setattr(sptransformer, "MLP_ROWS_CPU", 7)
        hidden = x + ours.encoder.position_embeddings()
        for layer in ours.encoder.layer:
            hidden = layer(hidden)
        norm = ours.encoder.layer_norm
        batched = F.layer_norm(hidden[:, 5:50], (dim,), norm.weight, norm.bias)
    assert max_diff(batched, expected) <= 1e-5
