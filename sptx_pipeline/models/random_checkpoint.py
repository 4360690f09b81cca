"""Random-weight SpTransformer checkpoints, for tests and offline demos ONLY.

``write_random_checkpoint`` writes a directory in multimolecule's ``save_pretrained`` format
(``config.json`` + ``model.safetensors``) without needing multimolecule. The weights are random:
the predictions mean nothing biologically. They exist so that CI and offline users can run the
whole pipeline end to end; use the published ``multimolecule/sptransformer`` for real scores.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from .loading import CONFIG_FILE, ONEHOT_CONV, WEIGHTS_FILE
from .sptransformer import SpTransformer, SpTransformerConfig

log = logging.getLogger(__name__)

# A small geometry that runs the example in seconds on a CPU.
TINY_CONFIG: dict[str, Any] = dict(
    flank=200,
    hidden_size=16,
    encoder_sizes=(16, 8),
    attention_hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_local_attention_heads=1,
    intermediate_size=64,
    bucket_size=16,
    max_seq_len=1280,
)


def random_state_dict(model: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random values for every tensor of ``model``: scaled normal weights, BatchNorm statistics
    away from (0, 1), non-zero position embeddings, and the N one-hot column zero."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, tensor in model.state_dict().items():
        shape = tensor.shape
        if name.endswith("num_batches_tracked"):
            value = torch.zeros((), dtype=torch.long)
        elif name.endswith("running_var"):
            value = torch.rand(shape, generator=gen) * 1.5 + 0.25
        elif name.endswith("running_mean"):
            value = torch.randn(shape, generator=gen) * 0.3
        elif "norm" in name and name.endswith("weight"):
            value = 1 + 0.2 * torch.randn(shape, generator=gen)
        elif "position_embeddings" in name:
            value = torch.randn(shape, generator=gen) * 0.5
        else:
            fan_in = tensor[0].numel() if tensor.dim() > 1 else tensor.numel()
            value = torch.randn(shape, generator=gen) / fan_in**0.5
        if ONEHOT_CONV.match(name):
            value[:, 4] = 0  # N is the all-zero one-hot, as in the converted published weights
        state[name] = value.contiguous()
    return state


def write_random_checkpoint(
    directory: str | os.PathLike, seed: int = 0, **config_overrides: Any
) -> Path:
    """Write a random-weight SpTransformer (TESTING ONLY) in multimolecule format; returns the dir.

    ``config_overrides`` are :class:`SpTransformerConfig` fields (e.g. ``**TINY_CONFIG``).
    """
    from safetensors.torch import save_file

    config = dataclasses.replace(SpTransformerConfig(), **config_overrides)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = random_state_dict(SpTransformer(config), seed)
    content = config.to_multimolecule()
    content["description"] = "RANDOM WEIGHTS for testing only; predictions are meaningless"
    (directory / CONFIG_FILE).write_text(json.dumps(content, indent=2) + "\n")
    save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})
    log.warning("wrote a RANDOM-weight SpTransformer to %s (testing only)", directory)
    return directory
