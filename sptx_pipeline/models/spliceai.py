"""SpliceAI-10k (Jaganathan et al., Cell 2019) in PyTorch, loading the published Keras weights.

The official tool scores a sequence with five models (``spliceai1.h5`` .. ``spliceai5.h5``) and
averages their softmax outputs. Each model is: one-hot input (A, C, G, T; N = all zero), a 1x1
conv to 32 channels, 16 residual blocks ``x + conv(relu(bn(conv(relu(bn(x))))))`` (kernel 11,
dilation 1 / kernel 11, dilation 4 / kernel 21, dilation 10 / kernel 41, dilation 25, four blocks
each), a skip path (1x1 conv of the stem plus a 1x1 conv after every fourth block and after the
last one), a crop of 5000 positions on each side and a 1x1 conv to three softmax channels
(no splice, acceptor, donor).

Weights are read with h5py from the Keras HDF5 files, without TensorFlow. The layer graph is
walked from the file's ``model_config`` (layer names differ between the five files), so kernel
sizes, dilations, padding and the crop come from the file, not from constants here.

``logits`` returns the log of the averaged probabilities, so the generic post-processing
(softmax over channels 0-2) gives back exactly the averaged probabilities the official tool
reports.

Convolutions run without padding ("valid") and each residual input is cropped to match. This
gives the same numbers as Keras's "same" zero padding followed by the final crop, because the
network's receptive field equals the crop: no output position ever sees a padded value (checked
at load time). It skips computing the edge positions that the crop throws away.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..channels import SPLICE_CHANNELS
from ..errors import CheckpointError, MissingInputError
from ..provenance import weights_provenance
from .base import ScoringModel

SPLICEAI_FLANK = 5000
SPLICEAI_CHUNK_SIZE = 5000
SPLICEAI_CHANNELS = SPLICE_CHANNELS
SPLICEAI_FILES = tuple(f"spliceai{i}.h5" for i in range(1, 6))
N_BASES = 4  # A, C, G, T; token 4 (N) is the all-zero one-hot

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- architecture


@dataclass
class ConvSpec:
    """One Keras Conv1D: kernel ``[k, in, out]`` as stored, its bias and geometry."""

    kernel: np.ndarray
    bias: np.ndarray
    dilation: int = 1
    padding: str = "valid"

    @property
    def pad_left_right(self) -> tuple[int, int]:
        """Zero padding Keras/TensorFlow applies for 'same' (extra position on the right)."""
        if self.padding == "valid":
            return 0, 0
        total = (self.kernel.shape[0] - 1) * self.dilation
        return total // 2, total - total // 2


@dataclass
class BatchNormSpec:
    """Keras BatchNormalization at inference: ``gamma * (x - mean) / sqrt(var + eps) + beta``."""

    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float


@dataclass
class BlockSpec:
    """Residual block ``x + conv2(relu(bn2(conv1(relu(bn1(x))))))``."""

    bn1: BatchNormSpec
    conv1: ConvSpec
    bn2: BatchNormSpec
    conv2: ConvSpec


@dataclass
class SpliceAISpec:
    """One SpliceAI Keras model, as read from its HDF5 file."""

    stem: ConvSpec
    stem_skip: ConvSpec
    blocks: list[BlockSpec]
    skips: dict[int, ConvSpec]  # block index (after which) -> 1x1 conv added into the skip sum
    crop: tuple[int, int]
    head: ConvSpec
    source: str = ""


# --------------------------------------------------------------------------- reading Keras HDF5


class _KerasGraph:
    """The layer graph of a Keras 2 functional model, with weights, from an HDF5 file."""

    def __init__(self, path: Path) -> None:
        import h5py

        self.path = path
        with h5py.File(path, "r") as handle:
            config = handle.attrs.get("model_config")
            if config is None:
                raise CheckpointError(f"{path} has no Keras 'model_config': not a Keras model file")
            config = json.loads(config.decode() if isinstance(config, bytes) else config)
            self.layers = {layer["name"]: layer for layer in config["config"]["layers"]}
            self.weights = {name: self._read_weights(handle, name) for name in self.layers}
        self.inputs = {name: self._inbound(layer) for name, layer in self.layers.items()}
        self.consumers: dict[str, list[str]] = {name: [] for name in self.layers}
        for name, sources in self.inputs.items():
            for source in sources:
                self.consumers[source].append(name)

    @staticmethod
    def _read_weights(handle: Any, name: str) -> dict[str, np.ndarray]:
        group = handle["model_weights"].get(name) if "model_weights" in handle else handle.get(name)
        if group is None:
            return {}
        names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"]]
        # "conv1d_3/kernel:0" -> "kernel"
        return {n.rsplit("/", 1)[-1].split(":")[0]: np.asarray(group[n]) for n in names}

    @staticmethod
    def _inbound(layer: dict) -> list[str]:
        nodes = layer.get("inbound_nodes") or []
        return [entry[0] for entry in nodes[0]] if nodes else []

    def kind(self, name: str) -> str:
        return self.layers[name]["class_name"]

    def only_consumer(self, name: str, kind: str, exclude: AbstractSet[str] = frozenset()) -> str:
        found = [c for c in self.consumers[name] if self.kind(c) == kind and c not in exclude]
        if len(found) != 1:
            raise CheckpointError(
                f"{self.path}: expected one {kind} after layer {name!r}, found {found}: "
                "not a SpliceAI model"
            )
        return found[0]

    def conv(self, name: str) -> ConvSpec:
        cfg = self.layers[name]["config"]
        weights = self.weights[name]
        dilation = cfg.get("dilation_rate", 1)
        dilation = dilation[0] if isinstance(dilation, list) else dilation
        strides = cfg.get("strides", 1)
        if (strides[0] if isinstance(strides, list) else strides) != 1:
            raise CheckpointError(
                f"{self.path}: layer {name} has strides != 1: not a SpliceAI model"
            )
        kernel = weights["kernel"]
        bias = weights.get("bias", np.zeros(kernel.shape[-1], kernel.dtype))
        return ConvSpec(kernel, bias, int(dilation), cfg.get("padding", "valid"))

    def batchnorm(self, name: str) -> BatchNormSpec:
        cfg = self.layers[name]["config"]
        weights = self.weights[name]
        mean, var = weights["moving_mean"], weights["moving_variance"]
        return BatchNormSpec(
            gamma=weights.get("gamma", np.ones_like(mean)),
            beta=weights.get("beta", np.zeros_like(mean)),
            mean=mean,
            var=var,
            eps=float(cfg.get("epsilon", 1e-3)),
        )

    def activation(self, name: str) -> str:
        return self.layers[name]["config"].get("activation", "linear")


def read_keras_spliceai(path: str | Path) -> SpliceAISpec:
    """Walk a SpliceAI Keras HDF5 graph from its input to its softmax output."""
    graph = _KerasGraph(Path(path))
    (input_name,) = [n for n in graph.layers if graph.kind(n) == "InputLayer"]
    stem_name = graph.only_consumer(input_name, "Conv1D")
    # The stem feeds the first block's BatchNormalization and the first skip conv.
    stem_skip_name = graph.only_consumer(stem_name, "Conv1D")
    x = stem_name
    blocks: list[BlockSpec] = []
    skips: dict[int, ConvSpec] = {}
    skip_names: list[str] = []
    while True:
        bns = [c for c in graph.consumers[x] if graph.kind(c) == "BatchNormalization"]
        if not bns:
            break
        bn1 = bns[0]
        act1 = graph.only_consumer(bn1, "Activation")
        conv1 = graph.only_consumer(act1, "Conv1D")
        bn2 = graph.only_consumer(conv1, "BatchNormalization")
        act2 = graph.only_consumer(bn2, "Activation")
        conv2 = graph.only_consumer(act2, "Conv1D")
        add = graph.only_consumer(conv2, "Add")
        if set(graph.inputs[add]) != {conv2, x} or graph.activation(act1) != "relu":
            raise CheckpointError(f"{path}: unexpected residual block at {add!r}")
        blocks.append(
            BlockSpec(
                graph.batchnorm(bn1), graph.conv(conv1), graph.batchnorm(bn2), graph.conv(conv2)
            )
        )
        x = add
        skip = [c for c in graph.consumers[x] if graph.kind(c) == "Conv1D"]
        if skip:
            skips[len(blocks) - 1] = graph.conv(skip[0])
            skip_names.append(skip[0])
    if not blocks or not skip_names:
        raise CheckpointError(
            f"{path}: no residual blocks or skip convs found: not a SpliceAI model"
        )
    # The skip sum (Add chain) ends in the Cropping1D, then the softmax head.
    node = skip_names[-1]
    while graph.kind(node) != "Cropping1D":
        node = graph.consumers[node][0]
    cropping = graph.layers[node]["config"]["cropping"]
    crop = tuple(int(c) for c in (cropping if isinstance(cropping, list) else (cropping,) * 2))
    head_name = graph.only_consumer(node, "Conv1D")
    if graph.activation(head_name) != "softmax":
        raise CheckpointError(f"{path}: the output layer {head_name!r} is not a softmax")
    pointwise = [stem_name, stem_skip_name, head_name, *skip_names]
    if any(graph.conv(name).kernel.shape[0] != 1 for name in pointwise):
        raise CheckpointError(f"{path}: stem, skip and output convs must be 1x1 as in SpliceAI")
    return SpliceAISpec(
        stem=graph.conv(stem_name),
        stem_skip=graph.conv(stem_skip_name),
        blocks=blocks,
        skips=skips,
        crop=crop,
        head=graph.conv(head_name),
        source=str(path),
    )


# --------------------------------------------------------------------------- PyTorch modules


def _conv_from_keras(spec: ConvSpec) -> nn.Conv1d:
    """Keras Conv1D kernel ``[k, in, out]`` -> torch Conv1d weight ``[out, in, k]`` (no padding)."""
    k, n_in, n_out = spec.kernel.shape
    conv = nn.Conv1d(n_in, n_out, k, dilation=spec.dilation)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(spec.kernel.transpose(2, 1, 0))))
        conv.bias.copy_(torch.from_numpy(spec.bias))
    return conv


def _bn_from_keras(spec: BatchNormSpec) -> nn.BatchNorm1d:
    bn = nn.BatchNorm1d(len(spec.mean), eps=spec.eps)
    with torch.no_grad():
        bn.weight.copy_(torch.from_numpy(spec.gamma))
        bn.bias.copy_(torch.from_numpy(spec.beta))
        bn.running_mean.copy_(torch.from_numpy(spec.mean))
        bn.running_var.copy_(torch.from_numpy(spec.var))
    return bn


def _crop(x: torch.Tensor, left: int, right: int) -> torch.Tensor:
    return x[..., left : x.shape[-1] - right]


class ResidualBlock(nn.Module):
    """``x + conv2(relu(bn2(conv1(relu(bn1(x))))))`` with unpadded convs; ``x`` is cropped."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        self.bn1, self.bn2 = _bn_from_keras(spec.bn1), _bn_from_keras(spec.bn2)
        self.conv1, self.conv2 = _conv_from_keras(spec.conv1), _conv_from_keras(spec.conv2)
        left1, right1 = spec.conv1.pad_left_right
        left2, right2 = spec.conv2.pad_left_right
        self.trim = (left1 + left2, right1 + right2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(F.relu(self.bn1(x)))
        y = self.conv2(F.relu(self.bn2(y)))
        return _crop(x, *self.trim) + y


class SpliceAINet(nn.Module):
    """One of the five SpliceAI-10k models; returns log-softmax ``[B, 3, T]``."""

    def __init__(self, spec: SpliceAISpec) -> None:
        super().__init__()
        self.stem = _conv_from_keras(spec.stem)
        self.stem_skip = _conv_from_keras(spec.stem_skip)
        self.blocks = nn.ModuleList(ResidualBlock(b) for b in spec.blocks)
        self.skip_after = sorted(spec.skips)
        self.skips = nn.ModuleList(_conv_from_keras(spec.skips[i]) for i in self.skip_after)
        self.head = _conv_from_keras(spec.head)
        self.crop = spec.crop
        trimmed = np.sum([b.trim for b in self.blocks], axis=0) if self.blocks else (0, 0)
        self.receptive = (int(trimmed[0]), int(trimmed[1]))
        if self.receptive[0] > self.crop[0] or self.receptive[1] > self.crop[1]:
            raise CheckpointError(
                f"{spec.source}: receptive field {self.receptive} exceeds the crop {self.crop}; "
                "unpadded convolutions would not reproduce Keras 'same' padding"
            )

    def forward(self, onehot: torch.Tensor) -> torch.Tensor:
        """One-hot ``[B, 4, L]`` -> log-probabilities ``[B, 3, L - crop]`` (float32 path)."""
        return torch.log_softmax(self.head(self.features(onehot)), dim=1)

    def features(self, onehot: torch.Tensor) -> torch.Tensor:
        """The skip sum at the output positions ``[B, 32, T]``, the input of the 1x1 head
        (Pangolin's networks share this trunk and differ in their heads)."""
        left, right = self.crop
        x = self.stem(onehot)
        # Skip terms are cropped to the output positions before their 1x1 convs (which commute
        # with cropping); ``done`` is how much the unpadded blocks have trimmed so far.
        total = self.stem_skip(_crop(x, left, right))
        done = [0, 0]
        skips = dict(zip(self.skip_after, self.skips, strict=True))
        for i, block in enumerate(self.blocks):
            x = block(x)
            done[0] += block.trim[0]
            done[1] += block.trim[1]
            if i in skips:
                total = total + skips[i](_crop(x, left - done[0], right - done[1]))
        return total

    def forward_low(self, tokens: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Tokens ``[B, L]`` -> log-probabilities ``[B, 3, L - crop]``, convolutions in ``dtype``.

        The low-precision path (``precision: bfloat16``): activations are ``[B, L, C]``
        (channels last, which oneDNN convolves without reordering), BatchNorm 2 is folded into
        conv 1, the one-hot stem is a table lookup; the residual stream, the skip sum, the head
        and the log-softmax stay float32, and only each convolution's input is rounded to
        ``dtype`` (about 2x less error than a bfloat16 residual stream, at the same speed).
        """
        left, right = self.crop
        weights = self._low_weights(dtype, tokens.device)
        x = F.embedding(tokens, weights["stem"])  # [B, L, 32], float32
        total = F.linear(x[:, left : x.shape[1] - right], *weights["stem_skip"])
        done = [0, 0]
        skips = dict(zip(self.skip_after, weights["skips"], strict=True))
        for i, (block, prepared) in enumerate(zip(self.blocks, weights["blocks"], strict=True)):
            scale1, shift1, conv1, conv2 = prepared
            h = torch.relu_(torch.addcmul(shift1, x, scale1)).to(dtype)
            h = torch.relu_(_conv_last(h, *conv1))
            y = _conv_last(h, *conv2)
            x = x[:, block.trim[0] : x.shape[1] - block.trim[1]] + y
            done[0] += block.trim[0]
            done[1] += block.trim[1]
            if i in skips:
                total = total + F.linear(
                    x[:, left - done[0] : x.shape[1] - (right - done[1])], *skips[i]
                )
        return torch.log_softmax(F.linear(total, *weights["head"]), dim=-1).transpose(1, 2)

    def _low_weights(self, dtype: torch.dtype, device: torch.device) -> dict[str, Any]:
        """The folded, ``dtype``-cast weights of :meth:`forward_low`, made once per dtype/device
        (not in the state dict: the stored weights stay the published float32 ones)."""
        key = (dtype, device)
        cache: dict[tuple[torch.dtype, torch.device], dict[str, Any]] = self.__dict__.setdefault(
            "_low_cache", {}
        )
        if key not in cache:
            with torch.no_grad():
                table = torch.zeros(N_BASES + 1, self.stem.out_channels, device=device)
                table[:N_BASES] = self.stem.weight[:, :, 0].t()
                blocks = []
                for block in self.blocks:
                    scale1, shift1 = _bn_scale_shift(block.bn1)
                    scale2, shift2 = _bn_scale_shift(block.bn2)
                    weight1 = block.conv1.weight * scale2[:, None, None]
                    bias1 = block.conv1.bias * scale2 + shift2
                    blocks.append(
                        (
                            scale1,
                            shift1,
                            _low_conv(weight1, bias1, block.conv1.dilation[0], dtype),
                            _low_conv(
                                block.conv2.weight, block.conv2.bias, block.conv2.dilation[0], dtype
                            ),
                        )
                    )

                def pointwise(conv: nn.Conv1d) -> tuple[torch.Tensor, torch.Tensor]:
                    return conv.weight[:, :, 0].clone(), conv.bias.clone()

                cache[key] = {
                    "stem": table + self.stem.bias,
                    "stem_skip": pointwise(self.stem_skip),
                    "blocks": blocks,
                    "skips": [pointwise(conv) for conv in self.skips],
                    "head": pointwise(self.head),
                }
        return cache[key]


def _bn_scale_shift(bn: nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor]:
    """BatchNorm at inference as ``x * scale + shift``."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


LowConv = tuple[torch.Tensor, torch.Tensor, int]


def _low_conv(
    weight: torch.Tensor, bias: torch.Tensor, dilation: int, dtype: torch.dtype
) -> LowConv:
    """A conv's weight as ``[out, in, 1, k]`` in ``dtype`` (for :func:`_conv_last`)."""
    return weight[:, :, None, :].to(dtype).contiguous(), bias.to(dtype), dilation


def _conv_last(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, dilation: int
) -> torch.Tensor:
    """Unpadded dilated conv of channels-last ``[B, L, C]`` -> ``[B, L', O]``, as a 2-D conv
    over a height-1 image in channels-last layout (oneDNN's native layout: no reorders)."""
    image = x.transpose(1, 2).unsqueeze(2)  # [B, C, 1, L], channels-last strides
    out = F.conv2d(image, weight, bias, dilation=(1, dilation))
    return out.squeeze(2).transpose(1, 2)


def onehot_table() -> torch.Tensor:
    """Rows A, C, G, T, N of the one-hot input: N is the all-zero row (SpliceAI, Pangolin)."""
    return torch.eye(N_BASES + 1)[:, :N_BASES]


def one_hot(tokens: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Tokens A=0, C=1, G=2, T=3, N=4 -> ``[B, 4, L]`` with N the all-zero column."""
    if tokens.numel() and (tokens.min() < 0 or tokens.max() > N_BASES):
        raise ValueError(f"tokens must be in 0..{N_BASES} (A, C, G, T, N)")
    return table[tokens.long()].transpose(1, 2)


class SpliceAI(ScoringModel):
    """SpliceAI-10k ensemble: the five published models, probabilities averaged.

    ``logits(tokens)`` returns ``log(mean_m softmax_m)`` so that :meth:`postprocess` (softmax over
    the three channels) yields the averaged probabilities of the official tool.
    """

    channels = SPLICEAI_CHANNELS
    default_chunk_size = SPLICEAI_CHUNK_SIZE

    def __init__(self, specs: list[SpliceAISpec]) -> None:
        super().__init__()
        if not specs:
            raise ValueError("SpliceAI needs at least one model")
        crops = {spec.crop for spec in specs}
        if len(crops) != 1 or len(set(next(iter(crops)))) != 1:
            raise ValueError(f"SpliceAI models disagree on or have asymmetric crops: {crops}")
        self.flank = next(iter(crops))[0]
        self.nets = nn.ModuleList(SpliceAINet(spec) for spec in specs)
        self.register_buffer("onehot_table", onehot_table(), persistent=False)

    def onehot(self, tokens: torch.Tensor) -> torch.Tensor:
        return one_hot(tokens, self.onehot_table)

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        low = _low_dtype(tokens.device)
        if low is not None:
            self.onehot(tokens)  # validates the tokens
            with torch.autocast(tokens.device.type, enabled=False):
                logps = torch.stack([net.forward_low(tokens.long(), low) for net in self.nets])
        else:
            x = self.onehot(tokens).to(self.onehot_table.dtype)
            logps = torch.stack([net(x) for net in self.nets])  # [M, B, 3, T]
        mean = torch.logsumexp(logps.float(), dim=0) - np.log(len(self.nets))
        return mean.transpose(1, 2)  # [B, T, 3]


def _low_dtype(device: torch.device) -> torch.dtype | None:
    """The dtype a CPU autocast asks for (``precision: bfloat16``), else None.

    On CUDA the float32 modules run under the autocast as they are (cuDNN converts
    efficiently); on a CPU the channels-last path of :meth:`SpliceAINet.forward_low` is ~2x
    faster than autocasting the float32 modules (no per-op casts and layout reorders).
    """
    if device.type != "cpu" or not torch.is_autocast_enabled("cpu"):
        return None
    dtype = torch.get_autocast_dtype("cpu")
    return dtype if dtype != torch.float32 else None


# --------------------------------------------------------------------------- loading


def spliceai_package_models() -> Path | None:
    """The installed ``spliceai`` package's ``models/`` folder, found without importing it.

    (``import spliceai`` imports keras, which is neither needed nor wanted here.)
    """
    spec = importlib.util.find_spec("spliceai")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def load_spliceai(directory: str | Path | None = None) -> SpliceAI:
    """Load the five SpliceAI-10k models from ``directory`` (default: the ``spliceai`` package)."""
    if directory is None:
        folder = spliceai_package_models()
        if folder is None:
            raise MissingInputError(
                "model 'spliceai' needs the SpliceAI weights: `pip install --no-deps spliceai` "
                "(or `pip install sptx-pipeline[spliceai]`), or give a directory holding "
                f"{', '.join(SPLICEAI_FILES)} as `spliceai:/path/to/dir`"
            )
        source = "spliceai (package)"
    else:
        folder = Path(directory).expanduser()
        source = f"spliceai:{folder}"
    paths = [folder / name for name in SPLICEAI_FILES]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise MissingInputError(
            f"SpliceAI weights missing in {folder}: {', '.join(missing)}. Install them with "
            "`pip install --no-deps spliceai` (model 'spliceai'), or point `spliceai:/path/to/dir` "
            f"at a directory holding {', '.join(SPLICEAI_FILES)}"
        )
    log.info("loading SpliceAI-10k from %s", folder)
    model = SpliceAI([read_keras_spliceai(p) for p in paths])
    model.provenance = weights_provenance("spliceai", source, folder, SPLICEAI_FILES)
    return model.eval()
