"""Scoring models: SpTransformer (hub, local directory, original checkpoint) and SpliceAI."""

from __future__ import annotations

import torch

from .base import PRECISIONS, ScoringModel, postprocess

DEFAULT_MODEL = "multimolecule/sptransformer"

__all__ = ["DEFAULT_MODEL", "ScoringModel", "load_model", "postprocess"]


def load_model(
    source: str = DEFAULT_MODEL, device: str = "cpu", precision: str = "float32"
) -> ScoringModel:
    """Load a scoring model in eval mode on ``device``.

    ``source``: ``spliceai`` or ``spliceai:/dir`` for SpliceAI-10k; otherwise an SpTransformer
    hub id, a local multimolecule-format directory, or an original ``.ckpt`` file.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    source = str(source)
    if source == "spliceai" or source.startswith("spliceai:"):
        from .spliceai import load_spliceai

        model = load_spliceai(source.partition(":")[2] or None)
    else:
        from .loading import load_sptransformer

        model = load_sptransformer(source)
    model.precision = precision
    return model.to(torch.device(device)).eval()
