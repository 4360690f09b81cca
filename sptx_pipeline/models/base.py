"""The interface every scoring model in the pipeline implements.

The pipeline only relies on this: ``flank``, ``channels``, ``default_chunk_size``,
``model(tokens) -> logits [B, T, C]`` and ``model.postprocess(logits) -> probabilities``.
Nothing downstream may assume a particular model family, channel count or flank.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

from .. import options

# compute dtype of each precision (the names are options.PRECISIONS)
PRECISIONS: dict[str, torch.dtype] = {name: getattr(torch, name) for name in options.PRECISIONS}
N_SPLICE_CHANNELS = 3  # no_splice, acceptor, donor: softmax; every later channel: sigmoid


class ScoringModel(nn.Module):
    """Base class: token validation, autocast, non-finite check and post-processing.

    Subclasses implement :meth:`logits` and set ``flank``, ``channels`` and
    ``default_chunk_size``. ``provenance`` is filled by the loader (source, checksum).
    """

    flank: int
    channels: tuple[str, ...]
    default_chunk_size: int

    def __init__(self) -> None:
        super().__init__()
        self.precision = "float32"
        self.provenance: dict[str, Any] = {}

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """Raw outputs ``[B, T, C]`` for the centre ``T = L - 2 * flank`` positions."""
        raise NotImplementedError

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() != 2 or tokens.dtype.is_floating_point:
            raise ValueError(
                f"expected integer tokens of shape [B, L], got {tuple(tokens.shape)} {tokens.dtype}"
            )
        if tokens.shape[1] <= 2 * self.flank:
            raise ValueError(
                f"window length {tokens.shape[1]} leaves no target: it must exceed "
                f"2 * flank = {2 * self.flank}"
            )
        with self._autocast(tokens.device):
            out = self.logits(tokens)
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
        if self.precision == "float32" or device.type != "cuda":
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=PRECISIONS[self.precision])


def postprocess(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the three splice channels, sigmoid over the tissue channels."""
    splice = torch.softmax(logits[..., :N_SPLICE_CHANNELS].float(), dim=-1)
    tissue = torch.sigmoid(logits[..., N_SPLICE_CHANNELS:].float())
    return torch.cat([splice, tissue], dim=-1)
