"""Pangolin (Zeng & Li, Genome Biology 2022) in our models package, loading the published weights.

Pangolin's networks have SpliceAI-10k's trunk (one-hot input, a 1x1 stem to 32 channels, 16
residual blocks with kernels 11/11/21/41 and dilations 1/4/10/25, four blocks each, a skip sum of
1x1 convs, a crop of 5000 positions on each side) and eight 1x1 output heads, one per tissue and
quantity: heart, liver, brain, testis, each with P(splice) (a two-class softmax; its second class)
and splice-site usage (a sigmoid). Each published file ``final.<replica>.<head>.3.v2`` (replicas
1-3, heads 0-7) is one network trained for one head: head ``h`` is read from its output layer
``conv_last<h + 1>``. As the official tool does, a channel is the mean over the three replicas of
the head's *probabilities* (not of logits).

So the 8 channels take 24 trunk passes per window (SpliceAI: 5).

``logits`` returns ``log(p) - log(1 - p)`` of each averaged probability ``p`` (both logs
computed as log-mean-exp of the replicas' log-sigmoids, so nothing saturates), and
:meth:`Pangolin.postprocess` is a sigmoid over every channel: it gives back the averaged
probabilities. (The generic post-processing would take a softmax over the first three channels,
which fits models whose first channels are no_splice/acceptor/donor, not Pangolin's.)

The trunk is :class:`~.spliceai.SpliceAINet`'s (unpadded convolutions; the same numbers as the
official zero "same" padding followed by the crop, since the receptive field equals the crop).
"""

from __future__ import annotations

import importlib.util
import logging
import math
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import CheckpointError, MissingInputError
from ..provenance import weights_provenance
from .base import ScoringModel
from .spliceai import (
    N_BASES,
    BatchNormSpec,
    BlockSpec,
    ConvSpec,
    SpliceAINet,
    SpliceAISpec,
    one_hot,
    onehot_table,
)

PANGOLIN_FLANK = 5000
PANGOLIN_CHUNK_SIZE = 5000
TISSUES = ("heart", "liver", "brain", "testis")
# head h = 2 * tissue + (0: P(splice), 1: usage), as in the official files and custom_usage.py
PANGOLIN_CHANNELS = tuple(f"{t}_{q}" for t in TISSUES for q in ("p_splice", "usage"))
REPLICAS = (1, 2, 3)
KERNELS = (11,) * 8 + (21,) * 4 + (41,) * 4
DILATIONS = (1,) * 4 + (4,) * 4 + (10,) * 4 + (25,) * 4
SKIP_AFTER = (3, 7, 11, 15)  # a 1x1 conv into the skip sum after every fourth block
BN_EPS = 1e-5  # torch.nn.BatchNorm1d's default, which the official model uses

log = logging.getLogger(__name__)


def weight_file(replica: int, head: int) -> str:
    """The published file name of one network: ``final.<replica>.<head>.3.v2``."""
    return f"final.{replica}.{head}.3.v2"


PANGOLIN_FILES = tuple(weight_file(r, h) for h in range(len(PANGOLIN_CHANNELS)) for r in REPLICAS)


# --------------------------------------------------------------------------- state dicts


def _conv(state: dict[str, torch.Tensor], name: str, dilation: int, same: bool) -> ConvSpec:
    """torch Conv1d weight ``[out, in, k]`` -> the Keras-layout :class:`ConvSpec`."""
    weight = state[f"{name}.weight"].float().numpy()
    bias = state[f"{name}.bias"].float().numpy()
    return ConvSpec(
        np.ascontiguousarray(weight.transpose(2, 1, 0)), bias, dilation, "same" if same else "valid"
    )


def _bn(state: dict[str, torch.Tensor], name: str) -> BatchNormSpec:
    return BatchNormSpec(
        gamma=state[f"{name}.weight"].float().numpy(),
        beta=state[f"{name}.bias"].float().numpy(),
        mean=state[f"{name}.running_mean"].float().numpy(),
        var=state[f"{name}.running_var"].float().numpy(),
        eps=BN_EPS,
    )


def read_pangolin(path: str | Path, head: int) -> SpliceAISpec:
    """The trunk of one published network and its output layer ``conv_last<head + 1>``."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file: torch raises many kinds
        raise CheckpointError(f"{path}: not a PyTorch state dict ({error})") from error
    expected_out = 2 if head % 2 == 0 else 1
    try:
        blocks = []
        for i, (k, d) in enumerate(zip(KERNELS, DILATIONS, strict=True)):
            block = BlockSpec(
                _bn(state, f"resblocks.{i}.bn1"),
                _conv(state, f"resblocks.{i}.conv1", d, same=True),
                _bn(state, f"resblocks.{i}.bn2"),
                _conv(state, f"resblocks.{i}.conv2", d, same=True),
            )
            if block.conv1.kernel.shape[0] != k or block.conv2.kernel.shape[0] != k:
                raise CheckpointError(f"{path}: block {i} kernel is not {k} wide")
            blocks.append(block)
        spec = SpliceAISpec(
            stem=_conv(state, "conv1", 1, same=False),
            stem_skip=_conv(state, "skip", 1, same=False),
            blocks=blocks,
            skips={b: _conv(state, f"convs.{j}", 1, same=False) for j, b in enumerate(SKIP_AFTER)},
            crop=(PANGOLIN_FLANK, PANGOLIN_FLANK),
            head=_conv(state, f"conv_last{head + 1}", 1, same=False),
            source=str(path),
        )
    except KeyError as error:
        raise CheckpointError(f"{path}: no tensor {error} : not a Pangolin network") from error
    if spec.head.kernel.shape[2] != expected_out or spec.stem.kernel.shape[1] != N_BASES:
        raise CheckpointError(f"{path}: head {head} or input layer has an unexpected shape")
    if len([k for k in state if k.startswith("resblocks.") and k.endswith("conv1.weight")]) != 16:
        raise CheckpointError(f"{path}: expected 16 residual blocks")
    return spec


# --------------------------------------------------------------------------- PyTorch modules


class PangolinNet(SpliceAINet):
    """One published network at its head: ``[B, 2, T]`` = log p, log(1 - p) of P(splice) (the
    second class of the two-class softmax) or of usage (a sigmoid)."""

    def forward(self, onehot: torch.Tensor) -> torch.Tensor:
        out = self.head(self.features(onehot))
        z = out[:, 1:2] - out[:, 0:1] if out.shape[1] == 2 else out  # softmax of 2 = sigmoid
        return torch.cat([F.logsigmoid(z), F.logsigmoid(-z)], dim=1)


class Pangolin(ScoringModel):
    """Pangolin's 8 channels, each the mean of its head's three replicas' probabilities.

    ``nets[c]`` holds channel ``c``'s replicas. ``logits`` is the logit of each averaged
    probability; :meth:`postprocess` (sigmoid) gives the averaged probabilities.
    """

    channels = PANGOLIN_CHANNELS
    default_chunk_size = PANGOLIN_CHUNK_SIZE
    flank = PANGOLIN_FLANK
    onehot_table: torch.Tensor

    def __init__(self, specs: list[list[SpliceAISpec]]) -> None:
        super().__init__()
        if len(specs) != len(PANGOLIN_CHANNELS) or not all(specs):
            raise ValueError(f"Pangolin needs replicas for each of {len(PANGOLIN_CHANNELS)} heads")
        self.nets = nn.ModuleList(
            nn.ModuleList(PangolinNet(spec) for spec in head) for head in specs
        )
        self.register_buffer("onehot_table", onehot_table(), persistent=False)

    def onehot(self, tokens: torch.Tensor) -> torch.Tensor:
        return one_hot(tokens, self.onehot_table)

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.onehot(tokens).to(self.onehot_table.dtype)
        out = []
        for head in cast(list[nn.ModuleList], self.nets):
            logs = torch.stack([net(x) for net in head]).float()  # [M, B, 2, T]
            mean = torch.logsumexp(logs, dim=0) - math.log(len(head))  # log p̄, log(1 - p̄)
            out.append(mean[:, 0] - mean[:, 1])
        return torch.stack(out, dim=-1)  # [B, T, 8]

    @staticmethod
    def postprocess(logits: torch.Tensor) -> torch.Tensor:
        """Sigmoid over every channel: the replica-averaged probabilities."""
        return torch.sigmoid(logits.float())


# --------------------------------------------------------------------------- loading


def pangolin_package_models() -> Path | None:
    """The installed ``pangolin`` package's ``models/`` folder, found without importing it
    (importing it pulls in pyvcf, gffutils and pyfastx, none of which is needed here)."""
    spec = importlib.util.find_spec("pangolin")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "models"


GET_WEIGHTS = (
    "install Pangolin from its repository (`pip install git+https://github.com/tkzeng/Pangolin`, "
    "weights GPL-3.0) or give a directory holding its final.<1-3>.<0-7>.3.v2 files as "
    "`pangolin:/path/to/dir`"
)


def load_pangolin(directory: str | Path | None = None) -> Pangolin:
    """Load Pangolin's 24 networks from ``directory`` (default: the installed ``pangolin``
    package's ``models/`` folder)."""
    if directory is None:
        folder = pangolin_package_models()
        if folder is None:
            raise MissingInputError(f"model 'pangolin' needs Pangolin's weights: {GET_WEIGHTS}")
        source = "pangolin (package)"
    else:
        folder = Path(directory).expanduser()
        source = f"pangolin:{folder}"
    paths = [folder / name for name in PANGOLIN_FILES]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        shown = ", ".join(missing[:3]) + (
            f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        )
        raise MissingInputError(f"Pangolin weights missing in {folder}: {shown}; {GET_WEIGHTS}")
    log.info("loading Pangolin from %s", folder)
    specs = [
        [read_pangolin(folder / weight_file(r, h), h) for r in REPLICAS]
        for h in range(len(PANGOLIN_CHANNELS))
    ]
    model = Pangolin(specs)
    model.provenance = weights_provenance("pangolin", source, folder, PANGOLIN_FILES)
    return model.eval()
