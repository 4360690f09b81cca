"""The test suite's stand-in conv net widened to SpTransformer's 18 channels, for benchmarks.

Same receptive field (+/- flank) and seeded weights as ``StandInModel``; only the 1x1 head has
one output per SpTransformer channel (softmax over the three splice channels, sigmoid for the
15 tissues, through the shared ``postprocess``). Its values are random-looking probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sptx_pipeline.models.sptransformer import OFFICIAL_TISSUES, SPLICE_CHANNELS
from sptx_pipeline.testing import StandInModel

WIDE_CHANNELS = (*SPLICE_CHANNELS, *OFFICIAL_TISSUES)


class WideStandIn(StandInModel):
    """``StandInModel`` with 18 output channels."""

    channels = WIDE_CHANNELS

    def __init__(self, seed: int = 0, flank: int = 50, hidden: int = 8, sleep: float = 0.0):
        super().__init__(seed=seed, flank=flank, hidden=hidden, sleep=sleep)
        generator = torch.Generator().manual_seed(seed + 1)
        self.head = nn.Conv1d(hidden, len(WIDE_CHANNELS), kernel_size=1)
        with torch.no_grad():
            for param in self.head.parameters():
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)


@dataclass(frozen=True)
class WideStandInFactory:
    """Picklable zero-argument factory, as ``predict`` accepts for ``model``."""

    seed: int = 0
    flank: int = 50
    hidden: int = 8
    sleep: float = 0.0

    def __call__(self) -> WideStandIn:
        return WideStandIn(self.seed, self.flank, self.hidden, self.sleep)
