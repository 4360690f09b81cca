"""A picture of one scored variant: REF and ALT probabilities, their difference with the DS
maxima, the gene model and, for SpTransformer, the tissue-usage changes (``sptx plot-variant``).

The values are recomputed for the one variant through the variants stage's own code path
(``variants.plan_records``, ``WindowSet.score``, ``finish_rows``) with the settings, FASTA,
genes and model recorded in ``variants.parquet``'s provenance, so the plotted maxima are the
``ds_*``/``dp_*`` of ``variants.parquet``; a model, genes or exons file that differs from the
run's is refused rather than drawn.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import StrMethodFormatter

from .errors import InputError, InputMismatchError, MissingInputError
from .models.base import ScoringModel
from .options import DEFAULT_DEVICE, Device
from .provenance import sha256_file
from .results import read_provenance
from .runtime import ModelSpec, build_model, identify, resolve_device
from .variant_effects import ACCEPTOR, DONOR, USAGE_MIN_SPLICE
from .variants import (
    Annotation,
    Pending,
    Settings,
    WindowSet,
    aligned_tracks,
    finish_rows,
    plan_records,
)

log = logging.getLogger(__name__)

_VARIANT = re.compile(
    r"^(?P<chrom>[^:\s]+):(?P<pos>[\d,]+):(?P<ref>[ACGTNacgtn]+)>(?P<alt>[ACGTNacgtn]+)$"
)
COLORS = {"acceptor": "tab:red", "donor": "tab:blue"}
MARKS = (("ag", ACCEPTOR, 1), ("al", ACCEPTOR, -1), ("dg", DONOR, 1), ("dl", DONOR, -1))


@dataclass
class VariantEffect:
    """One variant x gene: its result row and the REF/ALT outputs over the scored window."""

    row: dict[str, Any]  # the variants-stage row (ds_*, dp_*, [splice_score, delta_*, ...])
    positions: np.ndarray  # 1-based genomic position of each row (indels: as aligned)
    ref: np.ndarray  # [2D + 1, C] model outputs for REF, genomic orientation
    alt: np.ndarray  # ALT rows aligned to REF's (``variants.aligned_tracks``)
    channels: list[str]
    convention: str

    @property
    def tissues(self) -> list[str]:
        return self.channels[3:]

    def usage_change(self) -> np.ndarray:
        """``|ALT - REF|`` tissue usage ``[2D + 1, tissues]`` with the convention's 0.09 mask
        (its column maxima are the ``delta_<tissue>`` of the row)."""
        splice_ref = self.ref[:, [ACCEPTOR, DONOR]].max(axis=1)
        splice_alt = self.alt[:, [ACCEPTOR, DONOR]].max(axis=1)
        ref = np.where(splice_ref[:, None] < USAGE_MIN_SPLICE, 0.0, self.ref[:, 3:])
        alt = np.where(splice_alt[:, None] < USAGE_MIN_SPLICE, 0.0, self.alt[:, 3:])
        return np.abs(alt - ref)


def parse_variant(text: str) -> tuple[str, int, str, str]:
    """``chrom:pos:REF>ALT`` (1-based ``pos``, commas allowed) -> its parts."""
    match = _VARIANT.match(text.strip())
    if not match:
        raise InputError(f"{text!r} is not a variant chrom:pos:REF>ALT (e.g. chr19:1207202:G>A)")
    return match["chrom"], int(match["pos"].replace(",", "")), match["ref"], match["alt"]


def _variants_file(results: str | os.PathLike) -> Path:
    path = Path(results)
    path = path / "variants.parquet" if path.is_dir() else path
    if not path.is_file():
        raise MissingInputError(
            f"{path} not found: score variants first (the workflow with --config vcf=..., "
            "or sptx variants)"
        )
    return path


def _checked(path: Path, sha256: str | None, what: str) -> str | None:
    """``path`` when the run used such a file (``sha256`` recorded) and it is that file."""
    if sha256 is None:
        return None
    if not path.is_file():
        raise MissingInputError(f"{path} not found: the {what} of the variants run")
    if sha256_file(path) != sha256:
        raise InputMismatchError(f"{path} is not the {what} variants.parquet was scored with")
    return str(path)


def variant_effects(
    results: str | os.PathLike,
    variant: str,
    model: ModelSpec | None = None,
    device: Device = DEFAULT_DEVICE,
    batch_size: int = 8,
) -> list[VariantEffect]:
    """Recompute ``variant`` (``chrom:pos:REF>ALT``) of ``results/variants.parquet`` for each of
    its scored genes. ``model``: the run's model source unless given (a factory in tests); it
    must have the run's weights."""
    from .variants import query_variant

    path = _variants_file(results)
    parse_variant(variant)
    rows = query_variant(path, variant)
    if rows.empty:
        raise InputError(
            f"{variant} is not in {path}: add it to the VCF and run the variants stage again"
        )
    scored = rows[rows["status"] == "ok"]
    if scored.empty:
        raise InputError(f"{variant} was not scored: status {', '.join(sorted(set(rows.status)))}")
    prov = read_provenance(path)
    try:
        inputs, settings_record, model_record = prov["inputs"], prov["settings"], prov["model"]
    except KeyError as missing:
        raise InputError(
            f"{path} has no provenance {missing}: not written by sptx variants"
        ) from None
    folder = path.parent
    genes = _checked(folder / "genes.parquet", inputs["genes_sha256"], "genes.parquet")
    exons = _checked(folder / "exons.parquet", inputs.get("exons_sha256"), "exons.parquet")
    fasta = inputs["fasta"]
    if not Path(fasta).is_file():
        raise MissingInputError(f"the run's FASTA {fasta} is not there any more")
    spec: ModelSpec = model if model is not None else model_record["source"]
    precision = settings_record.get("precision", "float32")
    torch_device = resolve_device(device)
    identity, net = _loaded(spec, torch_device, precision)
    if identity["weights_sha256"] != model_record.get("weights_sha256"):
        raise InputMismatchError(
            f"model {spec!r} is not the model of {path} ({model_record.get('source')}); "
            "pass the run's model with --model"
        )
    settings = Settings(
        settings_record["convention"],
        int(settings_record["distance"]),
        bool(settings_record["mask"]),
        int(identity["flank"]),
    )
    assert genes is not None  # genes_sha256 is always recorded
    annotation = Annotation.load(fasta, genes, exons)
    first = scored.iloc[0]
    records = pd.DataFrame(
        {
            "record": [int(first["record"])],
            "line": [0],
            "chrom": [str(first["chrom"])],
            "pos": [int(first["pos"])],
            "id": [first["id"]],
            "ref": [str(first["ref"])],
            "alts": [str(first["alt"])],
        }
    )
    windows = WindowSet()
    planned = plan_records(records, annotation, settings, windows)
    with torch.inference_mode():
        outputs = windows.score(net, batch_size, torch_device)
    finished = finish_rows(planned, outputs, settings)
    effects = []
    for item, row in zip(planned, finished, strict=True):
        if not isinstance(item, Pending):
            continue
        ref, alt, rows_at = aligned_tracks(item, outputs, settings)
        pos = int(row["pos"])
        offsets = np.arange(ref.shape[0]) - settings.distance if rows_at is None else rows_at
        positions = pos + offsets
        effects.append(
            VariantEffect(row, positions, ref, alt, list(identity["channels"]), settings.convention)
        )
    return effects


_LOADED: dict[tuple[str, str, str], tuple[dict[str, Any], ScoringModel]] = {}


def _loaded(
    spec: ModelSpec, device: torch.device, precision: str
) -> tuple[dict[str, Any], ScoringModel]:
    """The identity and the loaded model of ``spec``, kept for the next variant (a report
    draws many; SpliceAI's five networks take seconds to load)."""
    key = (spec if isinstance(spec, str) else repr(spec), str(device), precision)
    if key not in _LOADED:
        _LOADED.clear()
        _LOADED[key] = (identify(spec, precision), build_model(spec, device, precision))
    return _LOADED[key]


def _gene_exons(results: Path, gene_id: str | None) -> pd.DataFrame | None:
    path = results / "exons.parquet"
    if gene_id is None or not path.is_file():
        return None
    return pd.read_parquet(path, filters=[("gene_id", "=", gene_id)])


def title(effect: VariantEffect) -> str:
    """Variant, gene and the headline numbers of both conventions that the row has."""
    r = effect.row
    head = f"{r['chrom']}:{r['pos']:,} {r['ref']}>{r['alt']}  {r['gene_name']} ({r['strand']})"
    ds = "  ".join(
        f"{k.upper()} {r[f'ds_{k}']:.2f} ({r[f'dp_{k}']:+d})" for k in ("ag", "al", "dg", "dl")
    )
    line = f"SpliceAI-style DS max {max(r[f'ds_{k}'] for k in ('ag', 'al', 'dg', 'dl')):.2f}: {ds}"
    if r.get("splice_score") is not None:
        flagged = [t for t in effect.tissues if r.get(f"flag_{t}")]
        line += f"\nSpTransformer splice score {r['splice_score']:.2f}"
        line += f"; tissues flagged: {', '.join(flagged) if flagged else 'none'}"
    return f"{head}\n{line}"


def draw_variant(effect: VariantEffect, exons: pd.DataFrame | None = None) -> Figure:
    """The picture of one variant x gene (axes labelled ``probabilities``, ``delta``,
    ``gene``, ``tissues``)."""
    show_tissues = bool(effect.tissues) and effect.convention == "sptransformer"
    heights = [2.6, 2.2, 0.8] + ([0.22 * len(effect.tissues) + 0.6] if show_tissues else [])
    fig = Figure(figsize=(11, sum(heights) + 1.4), layout="constrained")
    grid = fig.add_gridspec(len(heights), 1, height_ratios=heights)
    fig.suptitle(title(effect), fontsize="medium")
    x = effect.positions
    pos = int(effect.row["pos"])
    ax = fig.add_subplot(grid[0])
    ax.set_label("probabilities")
    for name, channel in (("acceptor", ACCEPTOR), ("donor", DONOR)):
        color = COLORS[name]
        ax.plot(x, effect.ref[:, channel], color=color, lw=0.9, ls="--", label=f"{name} REF")
        ax.plot(x, effect.alt[:, channel], color=color, lw=1.1, label=f"{name} ALT")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("probability")
    _common(ax, x, pos)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small", frameon=False)

    delta = fig.add_subplot(grid[1], sharex=ax)
    delta.set_label("delta")
    for name, channel in (("acceptor", ACCEPTOR), ("donor", DONOR)):
        change = effect.alt[:, channel] - effect.ref[:, channel]
        delta.plot(x, change, color=COLORS[name], lw=1.1, label=f"{name} Δ")
    for key, channel, sign in MARKS:
        at = pos + int(effect.row[f"dp_{key}"])
        value = float(effect.alt[at - x[0], channel] - effect.ref[at - x[0], channel])
        color = COLORS["acceptor" if channel == ACCEPTOR else "donor"]
        delta.plot([at], [value], marker="v" if sign < 0 else "^", color=color, ms=7, ls="none")
        label = f"DS_{key.upper()} {effect.row[f'ds_{key}']:.2f}"
        delta.annotate(label, (at, value), textcoords="offset points", xytext=(3, 4 * sign),
                       fontsize="x-small", color=color)  # fmt: skip
    delta.axhline(0, color="0.6", lw=0.6)
    largest = float(
        np.abs(effect.alt[:, [ACCEPTOR, DONOR]] - effect.ref[:, [ACCEPTOR, DONOR]]).max()
    )
    limit = min(max(1.25 * largest, 0.05), 1.05)  # small changes stay visible
    delta.set_ylim(-limit, limit)
    delta.set_ylabel("ALT − REF")
    _common(delta, x, pos)
    delta.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small", frameon=False)

    gene = fig.add_subplot(grid[2], sharex=ax)
    _draw_gene(gene, effect, exons)
    if show_tissues:
        heat = fig.add_subplot(grid[3])
        heat.set_label("tissues")
        change = effect.usage_change().T
        image = heat.imshow(
            change,
            aspect="auto",
            cmap="magma",
            vmin=0,
            vmax=max(float(change.max()), 0.05),
            interpolation="none",
            extent=(x[0] - 0.5, x[-1] + 0.5, len(effect.tissues) - 0.5, -0.5),
        )
        heat.set_yticks(range(len(effect.tissues)), effect.tissues, fontsize="x-small")
        heat.set_title("|ALT − REF| tissue usage (0.09 splice mask)", fontsize="small")
        heat.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
        fig.colorbar(image, ax=heat, fraction=0.03).set_label("usage change")
    return fig


def _common(ax: Axes, x: np.ndarray, pos: int) -> None:
    ax.axvline(pos, color="0.3", lw=0.6, ls=":")
    ax.set_xlim(x[0] - 0.5, x[-1] + 0.5)
    ax.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))


def _draw_gene(ax: Axes, effect: VariantEffect, exons: pd.DataFrame | None) -> None:
    ax.set_label("gene")
    ax.set_yticks([])
    ax.set_ylim(-1, 1)
    ax.set_xlabel(f"{effect.row['chrom']} position (1-based)")
    x, pos = effect.positions, int(effect.row["pos"])
    _common(ax, x, pos)
    if exons is None or exons.empty:
        ax.text(0.5, 0.5, "no canonical exons (exons.parquet)", transform=ax.transAxes,
                ha="center", va="center", fontsize="small")  # fmt: skip
        return
    ax.plot([max(exons.start.min(), x[0]), min(exons.end.max(), x[-1])], [0, 0], color="0.4")
    for exon in exons.itertuples():
        if exon.end >= x[0] and exon.start <= x[-1]:
            ax.add_patch(Rectangle((exon.start - 0.5, -0.4), exon.end - exon.start + 1, 0.8,
                                   color="0.2"))  # fmt: skip
    arrow = "→" if effect.row["strand"] == "+" else "←"
    ax.text(0.01, 0.9, f"{effect.row['gene_name']} {arrow}", transform=ax.transAxes,
            fontsize="small", va="top")  # fmt: skip


def _output_name(output: Path, effect: VariantEffect, many: bool) -> Path:
    if not many:
        return output
    return output.with_name(f"{output.stem}.{effect.row['gene_name']}{output.suffix}")


def plot_variant(
    results: str | os.PathLike,
    variant: str,
    output: str | os.PathLike,
    model: ModelSpec | None = None,
    device: Device = DEFAULT_DEVICE,
) -> list[Path]:
    """Draw ``variant`` of ``results`` to ``output`` (one file per gene when it is in several:
    ``<stem>.<gene>.<suffix>``); returns the files written."""
    effects = variant_effects(results, variant, model, device)
    folder = _variants_file(results).parent
    written = []
    for effect in effects:
        path = _output_name(Path(output), effect, len(effects) > 1)
        draw_variant(effect, _gene_exons(folder, effect.row["gene_id"])).savefig(path, dpi=150)
        log.info("wrote %s", path)
        written.append(path)
    return written


def plot_variants_vcf(
    results: str | os.PathLike,
    vcf: str | os.PathLike,
    out_dir: str | os.PathLike,
    model: ModelSpec | None = None,
    device: Device = DEFAULT_DEVICE,
    fmt: str = "png",
) -> list[Path]:
    """One picture per scored record x ALT of ``vcf`` into ``out_dir``
    (``<chrom>_<pos>_<ref>_<alt>.<fmt>``)."""
    import pysam

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with pysam.VariantFile(str(vcf)) as reader:
        for rec in reader:
            for alt in rec.alts or ():
                text = f"{rec.chrom}:{rec.pos}:{rec.ref}>{alt}"
                if not _VARIANT.match(text):
                    log.warning("%s: not a sequence variant, not drawn", text)
                    continue
                name = out / f"{rec.chrom}_{rec.pos}_{rec.ref}_{alt}.{fmt}"
                try:
                    written += plot_variant(results, text, name, model, device)
                except InputError as error:
                    log.warning("%s", error)
    return written
