"""Scoring models: SpTransformer (hub, local directory, original checkpoint) and SpliceAI."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from .base import PRECISIONS, ScoringModel, postprocess

DEFAULT_MODEL = "multimolecule/sptransformer"
log = logging.getLogger(__name__)

__all__ = ["DEFAULT_MODEL", "ScoringModel", "describe_model", "load_model", "postprocess"]


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
    if precision != "float32" and torch.device(device).type != "cuda":
        log.warning("precision %s applies on CUDA only; %s computes in float32", precision, device)
    return model.to(torch.device(device)).eval()


def describe_model(source: str = DEFAULT_MODEL) -> dict[str, Any]:
    """``flank``, ``channels`` and ``default_chunk_size`` of a model, from its config only.

    Reads no weights where the source has a config (hub id: only ``config.json`` is fetched); a
    local directory's ``model.safetensors`` header is checked against the config (names,
    shapes, dtypes, file size); an original ``.ckpt`` file is read, since its geometry is only
    in its tensors.
    """
    source = str(source)
    if source == "spliceai" or source.startswith("spliceai:"):
        return _describe_spliceai()
    from .loading import resolve_config_dir
    from .sptransformer import SpTransformer

    directory = resolve_config_dir(source)
    if directory is None:
        model = load_model(source)
        flank, channels, chunk = model.flank, model.channels, model.default_chunk_size
    else:
        from .loading import check_weights_header, read_config

        config = read_config(directory)
        if Path(source).expanduser().is_dir():  # local weights (a hub id fetched only config)
            check_weights_header(directory, config)
        flank, channels, chunk = config.flank, config.channels, SpTransformer.default_chunk_size
    return {"flank": flank, "channels": list(channels), "default_chunk_size": chunk}


def _describe_spliceai() -> dict[str, Any]:
    try:
        from .spliceai import SPLICEAI_CHANNELS, SPLICEAI_CHUNK_SIZE, SPLICEAI_FLANK
    except ImportError:  # the SpliceAI module is optional; these are SpliceAI-10k's constants
        SPLICEAI_FLANK, SPLICEAI_CHUNK_SIZE = 5000, 5000
        SPLICEAI_CHANNELS = ("no_splice", "acceptor", "donor")
    return {
        "flank": SPLICEAI_FLANK,
        "channels": list(SPLICEAI_CHANNELS),
        "default_chunk_size": SPLICEAI_CHUNK_SIZE,
    }
