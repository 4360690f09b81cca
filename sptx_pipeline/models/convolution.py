"""'Same' dilated 1-D convolution, by overlap-save FFT on a CPU and directly elsewhere.

SpTransformer's encoders spend most of their CPU time in dilated convolutions with 11 or 21 taps
over 64 or 128 channels. Done directly, each output position costs ``k * C_in * C_out``
multiply-adds. In the frequency domain the channel mixing costs about
``4 * C_in * C_out * (frame / 2 + 1) / (frame - k + 1)`` (2.3 for a 21-tap kernel and a
256-point frame) plus the transforms, which makes the 21-tap convolutions about 3x faster on a
CPU. The result is as accurate as ``F.conv1d``: both differ from a float64 reference by a few
1e-6 (``tests/test_convolution.py``).

A convolution with dilation ``d`` is ``d`` undilated ones over the interleaved phases
``x[..., r::d]``, so every transform spans ``k`` taps, never ``(k - 1) * d + 1``.

The method is chosen per precision: under a low-precision autocast (``precision: bfloat16``) the
direct convolution runs in bfloat16 (oneDNN uses AVX512-BF16 / AMX), which beats the float32 FFT;
the FFT path cannot run in bfloat16 at all (``torch.complex`` has no bfloat16 kernel), so an
explicit ``method="fft"`` computes in float32 with autocast off.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch.nn import functional as F

Method = Literal["auto", "fft", "direct"]
FRAME = 256  # FFT length; 128..256 measured best for 11 and 21 taps (benchmarks/bench_model.py)
MIN_FFT_WORK = 1024  # input channels x taps below which the direct convolution is as fast
GROUP = 4  # windows per overlap-save pass: bounds the temporaries (~20 MB at 128 x 9,000)
Spectra = dict[int, tuple[torch.Tensor, torch.Tensor]]  # kernel spectra by frame length


def same_conv1d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    dilation: int,
    method: Method = "auto",
    padding: tuple[int, int] | None = None,
    spectra: Spectra | None = None,
) -> torch.Tensor:
    """``F.conv1d(x, weight, bias, dilation=dilation)`` with zero "same" padding (odd ``k``).

    ``padding``: zero columns ``(left, right)`` instead of "same" ones; the output then has
    ``L + left + right - (k - 1) * dilation`` positions (an incremental pass computes a slice of
    a "same" convolution this way, padding only where the slice meets the window's edge).
    ``method="auto"`` uses the FFT for float32/float64 CPU tensors where it is faster, and the
    direct convolution (oneDNN, cuDNN) everywhere else, including under a CPU autocast.
    ``spectra``: see :func:`fft_conv1d`.
    """
    if method == "auto":
        method = "fft" if _fft_pays(x, weight) else "direct"
    if method == "fft":
        if torch.is_autocast_enabled(x.device.type):
            with torch.autocast(x.device.type, enabled=False):
                return fft_conv1d(x.float(), weight, bias, dilation, padding, spectra)
        return fft_conv1d(x, weight, bias, dilation, padding, spectra)
    if method != "direct":
        raise ValueError(f"unknown convolution method {method!r} (auto, fft or direct)")
    same = (weight.shape[-1] - 1) * dilation // 2
    if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        dtype = torch.get_autocast_dtype("cpu")
        if dtype != torch.float32:
            with torch.autocast("cpu", enabled=False):
                return _direct_channels_last(
                    x, weight, bias, dilation, padding or (same, same), dtype
                )
    if padding is None:
        return F.conv1d(x, weight, bias, padding=same, dilation=dilation)
    return F.conv1d(F.pad(x, padding), weight, bias, dilation=dilation)


def _direct_channels_last(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    dilation: int,
    padding: tuple[int, int],
    dtype: torch.dtype,
) -> torch.Tensor:
    """The direct convolution in ``dtype`` on a CPU: ``[B, C, L]`` -> ``[B, O, L']``.

    The input is cast and laid out channels-last (positions x channels, oneDNN's native layout
    for AVX512-BF16 / AMX) with its zero padding in one copy, and convolved as a height-1 2-D
    image; the result is a ``[B, O, L']`` view of channels-last memory, which the next
    convolution reads without a reorder. Under a plain autocast oneDNN reorders every input
    and output (a third of the time).
    """
    batch, channels, length = x.shape
    left, right = padding
    buffer = x.new_zeros(batch, length + left + right, channels, dtype=dtype)
    buffer[:, left : left + length] = x.transpose(1, 2)
    kernel = weight[:, :, None, :].to(dtype)
    out = F.conv2d(
        buffer.transpose(1, 2).unsqueeze(2), kernel, bias.to(dtype), dilation=(1, dilation)
    )
    return out.squeeze(2)


def _fft_pays(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return (
        x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and not torch.is_autocast_enabled("cpu")
        and weight.shape[1] * weight.shape[2] >= MIN_FFT_WORK
    )


def fft_conv1d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    dilation: int,
    padding: tuple[int, int] | None = None,
    spectra: Spectra | None = None,
) -> torch.Tensor:
    """Overlap-save FFT version of the "same" dilated convolution: ``[B, C, L] -> [B, O, L]``.

    ``padding``: zero columns ``(left, right)`` instead of "same" ones (as in
    :func:`same_conv1d`). The kernel spectrum is computed once per call, or once per frame
    length for all the calls that share the ``spectra`` dict (the caller's promise: same
    ``weight``); windows go through in groups of ``GROUP`` so the temporaries stay small
    whatever the batch size.
    """
    batch, _, length = x.shape
    taps = weight.shape[-1]
    if taps % 2 == 0:
        raise ValueError(f"'same' convolution needs an odd kernel, got {taps} taps")
    span = (taps - 1) * dilation
    left, right = (span // 2, span // 2) if padding is None else padding
    out_length = length + left + right - span
    if out_length < 1 or min(left, right) < 0:
        raise ValueError(f"padding {padding} leaves no output for {length} positions")
    phase_length = -(-(length + left + right) // dilation)  # >= taps
    frame = min(FRAME, 1 << (phase_length - 1).bit_length())
    hop = frame - taps + 1  # valid outputs per frame
    frames = -(-(phase_length - taps + 1) // hop)
    padded = frames * hop + taps - 1  # per phase
    # [B, C, padded, phase]: phase r at index q holds input position q * d + r - left
    x = F.pad(x, (left, padded * dilation - length - left))
    x = x.reshape(*x.shape[:2], padded, dilation)
    kernel = None if spectra is None else spectra.get(frame)
    if kernel is None:
        kernel = _correlation_spectrum(weight, frame)
        if spectra is not None:
            spectra[frame] = kernel
    out = x.new_empty(batch, weight.shape[0], out_length)
    for start in range(0, batch, GROUP):
        group = slice(start, start + GROUP)
        out[group] = _overlap_save(x[group], kernel, frame, hop)[..., :out_length]
    return out.add_(bias[:, None])


def _overlap_save(
    phases: torch.Tensor, kernel: tuple[torch.Tensor, torch.Tensor], frame: int, hop: int
) -> torch.Tensor:
    """Correlate padded phases ``[B, C, padded, d]`` with the kernel spectrum, frame by frame,
    without bias: ``[B, O, frames * hop * d]`` in position order."""
    batch, _, _, dilation = phases.shape
    kernel_re, kernel_im = kernel
    out_channels = kernel_re.shape[-1]
    # [B, C, frames, phase, frame]: frame f of phase r holds phase index f * hop + j, j < frame
    windows = phases.unfold(2, frame, hop)
    frames = windows.shape[2]
    spectrum = torch.view_as_real(torch.fft.rfft(windows, dim=-1))  # [..., freq, 2]
    freqs, rows = spectrum.shape[4], batch * frames * dilation
    # Per frequency: real and imaginary rows stacked, [freq, 2 * rows, C].
    planes = spectrum.permute(4, 5, 0, 2, 3, 1).reshape(freqs, 2 * rows, -1)
    by_re, by_im = torch.bmm(planes, kernel_re), torch.bmm(planes, kernel_im)
    product = torch.complex(
        by_re[:, :rows] - by_im[:, rows:], by_im[:, :rows] + by_re[:, rows:]
    ).view(freqs, batch, frames, dilation, out_channels)
    y = torch.fft.irfft(product.permute(1, 4, 2, 3, 0), n=frame, dim=-1)[..., :hop]
    # [B, O, frames, phase, hop] -> position (f * hop + j) * d + r
    return y.transpose(3, 4).reshape(batch, out_channels, -1)


def _correlation_spectrum(weight: torch.Tensor, frame: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Real and imaginary parts ``[freq, C, O]`` of the conjugate DFT of each kernel.

    A conv layer correlates (``y[i] = sum_t w[t] x[i + t]``), which in the frequency domain is a
    product with the conjugate kernel spectrum. The DFT of ``k`` taps is one small matmul.
    """
    out_channels, in_channels, taps = weight.shape
    freqs = frame // 2 + 1
    angle = torch.outer(
        torch.arange(freqs, dtype=torch.float64), torch.arange(taps, dtype=torch.float64)
    ) * (2 * math.pi / frame)
    dft = torch.cat([angle.cos(), angle.sin()]).to(weight)  # conj(e^{-ia}) = cos a + i sin a
    taps_first = weight.permute(2, 1, 0).reshape(taps, in_channels * out_channels)
    planes = (dft @ taps_first).view(2, freqs, in_channels, out_channels)
    return planes[0], planes[1]
