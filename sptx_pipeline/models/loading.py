"""Load SpTransformer weights: hub id, multimolecule directory, or the original ``.ckpt``.

Every load is strict: missing or unexpected keys, wrong shapes, non-finite values and configs of
another model fail with a message that names what is wrong. Nothing is loaded partially.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, MissingInputError
from ..provenance import sha256_file
from .sptransformer import SpTransformer, SpTransformerConfig

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

# Original checkpoint entries that the inference model does not use.
IGNORED_ORIGINAL = re.compile(
    r"^encoder\.\d+\.(splice_output|tissue_output)\.|(^|\.)num_batches_tracked$"
)


# The 1x1 convs that read the one-hot input (A, C, G, T[, N]).
ONEHOT_CONV = re.compile(r"^(projection|feature_encoders\.\d+)\.conv1\.weight$")


def load_sptransformer(source: str | os.PathLike, **overrides: Any) -> SpTransformer:
    """Load SpTransformer in eval mode from a hub id, a local directory or an original ``.ckpt``.

    ``overrides`` replace config values (e.g. ``flank`` for an original checkpoint, whose file
    does not record it). ``model.provenance`` gets the source and the weights file's SHA-256.
    """
    path = resolve_source(source)
    if path.is_dir():
        config = read_config(path, **overrides)
        weights = path / WEIGHTS_FILE
        state = _read_safetensors(weights)
        state = {_strip_prefix(key): value for key, value in state.items()}
    else:
        weights = path
        state = convert_original_state_dict(_read_torch(path))
        config = config_from_state_dict(state, **overrides)
    model = SpTransformer(config)
    load_strict(model, state, str(weights))
    model.provenance = {"source": str(source), "sha256": sha256_file(weights)}
    log.info("loaded SpTransformer from %s (flank %d)", source, config.flank)
    return model.eval()


def resolve_source(source: str | os.PathLike) -> Path:
    """A local directory or file as is; a hub id downloaded into the Hugging Face cache."""
    path = Path(source).expanduser()
    if path.exists():
        return path
    text = str(source)
    if not HUB_ID.match(text) or text.startswith((".", "~")):
        raise MissingInputError(f"model checkpoint {text!r} does not exist")
    return _download(text)


def resolve_config_dir(source: str | os.PathLike) -> Path | None:
    """The directory holding ``config.json`` for ``source`` (a hub id fetches only that file);
    None for an original ``.ckpt`` file, whose geometry is only in its tensors."""
    path = Path(source).expanduser()
    if path.exists():
        return path if path.is_dir() else None
    text = str(source)
    if not HUB_ID.match(text) or text.startswith((".", "~")):
        raise MissingInputError(f"model checkpoint {text!r} does not exist")
    return _download(text, files=(CONFIG_FILE,))


def _download(repo_id: str, files: tuple[str, ...] = (CONFIG_FILE, WEIGHTS_FILE)) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=list(files)))
    except Exception as err:  # offline, unreachable, unknown repo: all end the same way
        raise CheckpointError(
            f"could not get model {repo_id!r} from the Hugging Face hub ({type(err).__name__}: "
            f"{err}). Offline: download it once where there is network "
            f"(`huggingface-cli download {repo_id}`, honours HF_HOME) or copy its config.json and "
            "model.safetensors into a directory and pass that directory as the model "
            "(e.g. --model /path/to/sptransformer or config key model: /path/to/sptransformer)."
        ) from err


def read_config(directory: Path, **overrides: Any) -> SpTransformerConfig:
    """The SpTransformer config of a multimolecule-format directory (no weights read)."""
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise MissingInputError(f"{directory} has no {CONFIG_FILE}: not a model directory")
    try:
        raw = json.loads(config_path.read_text())
        config = SpTransformerConfig.from_multimolecule(raw)
        return _replace(config, overrides)
    except (json.JSONDecodeError, TypeError, KeyError, ValueError) as err:
        raise CheckpointError(f"{config_path}: {err}") from err


def _replace(config: SpTransformerConfig, overrides: Mapping[str, Any]) -> SpTransformerConfig:
    if not overrides:
        return config
    return dataclasses.replace(config, **overrides)


def _strip_prefix(key: str) -> str:
    return key[len("model.") :] if key.startswith("model.") else key


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not path.is_file():
        raise MissingInputError(f"{path.parent} has no {path.name}")
    try:
        return load_file(str(path))
    except Exception as err:
        raise CheckpointError(f"{path} is not a readable safetensors file: {err}") from err


def _read_torch(path: Path) -> dict[str, torch.Tensor]:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"{path} is neither a model directory nor a readable original checkpoint: {err}. "
            "Only tensors are unpickled (weights_only); if this is a trusted checkpoint that "
            "also pickles other objects, re-save just its tensors: torch.save(torch.load(path, "
            "weights_only=False)['state_dict'], 'plain.ckpt')"
        ) from err
    if isinstance(data, Mapping) and isinstance(data.get("state_dict"), Mapping):
        data = data["state_dict"]
    if not isinstance(data, Mapping) or not all(torch.is_tensor(v) for v in data.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    return dict(data)


def original_key(name: str) -> str | None:
    """Our (multimolecule) parameter name for an original-checkpoint key; None if unused."""
    if IGNORED_ORIGINAL.search(name):
        return None
    rules = (
        (
            r"^encoder\.(\d+)\.resblocks\.(\d+)\.bn([12])\.",
            r"feature_encoders.\1.resblocks.\2.norm\3.",
        ),
        (r"^encoder\.(\d+)\.", r"feature_encoders.\1."),
        (r"^conv1\.0\.", "projection.conv1."),
        (r"^conv1\.1\.", "projection.conv2."),
        (r"^conv2\.", "projection.conv."),
        (r"^attn\.pos_emb\.weights[._]([01])$", r"encoder.position_embeddings.weights.\1"),
        (r"^attn\.norm\.", "encoder.layer_norm."),
        (
            r"^attn\.attn\.layers\.layers\.(\d+)\.0\.norm\.",
            r"encoder.layer.\1.attention.layer_norm.",
        ),
        (
            r"^attn\.attn\.layers\.layers\.(\d+)\.0\.fn\.to_q\.",
            r"encoder.layer.\1.attention.self.query.",
        ),
        (
            r"^attn\.attn\.layers\.layers\.(\d+)\.0\.fn\.to_kv\.",
            r"encoder.layer.\1.attention.self.key_value.",
        ),
        (
            r"^attn\.attn\.layers\.layers\.(\d+)\.0\.fn\.to_out\.",
            r"encoder.layer.\1.attention.output.dense.",
        ),
        (
            r"^attn\.attn\.layers\.layers\.(\d+)\.1\.norm\.",
            r"encoder.layer.\1.intermediate.layer_norm.",
        ),
        (
            r"^attn\.attn\.layers\.layers\.(\d+)\.1\.fn\.fn\.w1\.",
            r"encoder.layer.\1.intermediate.dense.",
        ),
        (r"^attn\.attn\.layers\.layers\.(\d+)\.1\.fn\.fn\.w2\.", r"encoder.layer.\1.output.dense."),
        (r"^(splice|usage)\.", r"prediction.\1."),
    )
    for pattern, replacement in rules:
        new, count = re.subn(pattern, replacement, name)
        if count:
            return new
    return name  # unknown: kept, so that strict loading reports it as unexpected


def convert_original_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Original key names to ours; 4-channel one-hot convs get the zero N input column."""
    converted: dict[str, torch.Tensor] = {}
    for name, value in state.items():
        key = original_key(name)
        if key is None:
            continue
        if key in converted:
            raise CheckpointError(f"checkpoint has two entries for {key} (e.g. {name})")
        if ONEHOT_CONV.match(key) and value.dim() == 3 and value.shape[1] == 4:
            value = torch.cat([value, value.new_zeros(value.shape[0], 1, value.shape[2])], dim=1)
        converted[key] = value
    return converted


def config_from_state_dict(
    state: Mapping[str, torch.Tensor], **overrides: Any
) -> SpTransformerConfig:
    """Sizes read off the tensors; flank and head counts (not in the file) from the published
    config unless overridden."""
    try:
        layers = {int(m.group(1)) for k in state if (m := re.match(r"encoder\.layer\.(\d+)\.", k))}
        encoders = sorted(
            {int(m.group(1)) for k in state if (m := re.match(r"feature_encoders\.(\d+)\.", k))}
        )
        rows = state["encoder.position_embeddings.weights.0"].shape[1]
        cols = state["encoder.position_embeddings.weights.1"].shape[2]
        num_tissues = state["prediction.usage.weight"].shape[0]
        sizes = dict(
            hidden_size=state["projection.conv1.weight"].shape[0],
            encoder_sizes=tuple(
                state[f"feature_encoders.{i}.conv1.weight"].shape[0] for i in encoders
            ),
            attention_hidden_size=state["projection.conv.weight"].shape[0],
            num_hidden_layers=len(layers),
            intermediate_size=state["encoder.layer.0.intermediate.dense.weight"].shape[0],
            bucket_size=cols,
            max_seq_len=rows * cols,
            num_tissues=num_tissues,
            tissue_names=SpTransformerConfig().tissue_names[:num_tissues]
            if num_tissues <= 15
            else tuple(f"tissue_{i}" for i in range(num_tissues)),
        )
    except (KeyError, IndexError) as err:
        raise CheckpointError(
            f"original checkpoint lacks {err}: not an SpTransformer state dict"
        ) from err
    return SpTransformerConfig(**{**sizes, **overrides})


def load_strict(model: SpTransformer, state: Mapping[str, torch.Tensor], where: str) -> None:
    """Load every parameter and buffer, or fail naming the problem."""
    expected = {k: v for k, v in model.state_dict().items() if not _counter(k)}
    state = {k: v for k, v in state.items() if not _counter(k)}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    problems = []
    if missing:
        problems.append(f"missing keys {_some(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_some(unexpected)}")
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)}, model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if shapes:
        problems.append(f"wrong shapes ({_some(shapes)})")
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        problems.append(f"non-finite values in {_some(bad)}")
    if problems:
        raise CheckpointError(
            f"{where} is not a valid SpTransformer checkpoint: " + "; ".join(problems)
        )
    with torch.no_grad():
        result = model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    assert all(_counter(k) for k in result.missing_keys) and not result.unexpected_keys
    for key in (
        "projection.conv1.weight",
        *(f"feature_encoders.{i}.conv1.weight" for i in range(9)),
    ):
        if key in state and state[key][:, 4].abs().max() > 0:
            log.warning(
                "%s: %s has a non-zero N input column; N is treated as the all-zero one-hot "
                "of the original model, so that column is ignored",
                where,
                key,
            )


def _counter(key: str) -> bool:
    """BatchNorm's ``num_batches_tracked``: a training counter, meaningless for inference."""
    return key.endswith("num_batches_tracked")


def _some(items: list[str], limit: int = 5) -> str:
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more
