"""The overlap-save FFT convolution against ``F.conv1d`` in float64 (an independent reference)."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from sptx_pipeline.models.convolution import GROUP, fft_conv1d, same_conv1d


def reference(x, weight, bias, dilation):
    """Zero-padded 'same' convolution in float64."""
    padding = (weight.shape[-1] - 1) * dilation // 2
    return F.conv1d(x.double(), weight.double(), bias.double(), padding=padding, dilation=dilation)


def random_conv(batch, in_ch, out_ch, taps, length, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, in_ch, length, generator=gen, dtype=dtype)
    weight = torch.randn(out_ch, in_ch, taps, generator=gen, dtype=dtype) / (in_ch * taps) ** 0.5
    bias = torch.randn(out_ch, generator=gen, dtype=dtype)
    return x, weight, bias


@pytest.mark.parametrize(
    ("batch", "in_ch", "out_ch", "taps", "dilation", "length"),
    [
        (1, 128, 128, 21, 20, 9000),  # the published encoder's widest convolution
        (2, 64, 64, 11, 4, 9000),
        (GROUP + 2, 8, 5, 21, 10, 1003),  # several groups, the last one partial
        (3, 6, 6, 11, 1, 1),  # one position: only padding around it
        (1, 4, 7, 3, 2, 5),
        (2, 5, 3, 1, 1, 17),  # 1x1
        (1, 3, 3, 21, 20, 40),  # kernel span far beyond the sequence
        (1, 16, 16, 11, 4, 255),  # phase length just below / at a frame boundary
        (1, 16, 16, 11, 1, 246),
    ],
)
def test_fft_convolution_matches_float64_reference(batch, in_ch, out_ch, taps, dilation, length):
    x, weight, bias = random_conv(batch, in_ch, out_ch, taps, length)
    expected = reference(x, weight, bias, dilation)
    out = fft_conv1d(x, weight, bias, dilation)
    assert out.shape == (batch, out_ch, length) and out.dtype == torch.float32
    fft_error = (out.double() - expected).abs().max().item()
    direct = F.conv1d(x, weight, bias, padding=(taps - 1) * dilation // 2, dilation=dilation)
    direct_error = (direct.double() - expected).abs().max().item()
    assert expected.abs().max() > 0.5
    # as accurate as the direct float32 convolution, within a small absolute margin
    assert fft_error <= 2 * direct_error + 1e-6, (fft_error, direct_error)


def test_fft_convolution_in_float64_is_exact_to_rounding():
    x, weight, bias = random_conv(2, 12, 9, 21, 500, dtype=torch.float64)
    out = fft_conv1d(x, weight, bias, 10)
    assert out.dtype == torch.float64
    assert (out - reference(x, weight, bias, 10)).abs().max() < 1e-12


def test_auto_picks_fft_for_wide_kernels_on_cpu_and_direct_otherwise():
    wide = random_conv(1, 128, 128, 21, 300)
    narrow = random_conv(1, 8, 8, 11, 300)
    assert torch.equal(same_conv1d(*wide, 20), fft_conv1d(*wide, 20))
    direct = same_conv1d(*narrow, 4, method="direct")
    assert torch.equal(same_conv1d(*narrow, 4), direct)
    assert torch.equal(direct, F.conv1d(*narrow, padding=20, dilation=4))


def test_bad_arguments_are_refused():
    x, weight, bias = random_conv(1, 4, 4, 4, 10)
    with pytest.raises(ValueError, match="odd kernel"):
        fft_conv1d(x, weight, bias, 1)
    x, weight, bias = random_conv(1, 4, 4, 3, 10)
    with pytest.raises(ValueError, match="unknown convolution method"):
        same_conv1d(x, weight, bias, 1, method="winograd")


def test_non_contiguous_input():
    x, weight, bias = random_conv(3, 40, 6, 11, 300)
    x = x.transpose(1, 2).contiguous().transpose(1, 2)  # same values, channels-last strides
    assert not x.is_contiguous()
    expected = reference(x, weight, bias, 4)
    assert (fft_conv1d(x, weight, bias, 4).double() - expected).abs().max() < 1e-5
