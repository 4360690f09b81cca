"""The interface every scoring model in the pipeline implements.

The pipeline only relies on this: ``flank``, ``channels``, ``default_chunk_size``,
``model(tokens) -> logits [B, T, C]`` and ``model.postprocess(logits) -> probabilities``.
Nothing downstream may assume a particular model family, channel count or flank.
``forward_substituted`` (REF windows with ALT windows that differ from them on a span) works
for every model; a model whose ``reuses_reference`` is true computes it faster than two plain
forwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .. import options
from ..channels import N_SPLICE_CHANNELS

# compute dtype of each precision (the names are options.PRECISIONS); tf32 is float32 storage
# with TF32 tensor-core arithmetic on CUDA (runtime.set_backend_flags), plain float32 elsewhere
PRECISIONS: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "tf32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
assert set(PRECISIONS) == set(options.PRECISIONS)
# autocast dtypes by device type: bfloat16 on CPUs (AVX512-BF16 / AMX) and GPUs; float16 on GPUs
# only (CPU float16 matmuls are emulated on most CPUs, slower than float32)
AUTOCAST: dict[str, dict[str, torch.dtype]] = {
    "cuda": {"bfloat16": torch.bfloat16, "float16": torch.float16},
    "cpu": {"bfloat16": torch.bfloat16},
}


def backend_flags(precision: str) -> dict[str, bool]:
    """The CUDA backend flags a precision needs: TF32 tensor-core arithmetic for float32
    matmuls and cuDNN convolutions only with ``tf32``. torch's default lets cuDNN run float32
    convolutions as TF32 (10-bit mantissa), which ``float32`` must not do: it is the precision
    that reproduces the official tools."""
    tf32 = precision == "tf32"
    return {"cuda.matmul.allow_tf32": tf32, "cudnn.allow_tf32": tf32}


def set_backend_flags(precision: str, device: torch.device | str) -> dict[str, bool]:
    """Set :func:`backend_flags` when ``device`` is CUDA (they are process-wide and affect
    CUDA only; a CPU device leaves them alone). Returns the flags set (empty on a CPU)."""
    if torch.device(device).type != "cuda":
        return {}
    flags = backend_flags(precision)
    torch.backends.cuda.matmul.allow_tf32 = flags["cuda.matmul.allow_tf32"]
    torch.backends.cudnn.allow_tf32 = flags["cudnn.allow_tf32"]
    return flags


def autocast_dtype(precision: str, device_type: str) -> torch.dtype | None:
    """The dtype ``precision`` autocasts to on ``device_type``, or None: computed in float32."""
    return AUTOCAST.get(device_type, {}).get(precision)


class ScoringModel(nn.Module):
    """Base class: token validation, autocast, non-finite check and post-processing.

    Subclasses implement :meth:`logits` and set ``flank``, ``channels`` and
    ``default_chunk_size``. ``provenance`` is filled by the loader (source, checksum).
    """

    flank: int
    channels: tuple[str, ...]
    default_chunk_size: int
    reuses_reference = False  # True where substituted_logits is cheaper than plain forwards

    def __init__(self) -> None:
        super().__init__()
        self.precision = "float32"
        self.provenance: dict[str, Any] = {}

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """Raw outputs ``[B, T, C]`` for the centre ``T = L - 2 * flank`` positions."""
        raise NotImplementedError

    def substituted_logits(
        self,
        ref: torch.Tensor,
        alt: torch.Tensor,
        rows: Sequence[int],
        spans: Sequence[tuple[int, int]],
    ) -> torch.Tensor:
        """Logits ``[R + N, T, C]`` of REF windows ``ref`` then ALT windows ``alt``, where
        ``alt[i]`` equals ``ref[rows[i]]`` outside ``spans[i] = (start, stop)``.

        This default is one plain forward of both; a model that can reuse the REF pass for
        the ALTs overrides it (same outputs up to float rounding) and sets ``reuses_reference``.
        """
        return self.logits(torch.cat([ref, alt]))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        self._check_tokens(tokens)
        with self._autocast(tokens.device):
            out = self.logits(tokens)
        return self._checked_output(out)

    def forward_substituted(
        self,
        ref: torch.Tensor,
        alt: torch.Tensor,
        rows: Sequence[int],
        spans: Sequence[tuple[int, int]],
    ) -> torch.Tensor:
        """:meth:`substituted_logits` with the checks and autocast of :meth:`forward`."""
        self._check_tokens(ref)
        self._check_tokens(alt)
        length = ref.shape[1]
        if alt.shape[1] != length or not len(alt) == len(rows) == len(spans):
            raise ValueError(
                f"{len(alt)} ALT windows of length {alt.shape[1]} with {len(rows)} REF rows and "
                f"{len(spans)} spans; expected one each, of the REF length {length}"
            )
        outside = torch.ones(alt.shape, dtype=torch.bool, device=alt.device)
        for i, (row, (start, stop)) in enumerate(zip(rows, spans, strict=True)):
            if not (0 <= row < len(ref) and 0 <= start < stop <= length):
                raise ValueError(f"ALT {i}: REF row {row} or span [{start}, {stop}) out of range")
            outside[i, start:stop] = False
        if len(alt) and (alt != ref[list(rows)])[outside].any():
            raise ValueError("an ALT window differs from its REF window outside its span")
        with self._autocast(ref.device):
            out = self.substituted_logits(ref, alt, rows, spans)
        return self._checked_output(out)

    def _check_tokens(self, tokens: torch.Tensor) -> None:
        if tokens.dim() != 2 or tokens.dtype.is_floating_point:
            raise ValueError(
                f"expected integer tokens of shape [B, L], got {tuple(tokens.shape)} {tokens.dtype}"
            )
        if tokens.shape[1] <= 2 * self.flank:
            raise ValueError(
                f"window length {tokens.shape[1]} leaves no target: it must exceed "
                f"2 * flank = {2 * self.flank}"
            )

    def _checked_output(self, out: torch.Tensor) -> torch.Tensor:
        out = out.float()
        if not torch.isfinite(out).all():
            raise FloatingPointError(
                f"{type(self).__name__} produced NaN or inf (precision {self.precision}); "
                "try precision float32"
            )
        return out

    def postprocess(self, logits: torch.Tensor) -> torch.Tensor:
        """Probabilities as the original tools report them."""
        return postprocess(logits)

    def _autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        """Autocast to the precision's dtype where the device computes it, else nothing.

        Autocast runs matmuls and convolutions in the low dtype; the models keep their
        softmax, sigmoid and log-sum-exp in float32 themselves (they call ``.float()``).
        On CUDA it also sets the TF32 flags of the precision for the call (they are global, and
        another model of the process may have set them otherwise).
        """
        set_backend_flags(self.precision, device)
        dtype = autocast_dtype(self.precision, device.type)
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=dtype)


def postprocess(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the three splice channels, sigmoid over the tissue channels."""
    splice = torch.softmax(logits[..., :N_SPLICE_CHANNELS].float(), dim=-1)
    tissue = torch.sigmoid(logits[..., N_SPLICE_CHANNELS:].float())
    return torch.cat([splice, tissue], dim=-1)
