"""Shared fixtures for the model tests: multimolecule reference models with random weights.

multimolecule is a test dependency only; these helpers build its ``SpTransformerModel`` with
random weights, non-trivial BatchNorm statistics and position embeddings, and the N input column
zeroed as in the converted published checkpoint.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

from sptx_pipeline.models.loading import ONEHOT_CONV
from sptx_pipeline.models.random_checkpoint import random_state_dict

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
    model.load_state_dict(random_state_dict(model, seed))
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


def to_original_state_dict(mm, legacy_names: bool = True) -> dict[str, torch.Tensor]:
    """multimolecule weights under the original checkpoint's key names (the inverse mapping).

    Adds what the original file carries and the model ignores: the encoders' own output heads
    and BatchNorm counters. One-hot convs get the original 4 input channels (A, C, G, T).
    """
    import re

    layer = "attn.attn.layers.layers"
    rules = (
        (
            r"^feature_encoders\.(\d+)\.resblocks\.(\d+)\.norm([12])\.",
            r"encoder.\1.resblocks.\2.bn\3.",
        ),
        (r"^feature_encoders\.", "encoder."),
        (r"^projection\.conv1\.", "conv1.0."),
        (r"^projection\.conv2\.", "conv1.1."),
        (r"^projection\.conv\.", "conv2."),
        (
            r"^encoder\.position_embeddings\.weights\.(\d)$",
            r"attn.pos_emb.weights_\1" if legacy_names else r"attn.pos_emb.weights.\1",
        ),
        (r"^encoder\.layer_norm\.", "attn.norm."),
        (r"^encoder\.layer\.(\d+)\.attention\.layer_norm\.", layer + r".\1.0.norm."),
        (r"^encoder\.layer\.(\d+)\.attention\.self\.query\.", layer + r".\1.0.fn.to_q."),
        (r"^encoder\.layer\.(\d+)\.attention\.self\.key_value\.", layer + r".\1.0.fn.to_kv."),
        (r"^encoder\.layer\.(\d+)\.attention\.output\.dense\.", layer + r".\1.0.fn.to_out."),
        (r"^encoder\.layer\.(\d+)\.intermediate\.layer_norm\.", layer + r".\1.1.norm."),
        (r"^encoder\.layer\.(\d+)\.intermediate\.dense\.", layer + r".\1.1.fn.fn.w1."),
        (r"^encoder\.layer\.(\d+)\.output\.dense\.", layer + r".\1.1.fn.fn.w2."),
        (r"^prediction\.", ""),
    )
    state = {}
    for name, value in mm.state_dict().items():
        for pattern, replacement in rules:
            new, count = re.subn(pattern, replacement, name)
            if count:
                break
        else:
            raise AssertionError(f"no original name for {name}")
        if ONEHOT_CONV.match(name):
            value = value[:, :4]
        state[new] = value.clone()
    for i, _ in enumerate(mm.feature_encoders):
        state[f"encoder.{i}.splice_output.weight"] = torch.randn(3, 4, 1)
        state[f"encoder.{i}.tissue_output.bias"] = torch.randn(15)
    return state
