"""Scoring models: SpTransformer (hub, local directory, original checkpoint), SpliceAI, Pangolin.

A model source is ``spliceai`` / ``spliceai:<dir>`` (SpliceAI-10k), ``pangolin`` /
``pangolin:<dir>`` (Pangolin's 8 tissue channels) or anything else, which is an
SpTransformer hub id, local directory or ``.ckpt`` file. :func:`parse_source` (in
``model_source``, without torch) splits a source into its family and argument, once;
:data:`FAMILIES` maps each family to its loader and
describer, so a new model family is one entry here (and its module).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..atomic import remove_stale, write_text
from ..model_source import Family, local_model_files, parse_source
from ..options import PRECISIONS, check_choice
from .base import ScoringModel, autocast_dtype, postprocess, set_backend_flags

DEFAULT_MODEL = "multimolecule/sptransformer"
log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MODEL",
    "FAMILIES",
    "ScoringModel",
    "describe_model",
    "load_model",
    "local_model_files",
    "parse_source",
    "postprocess",
    "write_model_info",
]


@dataclass(frozen=True)
class ModelFamily:
    """How to load a family's model and read its geometry, from the source's argument."""

    load: Callable[[str | None], ScoringModel]
    describe: Callable[[str | None], dict[str, Any]]


def _load_sptransformer(argument: str | None) -> ScoringModel:
    from .loading import load_sptransformer

    return load_sptransformer(argument or DEFAULT_MODEL)


def _describe_sptransformer(argument: str | None) -> dict[str, Any]:
    from .loading import check_weights_header, read_config, resolve_config_dir
    from .sptransformer import SpTransformer

    source = argument or DEFAULT_MODEL
    directory = resolve_config_dir(source)
    if directory is None:  # an original .ckpt: its geometry is only in its tensors
        model = _load_sptransformer(source)
        flank, channels, chunk = model.flank, model.channels, model.default_chunk_size
    else:
        config = read_config(directory)
        if Path(source).expanduser().is_dir():  # local weights (a hub id fetched only config)
            check_weights_header(directory, config)
        flank, channels, chunk = config.flank, config.channels, SpTransformer.default_chunk_size
    return {"flank": flank, "channels": list(channels), "default_chunk_size": chunk}


def _load_spliceai(argument: str | None) -> ScoringModel:
    from .spliceai import load_spliceai

    return load_spliceai(argument)


def _describe_spliceai(argument: str | None) -> dict[str, Any]:
    from .spliceai import SPLICEAI_CHANNELS, SPLICEAI_CHUNK_SIZE, SPLICEAI_FLANK

    return {
        "flank": SPLICEAI_FLANK,
        "channels": list(SPLICEAI_CHANNELS),
        "default_chunk_size": SPLICEAI_CHUNK_SIZE,
    }


def _load_pangolin(argument: str | None) -> ScoringModel:
    from .pangolin import load_pangolin

    return load_pangolin(argument)


def _describe_pangolin(argument: str | None) -> dict[str, Any]:
    from .pangolin import PANGOLIN_CHANNELS, PANGOLIN_CHUNK_SIZE, PANGOLIN_FLANK

    return {
        "flank": PANGOLIN_FLANK,
        "channels": list(PANGOLIN_CHANNELS),
        "default_chunk_size": PANGOLIN_CHUNK_SIZE,
    }


FAMILIES: dict[Family, ModelFamily] = {
    "sptransformer": ModelFamily(_load_sptransformer, _describe_sptransformer),
    "spliceai": ModelFamily(_load_spliceai, _describe_spliceai),
    "pangolin": ModelFamily(_load_pangolin, _describe_pangolin),
}


def load_model(
    source: str = DEFAULT_MODEL, device: str = "cpu", precision: str = "float32"
) -> ScoringModel:
    """Load a scoring model in eval mode on ``device``, computing in ``precision``.

    ``float32`` is exact float32 everywhere (TF32 off on CUDA); ``tf32`` allows TF32 on CUDA;
    ``bfloat16`` autocasts on CPUs and GPUs; ``float16`` on GPUs only (float32 on a CPU, with a
    warning). See docs/precision.md.

    ``source``: ``spliceai`` or ``spliceai:/dir`` for SpliceAI-10k, ``pangolin`` or
    ``pangolin:/dir`` for Pangolin; otherwise an SpTransformer
    hub id, a local multimolecule-format directory, or an original ``.ckpt`` file.
    """
    check_choice("precision", precision, PRECISIONS)
    family, argument = parse_source(source)
    model = FAMILIES[family].load(argument)
    model.precision = precision
    kind = torch.device(device).type
    set_backend_flags(precision, device)
    if precision in ("bfloat16", "float16") and autocast_dtype(precision, kind) is None:
        log.warning("precision %s applies on CUDA only; %s computes in float32", precision, device)
    return model.to(torch.device(device)).eval()


def describe_model(source: str = DEFAULT_MODEL) -> dict[str, Any]:
    """``flank``, ``channels`` and ``default_chunk_size`` of a model, from its config only.

    Reads no weights where the source has a config (hub id: only ``config.json`` is fetched); a
    local directory's ``model.safetensors`` header is checked against the config (names,
    shapes, dtypes, file size); an original ``.ckpt`` file is read, since its geometry is only
    in its tensors.
    """
    family, argument = parse_source(source)
    return FAMILIES[family].describe(argument)


def write_model_info(source: str, path: str | os.PathLike | None = None) -> str:
    """The ``model.json`` text (source plus :func:`describe_model`); written atomically to
    ``path`` when given."""
    text = json.dumps({"source": source, **describe_model(source)}, indent=1) + "\n"
    if path is not None:
        remove_stale(path)
        write_text(path, text)
    return text
