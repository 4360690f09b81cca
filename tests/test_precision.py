"""Compute precisions: what each one computes on a CPU, and the CUDA backend flags it sets.

``float32`` is exact float32 (TF32 off on CUDA), ``tf32`` allows TF32 on CUDA, ``bfloat16``
autocasts on CPUs and GPUs (the models keep softmax, sigmoid, log-sum-exp, residual streams and
skip sums in float32), ``float16`` applies on CUDA only. References here are float32 runs of the
same weights and ``F.conv1d``; the end-to-end bounds are tested in test_precision_pipeline.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from sptx_pipeline import runtime
from sptx_pipeline.models import load_model
from sptx_pipeline.models.base import backend_flags, set_backend_flags
from sptx_pipeline.models.convolution import same_conv1d
from sptx_pipeline.models.random_checkpoint import TINY_CONFIG, write_random_checkpoint
from sptx_pipeline.options import PRECISIONS
from sptx_pipeline.testing import StandInModel
from tests.genome_fixtures import EXAMPLE_FASTA
from tests.model_fixtures import random_tokens

EXPECTED_TF32 = {"float32": False, "tf32": True, "bfloat16": False, "float16": False}


@pytest.fixture
def restore_flags():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def current_flags() -> tuple[bool, bool]:
    return torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32


@pytest.mark.parametrize("precision", PRECISIONS)
def test_cuda_backend_flags_per_precision(precision, restore_flags):
    """float32 turns TF32 off for matmuls and cuDNN convolutions (torch's default has cuDNN's
    on), tf32 turns both on; a CPU device leaves the process-wide flags alone."""
    torch.backends.cuda.matmul.allow_tf32 = not EXPECTED_TF32[precision]
    torch.backends.cudnn.allow_tf32 = not EXPECTED_TF32[precision]
    assert set_backend_flags(precision, "cpu") == {}
    assert current_flags() == (not EXPECTED_TF32[precision],) * 2
    assert set_backend_flags(precision, torch.device("cuda", 0)) == backend_flags(precision)
    assert current_flags() == (EXPECTED_TF32[precision],) * 2


@pytest.mark.parametrize("precision", PRECISIONS)
def test_a_cuda_worker_sets_the_flags_before_it_loads_the_model(precision, restore_flags):
    """``runtime.worker_model`` (what predict and variants call on a worker): the flags are set
    when the model is built. Without a GPU the move to CUDA then fails, after the record."""
    torch.backends.cuda.matmul.allow_tf32 = not EXPECTED_TF32[precision]
    torch.backends.cudnn.allow_tf32 = not EXPECTED_TF32[precision]
    seen: list[tuple[bool, bool]] = []

    def factory() -> StandInModel:
        seen.append(current_flags())
        return StandInModel()

    key = f"flags-test-{precision}"
    try:
        runtime.worker_model(factory, key, torch.device("cuda", 0), precision)
    except (AssertionError, RuntimeError):
        assert not torch.cuda.is_available()
    assert seen == [(EXPECTED_TF32[precision],) * 2]


@pytest.fixture(scope="module")
def tiny_sptransformer(tmp_path_factory):
    return str(write_random_checkpoint(tmp_path_factory.mktemp("tiny"), seed=5, **TINY_CONFIG))


def test_cpu_float16_and_tf32_compute_float32(tiny_sptransformer):
    """float16 and tf32 have no CPU arithmetic of their own: the numbers are float32's."""
    x = random_tokens(2, 500)
    with torch.inference_mode():
        ref = load_model(tiny_sptransformer)(x)
        for precision in ("tf32", "float16"):
            assert torch.equal(load_model(tiny_sptransformer, precision=precision)(x), ref)


def test_cpu_bfloat16_sptransformer_close_to_float32(tiny_sptransformer):
    """bfloat16 on a CPU really computes in bfloat16 (different numbers), close to float32,
    and its incremental ALT pass equals its plain forward to bfloat16 rounding."""
    x = random_tokens(2, 500, seed=1)
    with torch.inference_mode():
        ref = load_model(tiny_sptransformer).postprocess(load_model(tiny_sptransformer)(x))
        model = load_model(tiny_sptransformer, precision="bfloat16")
        low = model.postprocess(model(x))
        assert not torch.equal(low, ref)
        assert (low - ref).abs().max() < 0.03
        alt = x[[0, 1]].clone()
        alt[0, 250] = (alt[0, 250] + 1) % 4
        alt[1, 260] = (alt[1, 260] + 2) % 4
        both = model.postprocess(
            model.forward_substituted(x, alt, [0, 1], [(250, 251), (260, 261)])
        )
        plain = model.postprocess(model(torch.cat([x, alt])))
        assert (both - plain).abs().max() < 0.03


def test_bfloat16_convolution_is_direct_and_fft_stays_float32():
    """Under a CPU bfloat16 autocast ``auto`` picks the direct convolution in bfloat16 (the
    FFT path has no bfloat16 kernels); an explicit FFT computes float32 with autocast off."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 128, 300, generator=generator)
    weight = torch.randn(128, 128, 21, generator=generator) / 50
    bias = torch.randn(128, generator=generator)
    exact = F.conv1d(x.double(), weight.double(), bias.double(), padding=40, dilation=4)
    fft = same_conv1d(x, weight, bias, 4, "fft")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = same_conv1d(x, weight, bias, 4, "auto")
        fft_under_autocast = same_conv1d(x, weight, bias, 4, "fft")
        padded = same_conv1d(x, weight, bias, 4, "auto", padding=(3, 50))
    assert low.dtype == torch.bfloat16 and fft_under_autocast.dtype == torch.float32
    assert torch.equal(fft_under_autocast, fft)
    error = (low.double() - exact).abs().max() / exact.abs().max()
    assert 1e-4 < error < 2e-2  # bfloat16 rounding: not float32, not wrong
    want = F.conv1d(F.pad(x, (3, 50)).double(), weight.double(), bias.double(), dilation=4)
    assert padded.shape == want.shape
    assert (padded.double() - want).abs().max() / want.abs().max() < 2e-2


def test_cpu_bfloat16_spliceai_close_to_float32():
    """SpliceAI's published weights on a real 11,000-nt window of the bundled region."""
    pytest.importorskip("h5py")
    import pyfaidx

    from sptx_pipeline.genome import encode

    sequence = str(pyfaidx.Fasta(str(EXAMPLE_FASTA))["chr19"][1_099_700:1_110_700])
    tokens = torch.from_numpy(np.asarray(encode(sequence))[None]).long()
    with torch.inference_mode():
        model = load_model("spliceai")
        ref = model.postprocess(model(tokens))
        model.precision = "bfloat16"  # what load_model(..., precision="bfloat16") sets
        low = model.postprocess(model(tokens))
    assert ref[..., 1:].max() > 0.5  # GPX4 exon 2: acceptor 1,105,185 and donor 1,105,279
    difference = (low - ref).abs()
    assert 0 < difference.max() < 0.01, difference.max()
    assert torch.allclose(low.sum(-1), torch.ones(1, 1000))
