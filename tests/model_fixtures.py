"""Shared fixtures for the model tests: multimolecule reference models with random weights.

multimolecule is a test dependency only; these helpers build its ``SpTransformerModel`` with
random weights, non-trivial BatchNorm statistics and position embeddings, and the N input column
zeroed as in the converted published checkpoint.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

FULL = {}  # the published geometry: multimolecule's defaults
TINY = dict(
    context=60,
    hidden_size=8,
    encoders=[{"hidden_size": 6}, {"hidden_size": 4}],
    attention_hidden_size=16,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_local_attention_heads=1,
    intermediate_size=24,
    bucket_size=8,
    max_seq_len=64,
)
TINY_ONE_ENCODER = dict(
    context=45,
    hidden_size=4,
    encoders=[{"hidden_size": 5}],
    attention_hidden_size=12,
    num_hidden_layers=1,
    num_attention_heads=3,
    num_local_attention_heads=2,
    intermediate_size=10,
    bucket_size=4,
    max_seq_len=48,
    num_tissues=4,
)


def randomise_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights everywhere, BN statistics away from (0, 1), N one-hot column zero."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) * 1.5 + 0.25)
            elif name.endswith("running_mean"):
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.3)
            elif "norm" in name and name.endswith("weight"):
                tensor.copy_(1 + 0.2 * torch.randn(tensor.shape, generator=gen))
            elif "position_embeddings" in name:
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.5)
            else:
                fan_in = tensor[0].numel() if tensor.dim() > 1 else tensor.numel()
                tensor.copy_(torch.randn(tensor.shape, generator=gen) / fan_in**0.5)
            if name.endswith("conv1.weight") and tensor.shape[1] == 5:
                tensor[:, 4] = 0
    return model.eval()


def mm_model(config: dict[str, Any], seed: int = 0):
    """A multimolecule ``SpTransformerModel`` with random weights (float32, eval)."""
    from multimolecule import SpTransformerConfig, SpTransformerModel

    torch.manual_seed(seed)
    return randomise_(SpTransformerModel(SpTransformerConfig(**config)), seed)


def random_tokens(batch: int, length: int, seed: int = 0, n_fraction: float = 0.02) -> torch.Tensor:
    """Random A/C/G/T tokens with a few N."""
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, 4, (batch, length), generator=gen)
    tokens[torch.rand(batch, length, generator=gen) < n_fraction] = 4
    return tokens


def mm_real_flank_logits(mm, tokens: torch.Tensor) -> torch.Tensor:
    """The original forward on a whole window, composed from multimolecule's own submodules.

    ``SpTransformerModel`` always adds ``context`` zero columns on each side; the original does
    not, so with real flanks we run its submodules on the un-padded one-hot window.
    """
    from multimolecule.models.sptransformer import modeling_sptransformer as mod

    config = mm.config
    onehot = F.one_hot(tokens, 5).float().transpose(1, 2)
    length = onehot.shape[2]
    target, odd = length - 2 * config.context, length & 1
    projected = mod._pad_or_crop_features(mm.projection(onehot), config.max_seq_len, odd)
    feats = torch.cat([enc(onehot) for enc in mm.feature_encoders], dim=1)
    feats = mod._pad_or_crop_features(feats, config.max_seq_len, odd)
    hidden = mm.projection.fuse(torch.cat([feats, projected], dim=1))
    context = mm.encoder(hidden).last_hidden_state
    return mod._pad_or_crop_outputs(mm.prediction(context), target, odd)


def n_flanked(tokens: torch.Tensor, flank: int) -> torch.Tensor:
    """``N * flank + tokens + N * flank``."""
    return F.pad(tokens, (flank, flank), value=4)
