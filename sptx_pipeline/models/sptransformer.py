"""SpTransformer (You et al. 2024) reimplemented in plain PyTorch for inference.

The module tree and parameter names follow multimolecule's ``SpTransformerModel`` (so its
``model.safetensors`` loads directly); the forward pass is our own and differs in three ways
that make it fast without changing the numbers beyond float rounding:

- it takes the whole window ``[B, T + 2F]`` (no extra N padding), so the conv encoders run over
  ``T + 2F`` positions and zero-pad at the window edge exactly like the original;
- one-hot 1x1 convolutions are table lookups, BatchNorm after a conv is folded into that conv,
  the query/key/value projections are one matmul, and the output heads only see the target;
- local and sorted-bucket attention are batched ``scaled_dot_product_attention`` calls over all
  buckets at once (bucket gathers instead of a dense reordering matrix).

Folding is done on the fly from the stored parameters (it costs microseconds), so the
state dict stays the multimolecule one and there is no separate "fused" mode to get wrong.

``substituted_logits`` scores ALT windows that differ from a REF window on a few positions (SNVs,
MNVs): the conv encoders are local, so each ALT's activations are computed only where they can
differ from the REF pass's (the span grown by every conv's reach) and read from the REF pass
elsewhere; the transformer, which is global, then runs on the whole ALT windows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..channels import SPLICE_CHANNELS
from ..genome import N_TOKEN
from .base import ScoringModel
from .convolution import Method, Spectra, same_conv1d

OFFICIAL_TISSUES = (
    "adipose_tissue",
    "blood",
    "blood_vessel",
    "brain",
    "colon",
    "heart",
    "kidney",
    "liver",
    "lung",
    "muscle",
    "nerve",
    "small_intestine",
    "skin",
    "spleen",
    "stomach",
)
SPTRANSFORMER_CHANNELS = SPLICE_CHANNELS + OFFICIAL_TISSUES  # the 18 outputs, in order
PLACEHOLDER_TISSUES = tuple(f"tissue_{i}" for i in range(len(OFFICIAL_TISSUES)))
KERNEL_SIZES = (11,) * 8 + (21,) * 8
DILATIONS = (1, 1, 1, 1, 4, 4, 4, 4, 10, 10, 10, 10, 20, 20, 20, 20)
DEFAULT_CHUNK_SIZE = 1000  # the target length SpTransformer was trained with
MLP_ROWS_CPU = 2048  # positions per MLP block on a CPU: a 2048 x 1024 float32 temporary is 8 MB


@dataclass(frozen=True)
class SpTransformerConfig:
    """Every architectural size of an SpTransformer checkpoint (defaults: the published one)."""

    flank: int = 4000
    hidden_size: int = 128
    encoder_sizes: tuple[int, ...] = (128, 64)
    attention_hidden_size: int = 256
    num_hidden_layers: int = 8
    num_attention_heads: int = 8
    num_local_attention_heads: int = 2
    intermediate_size: int = 1024
    bucket_size: int = 64
    max_seq_len: int = 8192
    num_splice_labels: int = 3
    num_tissues: int = 15
    tissue_names: tuple[str, ...] = field(default=OFFICIAL_TISSUES)
    batch_norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        sizes = {
            "hidden_size": self.hidden_size,
            "attention_hidden_size": self.attention_hidden_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "intermediate_size": self.intermediate_size,
            "bucket_size": self.bucket_size,
            "max_seq_len": self.max_seq_len,
            "num_tissues": self.num_tissues,
        }
        bad = {k: v for k, v in sizes.items() if not isinstance(v, int) or v <= 0}
        if bad or self.flank < 0 or any(h <= 0 for h in self.encoder_sizes):
            raise ValueError(f"SpTransformer config has non-positive sizes: {bad or sizes}")
        if self.num_splice_labels != len(SPLICE_CHANNELS):
            raise ValueError(f"num_splice_labels must be 3, got {self.num_splice_labels}")
        if self.attention_hidden_size % self.num_attention_heads:
            raise ValueError("attention_hidden_size must be divisible by num_attention_heads")
        if not 0 <= self.num_local_attention_heads <= self.num_attention_heads:
            raise ValueError("num_local_attention_heads must lie in [0, num_attention_heads]")
        if self.max_seq_len % self.bucket_size:
            raise ValueError("max_seq_len must be divisible by bucket_size")
        if len(self.tissue_names) != self.num_tissues:
            raise ValueError(
                f"{len(self.tissue_names)} tissue names for {self.num_tissues} tissues"
            )

    @property
    def channels(self) -> tuple[str, ...]:
        return SPLICE_CHANNELS + tuple(self.tissue_names)

    @classmethod
    def from_multimolecule(cls, config: Mapping[str, Any]) -> SpTransformerConfig:
        """Read a multimolecule ``config.json`` dict; placeholder tissue names become official."""
        if config.get("model_type") != "sptransformer":
            raise ValueError(
                f"config model_type is {config.get('model_type')!r}, not 'sptransformer': "
                "this is not an SpTransformer checkpoint"
            )
        for key, expected in (("hidden_act", "relu"), ("intermediate_act", "gelu")):
            if config.get(key, expected) != expected:
                raise ValueError(
                    f"unsupported {key} {config[key]!r} (SpTransformer uses {expected})"
                )
        if config.get("vocab_size", 5) != 5:
            raise ValueError(f"vocab_size must be 5 (A, C, G, U, N), got {config['vocab_size']}")
        defaults = cls()
        num_tissues = int(config.get("num_tissues", defaults.num_tissues))
        names = tuple(config.get("tissue_names") or PLACEHOLDER_TISSUES[:num_tissues])
        if names == PLACEHOLDER_TISSUES:
            names = OFFICIAL_TISSUES
        encoders = config.get("encoders")
        encoder_sizes = (
            defaults.encoder_sizes
            if encoders is None
            else tuple(int(e["hidden_size"]) for e in encoders)
        )
        keys = (
            "hidden_size",
            "attention_hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "num_local_attention_heads",
            "intermediate_size",
            "bucket_size",
            "max_seq_len",
            "num_splice_labels",
        )
        values = {k: int(config.get(k, getattr(defaults, k))) for k in keys}
        return cls(
            flank=int(config.get("context", defaults.flank)),
            encoder_sizes=encoder_sizes,
            num_tissues=num_tissues,
            tissue_names=names,
            batch_norm_eps=float(config.get("batch_norm_eps", defaults.batch_norm_eps)),
            **values,
        )

    def to_multimolecule(self) -> dict[str, Any]:
        """The multimolecule ``config.json`` content for this config."""
        values = asdict(self)
        values["context"] = values.pop("flank")
        values["encoders"] = [{"hidden_size": h} for h in values.pop("encoder_sizes")]
        values["tissue_names"] = list(self.tissue_names)
        values.update(
            model_type="sptransformer",
            architectures=["SpTransformerModel"],
            vocab_size=5,
            hidden_act="relu",
            intermediate_act="gelu",
            pad_token_id=4,
            unk_token_id=4,
            num_labels=self.num_tissues,
        )
        return values


def _pad_or_crop(x: torch.Tensor, left: int, right: int, dim: int) -> torch.Tensor:
    """Zero-pad (positive amounts) or crop (negative amounts) ``x`` along ``dim``."""
    length = x.shape[dim]
    x = x.narrow(dim, max(-left, 0), length - max(-left, 0) - max(-right, 0))
    if left > 0 or right > 0:
        pad = [0, 0] * (x.dim() - 1 - dim % x.dim()) + [max(left, 0), max(right, 0)]
        x = F.pad(x, pad)
    return x


def _bn_affine(norm: nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm as ``x * scale + shift``."""
    scale = norm.weight * torch.rsqrt(norm.running_var + norm.eps)
    return scale, norm.bias - norm.running_mean * scale


def _onehot_table(conv: nn.Conv1d) -> torch.Tensor:
    """A 1x1 conv over the one-hot input as a lookup table ``[5, out]``; N is the all-zero input."""
    table = conv.weight[:, :, 0].t().clone()
    table[N_TOKEN] = 0
    return table


Span = tuple[int, int]  # positions [start, stop) of a window


def _grow(span: Span, reach: int, length: int) -> Span:
    """Where a "same" conv reaching ``reach`` positions each side can change its output when its
    input changes on ``span`` (cut at the window's edges)."""
    return max(span[0] - reach, 0), min(span[1] + reach, length)


def _edge_padding(inputs: Span, outputs: Span, reach: int) -> tuple[int, int]:
    """Zero columns the "same" conv adds to ``inputs`` (= ``_grow(outputs)``) to compute
    ``outputs``: none inside the window, the missing ones at its edges."""
    return reach - (outputs[0] - inputs[0]), reach - (inputs[1] - outputs[1])


@dataclass
class _Patch:
    """ALT windows as a patch on REF activations: ``values`` on ``span``, elsewhere equal to
    the REF rows ``rows`` (an ALT pass stores and computes only what differs)."""

    rows: torch.Tensor  # REF row of each ALT
    span: Span
    values: torch.Tensor  # [n, C, span length]

    def read(self, ref: torch.Tensor, span: Span) -> torch.Tensor:
        """The ALT activations on ``span`` (which contains the patch's), from ``ref`` [B, C, L]."""
        out = ref[self.rows, :, span[0] : span[1]]
        out[:, :, self.span[0] - span[0] : self.span[1] - span[0]] = self.values
        return out

    def replaced(self, span: Span, values: torch.Tensor) -> _Patch:
        return _Patch(self.rows, span, values)


class ResidualBlock(nn.Module):
    """BN, ReLU, dilated conv, BN, ReLU, dilated conv, plus the input ("same" zero padding)."""

    def __init__(self, width: int, kernel_size: int, dilation: int, eps: float) -> None:
        super().__init__()
        padding = (kernel_size - 1) * dilation // 2
        self.norm1 = nn.BatchNorm1d(width, eps)
        self.conv1 = nn.Conv1d(width, width, kernel_size, dilation=dilation, padding=padding)
        self.norm2 = nn.BatchNorm1d(width, eps)
        self.conv2 = nn.Conv1d(width, width, kernel_size, dilation=dilation, padding=padding)
        self.conv_method: Method = "auto"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        block = self.prepared()
        return block.second(block.first(x), x)

    def prepared(self) -> _PreparedBlock:
        """The block's arithmetic for one pass, with BatchNorm folded."""
        scale1, shift1 = _bn_affine(self.norm1)
        scale2, shift2 = _bn_affine(self.norm2)
        # norm2 follows conv1 directly, so it folds into conv1's weights and bias.
        weight1 = self.conv1.weight * scale2[:, None, None]
        bias1 = self.conv1.bias * scale2 + shift2
        dilation = self.conv1.dilation[0]
        return _PreparedBlock(
            scale1[:, None],
            shift1[:, None],
            (weight1, bias1),
            (self.conv2.weight, self.conv2.bias),
            dilation,
            (self.conv1.kernel_size[0] - 1) * dilation // 2,
            self.conv_method,
        )


@dataclass
class _PreparedBlock:
    """A ResidualBlock for one pass: BN1 as scale and shift, BN2 folded into conv1, and each
    conv's FFT kernel spectra computed once (per frame length) for a REF pass and its ALT
    patches."""

    scale1: torch.Tensor
    shift1: torch.Tensor
    conv1: tuple[torch.Tensor, torch.Tensor]
    conv2: tuple[torch.Tensor, torch.Tensor]
    dilation: int
    reach: int  # positions each conv reads on either side
    method: Method
    spectra: tuple[Spectra, Spectra] = field(default_factory=lambda: ({}, {}))

    def first(self, x: torch.Tensor, padding: tuple[int, int] | None = None) -> torch.Tensor:
        """BN, ReLU, conv1, BN, ReLU (``padding``: as in ``same_conv1d``)."""
        h = torch.relu(torch.addcmul(self.shift1, x, self.scale1))
        return torch.relu_(self._conv(0, h, padding))

    def second(
        self, mid: torch.Tensor, x: torch.Tensor, padding: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """conv2 of the first half's output ``mid``, plus the block input ``x`` there.

        The residual stream keeps ``x``'s dtype (float32 under a bfloat16 autocast too)."""
        y = self._conv(1, mid, padding)
        return y.add_(x) if y.dtype == x.dtype else x + y

    def patch(self, x: torch.Tensor, mid: torch.Tensor, alt: _Patch) -> _Patch:
        """The block's output for ALT windows ``alt`` given the REF pass's input ``x`` and first
        half ``mid``: each conv runs only where its output can differ from the REF's."""
        length = x.shape[-1]
        mid_span = _grow(alt.span, self.reach, length)
        out_span = _grow(mid_span, self.reach, length)
        mid_inputs = _grow(out_span, self.reach, length)
        x_alt = alt.read(x, out_span)  # conv1's inputs for mid_span; the skip on out_span
        mid_values = self.first(x_alt, _edge_padding(out_span, mid_span, self.reach))
        mid_alt = alt.replaced(mid_span, mid_values).read(mid, mid_inputs)
        out = self.second(mid_alt, x_alt, _edge_padding(mid_inputs, out_span, self.reach))
        return alt.replaced(out_span, out)

    def _conv(self, i: int, x: torch.Tensor, padding: tuple[int, int] | None) -> torch.Tensor:
        weight, bias = (self.conv1, self.conv2)[i]
        return same_conv1d(x, weight, bias, self.dilation, self.method, padding, self.spectra[i])


class FeatureEncoder(nn.Module):
    """SpliceAI-style dilated residual encoder; its feature map is the skip sum."""

    def __init__(self, width: int, eps: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(5, width, 1)
        self.skip = nn.Conv1d(width, width, 1)
        self.resblocks = nn.ModuleList(
            ResidualBlock(width, k, d, eps) for k, d in zip(KERNEL_SIZES, DILATIONS, strict=True)
        )
        self.convs = nn.ModuleList(nn.Conv1d(width, width, 1) for _ in range(len(DILATIONS) // 4))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens ``[B, L]`` -> features ``[B, width, L]``."""
        return self.substituted(tokens, [])[0]

    def substituted(
        self, tokens: torch.Tensor, alts: Sequence[tuple[torch.Tensor, Span, torch.Tensor]]
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Features of REF windows ``tokens`` and of ALT windows that differ from them on a span.

        ``alts``: ``(REF rows, span, ALT tokens on the span)`` per group of ALTs. The encoder is
        local, so an ALT's activations differ from its REF's only within a span that grows by
        each conv's reach; the ALT pass computes that span alone, layer by layer, from the REF
        pass's activations. Returns the REF features and each group's ``[n, width, L]``.
        """
        x = self._embed(tokens)
        skip = _pointwise(x, self.skip)
        xs = [_Patch(rows, span, self._embed(values)) for rows, span, values in alts]
        skips = [p.replaced(p.span, _pointwise(p.values, self.skip)) for p in xs]
        taps = iter(self.convs)
        for i, module in enumerate(self.resblocks):
            block = module.prepared()
            mid = block.first(x)
            xs = [block.patch(x, mid, p) for p in xs]
            x = block.second(mid, x)
            if (i + 1) % 4 == 0:
                tap = next(taps)
                skips = [
                    s.replaced(p.span, s.read(skip, p.span) + _pointwise(p.values, tap))
                    for s, p in zip(skips, xs, strict=True)
                ]
                skip = skip + _pointwise(x, tap)
        return skip, [s.read(skip, (0, skip.shape[-1])) for s in skips]

    def _embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """The one-hot 1x1 conv as a table lookup: ``[B, L]`` -> ``[B, width, L]``."""
        x = F.embedding(tokens, _onehot_table(self.conv1)).transpose(1, 2)
        if tokens.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # channels-last memory, as the low-precision convolutions read and write it
            return x + self.conv1.bias[:, None]
        return (x + self.conv1.bias[:, None]).contiguous()


def _pointwise(x: torch.Tensor, conv: nn.Conv1d) -> torch.Tensor:
    """A 1x1 conv of ``[B, C, L]``. Under a CPU autocast (``precision: bfloat16``) it is a
    float32 matmul over the channels-last memory the low-precision encoder keeps (no cast,
    no reorder; it is a small share of the work); otherwise ``F.conv1d`` as in float32."""
    if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        with torch.autocast("cpu", enabled=False):
            out = F.linear(x.transpose(1, 2).float(), conv.weight[:, :, 0], conv.bias)
        return out.transpose(1, 2)
    return F.conv1d(x, conv.weight, conv.bias)


class Projection(nn.Module):
    """The trainable 1x1 input path (``conv1``, ``conv2``) and the fusion conv (``conv``)."""

    def __init__(self, config: SpTransformerConfig) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(5, config.hidden_size, 1)
        self.conv2 = nn.Conv1d(config.hidden_size, config.hidden_size, 1)
        features = sum(config.encoder_sizes) + config.hidden_size
        self.conv = nn.Conv1d(features, config.attention_hidden_size, 1)

    def input_table(self) -> torch.Tensor:
        """Input path composed with its share of the fusion conv: ``[5, attention]`` per token."""
        inner = _onehot_table(self.conv1) + self.conv1.bias
        inner = F.linear(inner, self.conv2.weight[:, :, 0], self.conv2.bias)
        return F.linear(inner, self.conv.weight[:, -self.conv2.out_channels :, 0])


class PositionEmbeddings(nn.Module):
    """Axial position embedding: a row table plus a column table, flattened."""

    def __init__(self, config: SpTransformerConfig) -> None:
        super().__init__()
        rows, dim = config.max_seq_len // config.bucket_size, config.attention_hidden_size
        self.weights = nn.ParameterList(
            [
                nn.Parameter(torch.zeros(1, rows, 1, dim)),
                nn.Parameter(torch.zeros(1, 1, config.bucket_size, dim)),
            ]
        )

    def forward(self) -> torch.Tensor:
        rows, cols = self.weights[0], self.weights[1]
        return (rows + cols).reshape(-1, rows.shape[-1])


class SelfAttention(nn.Module):
    """Bias-free query and key/value projections (multimolecule names)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.query = nn.Linear(dim, dim, bias=False)
        self.key_value = nn.Linear(dim, 2 * dim, bias=False)


class _Dense(nn.Module):
    def __init__(self, d_in: int, d_out: int, norm: int | None = None) -> None:
        super().__init__()
        if norm is not None:
            self.layer_norm = nn.LayerNorm(norm)
        self.dense = nn.Linear(d_in, d_out)


class Attention(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.layer_norm = nn.LayerNorm(dim)
        self.self = SelfAttention(dim)
        self.output = _Dense(dim, dim)


class TransformerLayer(nn.Module):
    """Pre-norm layer: local heads then sorted-bucket (Sinkhorn) heads, then a GELU MLP."""

    def __init__(self, config: SpTransformerConfig) -> None:
        super().__init__()
        dim = config.attention_hidden_size
        self.attention = Attention(dim)
        self.intermediate = _Dense(dim, config.intermediate_size, norm=dim)
        self.output = _Dense(config.intermediate_size, dim)
        self.heads = config.num_attention_heads
        self.local_heads = config.num_local_attention_heads
        self.bucket = config.bucket_size

    def forward(self, x: torch.Tensor, rows: tuple[int, int] | None = None) -> torch.Tensor:
        """``rows``: the bucket range ``[first, last)`` whose outputs are wanted (default all).

        Keys and values always cover the whole sequence; only queries, the MLP and the
        residual stream are restricted, so the wanted outputs are unchanged.
        """
        buckets = x.shape[1] // self.bucket
        first, last = rows or (0, buckets)
        att = self.attention
        h = F.layer_norm(x, x.shape[-1:], att.layer_norm.weight, att.layer_norm.bias)
        x = x[:, first * self.bucket : last * self.bucket]
        attended = self._attend(h, first, last)
        x = x + F.linear(attended, att.output.dense.weight, att.output.dense.bias)
        # The MLP is position-wise: on a CPU it runs over row blocks, in place, so its
        # [rows, intermediate] temporary stays small (see Encoder.forward).
        flat = x.view(-1, x.shape[-1])
        step = MLP_ROWS_CPU if x.device.type == "cpu" else flat.shape[0]
        for start in range(0, flat.shape[0], step):
            block = flat[start : start + step]
            block += self._mlp(block)
        return x

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        mid = self.intermediate
        h = F.layer_norm(x, x.shape[-1:], mid.layer_norm.weight, mid.layer_norm.bias)
        h = F.gelu(F.linear(h, mid.dense.weight, mid.dense.bias))
        return F.linear(h, self.output.dense.weight, self.output.dense.bias)

    def _attend(self, h: torch.Tensor, first: int, last: int) -> torch.Tensor:
        batch, length, dim = h.shape
        buckets, head_dim = length // self.bucket, dim // self.heads
        weight = torch.cat([self.attention.self.query.weight, self.attention.self.key_value.weight])
        qkv = F.linear(h, weight).view(batch, buckets, self.bucket, 3, self.heads, head_dim)
        # -> 3 x [batch, heads, buckets, bucket, head_dim]
        q, k, v = qkv.permute(3, 0, 4, 1, 2, 5).unbind(0)
        q = q[:, :, first:last]
        lh = self.local_heads
        outs = []
        if lh:
            outs.append(_local_attention(q[:, :lh], k[:, :lh], v[:, :lh], first))
        if lh < self.heads:
            outs.append(_sorted_bucket_attention(q[:, lh:], k[:, lh:], v[:, lh:], first))
        out = torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]
        return out.permute(0, 2, 3, 1, 4).reshape(batch, (last - first) * self.bucket, dim)


def _neighbours(x: torch.Tensor, first: int, last: int) -> torch.Tensor:
    """Buckets ``first..last-1`` of ``[N, buckets, W, D]``, each with its left and right
    neighbour (zeros beyond the ends): ``[N, last - first, 3W, D]``."""
    padded = F.pad(x, (0, 0, 0, 0, 1, 1))
    return torch.cat(
        [padded[:, first:last], padded[:, first + 1 : last + 1], padded[:, first + 2 : last + 2]],
        dim=2,
    )


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Softmax attention over 4-D ``[N, buckets, W, D]`` tensors, no mask (the fused kernel)."""
    return F.scaled_dot_product_attention(q, k, v, scale=q.shape[-1] ** -0.5)


def _local_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, first: int = 0
) -> torch.Tensor:
    """Query buckets ``first..`` attend to their own and neighbouring key buckets; keys beyond
    the sequence are masked.

    Only the first and last bucket have a missing neighbour: they are recomputed over their
    existing keys, which equals masking, and keeps every call on the unmasked fused kernel.
    """
    batch, heads, rows, width, head_dim = q.shape
    buckets = k.shape[2]
    q = q.reshape(batch * heads, rows, width, head_dim)
    k, v = (t.reshape(batch * heads, buckets, width, head_dim) for t in (k, v))
    last = first + rows
    out = _attention(q, _neighbours(k, first, last), _neighbours(v, first, last))
    for bucket in sorted({0, buckets - 1} & set(range(first, last))):
        lo, hi = max(bucket - 1, 0), min(bucket + 2, buckets)
        keys = k[:, lo:hi].reshape(batch * heads, 1, -1, head_dim)
        values = v[:, lo:hi].reshape(batch * heads, 1, -1, head_dim)
        row = bucket - first
        out[:, row : row + 1] = _attention(q[:, row : row + 1], keys, values)
    return out.view(batch, heads, rows, width, head_dim)


def _sorted_bucket_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, first: int = 0
) -> torch.Tensor:
    """Sinkhorn heads as the checkpoint uses them: top-1 bucket sort, values are the sorted keys.

    ``q`` holds the query buckets ``first..``; ``k`` and ``v`` all buckets.
    """
    batch, heads, rows, width, head_dim = q.shape
    scores = q.mean(dim=3) @ k.mean(dim=3).transpose(-1, -2) * head_dim**-0.5
    weight, index = scores.softmax(dim=-1).topk(1, dim=-1)  # [batch, heads, rows, 1]
    index = index[..., None].expand(-1, -1, -1, width, head_dim)
    sorted_k = torch.gather(k, 2, index) * weight[..., None]
    keys = torch.cat([sorted_k, k[:, :, first : first + rows]], dim=3)
    values = torch.cat([sorted_k, v[:, :, first : first + rows]], dim=3)
    flat = (batch * heads, rows, -1, head_dim)
    out = _attention(q.reshape(flat), keys.reshape(flat), values.reshape(flat))
    return out.view(batch, heads, rows, width, head_dim)


class Encoder(nn.Module):
    def __init__(self, config: SpTransformerConfig) -> None:
        super().__init__()
        self.position_embeddings = PositionEmbeddings(config)
        self.layer = nn.ModuleList(
            TransformerLayer(config) for _ in range(config.num_hidden_layers)
        )
        self.layer_norm = nn.LayerNorm(config.attention_hidden_size)

    def forward(self, x: torch.Tensor, start: int = 0, end: int | None = None) -> torch.Tensor:
        """Hidden states ``[B, S, A]`` -> normalised outputs for positions ``[start, end)``.

        Every layer but the last needs all positions (they are the next layer's keys); the last
        one computes only the buckets that hold the wanted positions.
        """
        if x.device.type == "cpu" and x.shape[0] > 1:
            # One window at a time keeps the layers' temporaries under glibc's 32 MB mmap
            # threshold, so freed blocks are reused instead of page-faulted in afresh each
            # time (that cost ~15% of the CPU time at batch 2).
            return torch.cat([self(window[None], start, end) for window in x])
        end = x.shape[1] if end is None else end
        bucket = self.position_embeddings.weights[1].shape[2]
        rows = (start // bucket, -(-end // bucket))
        x = x + self.position_embeddings().to(x.dtype)
        for i, layer in enumerate(self.layer):
            x = layer(x, rows if i == len(self.layer) - 1 else None)
        if not len(self.layer):
            x = x[:, rows[0] * bucket : rows[1] * bucket]
        x = x[:, start - rows[0] * bucket : end - rows[0] * bucket]
        return F.layer_norm(x, x.shape[-1:], self.layer_norm.weight, self.layer_norm.bias)


class PredictionHead(nn.Module):
    def __init__(self, config: SpTransformerConfig) -> None:
        super().__init__()
        self.splice = nn.Conv1d(config.attention_hidden_size, config.num_splice_labels, 1)
        self.usage = nn.Conv1d(config.attention_hidden_size, config.num_tissues, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = torch.cat([self.splice.weight, self.usage.weight])[:, :, 0]
        return F.linear(x, weight, torch.cat([self.splice.bias, self.usage.bias]))


class SpTransformer(ScoringModel):
    """SpTransformer on whole windows: tokens ``[B, T + 2F]`` -> logits ``[B, T, 3 + tissues]``."""

    default_chunk_size = DEFAULT_CHUNK_SIZE
    reuses_reference = True  # substituted_logits: ALT conv passes patch the REF pass

    def __init__(self, config: SpTransformerConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or SpTransformerConfig()
        self.flank = config.flank
        self.max_seq_len = config.max_seq_len
        self.channels = config.channels
        self.feature_encoders = nn.ModuleList(
            FeatureEncoder(width, config.batch_norm_eps) for width in config.encoder_sizes
        )
        self.projection = Projection(config)
        self.encoder = Encoder(config)
        self.prediction = PredictionHead(config)

    @property
    def conv_method(self) -> Method:
        """How the dilated encoder convolutions run: ``auto`` (FFT on CPU), ``fft``, ``direct``."""
        methods = {
            block.conv_method for block in self.modules() if isinstance(block, ResidualBlock)
        }
        return methods.pop() if len(methods) == 1 else "auto"

    @conv_method.setter
    def conv_method(self, method: Method) -> None:
        if method not in ("auto", "fft", "direct"):
            raise ValueError(f"unknown convolution method {method!r} (auto, fft or direct)")
        for block in self.modules():
            if isinstance(block, ResidualBlock):
                block.conv_method = method

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = self._checked(tokens)
        return self._head(tokens, [enc(tokens) for enc in self.feature_encoders])

    def substituted_logits(
        self,
        ref: torch.Tensor,
        alt: torch.Tensor,
        rows: Sequence[int],
        spans: Sequence[Span],
    ) -> torch.Tensor:
        """REF and ALT logits where the ALT pass of the conv encoders reuses the REF pass.

        Only the feature encoders are local: the fused hidden states of the ALTs are complete
        windows again and go through the (global) transformer like any other window.
        """
        ref, alt = self._checked(ref), self._checked(alt)
        groups: dict[Span, list[int]] = {}
        for i, span in enumerate(spans):
            groups.setdefault((int(span[0]), int(span[1])), []).append(i)
        index = torch.tensor(list(rows), dtype=torch.long, device=ref.device)
        alts = [
            (index[members], span, alt[members, span[0] : span[1]])
            for span, members in groups.items()
        ]
        feats = []
        for encoder in self.feature_encoders:
            ref_feats, alt_feats = encoder.substituted(ref, alts)
            feats.append(torch.cat([ref_feats, *alt_feats]))
        order = [i for members in groups.values() for i in members]  # ALT rows as computed
        logits = self._head(torch.cat([ref, alt[order]]), feats)
        inverse = torch.empty(len(order), dtype=torch.long, device=logits.device)
        inverse[order] = torch.arange(len(order), device=logits.device)
        return torch.cat([logits[: len(ref)], logits[len(ref) :][inverse]])

    def _checked(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) > N_TOKEN):
            raise ValueError("tokens must lie in 0..4 (A=0, C=1, G=2, T=3, N=4)")
        return tokens.long()

    def _head(self, tokens: torch.Tensor, feats: list[torch.Tensor]) -> torch.Tensor:
        """Everything after the conv encoders: fusion, transformer, output heads, target crop."""
        length = tokens.shape[1]
        target, odd, seq = length - 2 * self.flank, length & 1, self.max_seq_len
        left = (-(length - seq)) // 2  # centre crop/pad of the features to max_seq_len
        x = self._fused_input(tokens, feats, left, left + odd)
        out_left = (-(seq - target)) // 2  # centre crop/pad of the output to the target
        x = self.encoder(x, max(-(out_left + odd), 0), seq - max(-out_left, 0))
        logits = self.prediction(x)
        return _pad_or_crop(logits, max(out_left + odd, 0), max(out_left, 0), dim=1)

    def _fused_input(
        self, tokens: torch.Tensor, feats: list[torch.Tensor], left: int, right: int
    ) -> torch.Tensor:
        """Encoder features and input path through the 1x1 fusion conv: ``[B, max_seq_len, A]``."""
        conv = self.projection.conv
        fused = conv.bias.to(conv.weight.dtype)
        if feats:
            joined = _pad_or_crop(torch.cat(feats, dim=1), left, right, dim=2).transpose(1, 2)
            width = joined.shape[-1]
            fused = F.linear(joined, conv.weight[:, :width, 0], conv.bias)
        cropped = _pad_or_crop(tokens, min(left, 0), min(right, 0), dim=1)
        path = F.embedding(cropped, self.projection.input_table())
        return fused + _pad_or_crop(path, max(left, 0), max(right, 0), dim=1)
