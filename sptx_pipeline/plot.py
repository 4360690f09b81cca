"""A picture of a region: splice probabilities per strand, annotated exons, tissue usage at sites.

Panels, top to bottom: the site channels along the region (acceptor and donor probability;
Pangolin: P(splice) of each tissue), one panel per strand shown; the exons of the annotation (the
run's GTF, found through the provenance stored in ``scores/``, or the ``gtf`` argument); a heatmap
of the tissue channels at the predicted splice sites of ``sites.parquet`` in the region (left out
when the model has no tissue channels; Pangolin: P(splice) and usage of each tissue).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import StrMethodFormatter

from .channels import SPLICE_CHANNELS
from .errors import InputError, MissingInputError
from .genome import contig_aliases
from .gtf import FIELDS, attributes, first
from .query import Region, query, resolve
from .results import (
    channels_of,
    partitions,
    read_provenance,
    scores_path,
    site_channels,
)

log = logging.getLogger(__name__)

SITE_COLUMNS = {*SPLICE_CHANNELS, "chrom", "pos", "strand", "site_type", "score", "gene_ids"}
MAX_SITES = 60
MAX_TRANSCRIPTS = 12
COLORS = {"acceptor": "tab:red", "donor": "tab:blue"}


def run_provenance(results_dir: str | os.PathLike) -> dict:
    """The provenance record stored in the first ``scores/`` file (``{}`` if absent)."""
    files = next(iter(partitions(scores_path(results_dir)).values()), [])
    return read_provenance(files[0]) if files else {}


def find_gtf(results_dir: str | os.PathLike, gtf: str | os.PathLike | None) -> Path | None:
    """``gtf`` if given, else the run's GTF from the provenance (``run.config.gtf``, the config
    that Snakemake's merge rule records: as given, or relative to the directory above the outdir,
    where Snakemake runs)."""
    if gtf is not None:
        if not Path(gtf).exists():
            raise MissingInputError(f"GTF {gtf} not found")
        return Path(gtf)
    value = run_provenance(results_dir).get("run", {}).get("config", {}).get("gtf")
    if value:
        for path in (Path(value), Path(results_dir).resolve().parent / value):
            if path.exists():
                return path
    log.warning("the run's GTF was not found from its provenance; pass gtf= to draw exons")
    return None


def read_exons(gtf: Path, chrom: str, start: int, end: int, strands: list[str]) -> pd.DataFrame:
    """Exons overlapping ``chrom:start-end`` on ``strands`` (``chr`` prefixes reconciled)."""
    names = {chrom, *contig_aliases(chrom)}
    cols = list(FIELDS)
    keep = []
    reader = pd.read_csv(
        gtf, sep="\t", comment="#", header=None, names=cols, chunksize=200_000,
        dtype={"chrom": str}, usecols=["chrom", "feature", "start", "end", "strand", "attributes"],
    )  # fmt: skip
    for chunk in reader:
        hit = chunk[
            (chunk.feature == "exon")
            & chunk.chrom.isin(names)
            & chunk.strand.isin(strands)
            & (chunk.end >= start)
            & (chunk.start <= end)
        ]
        keep.append(hit)
    exons = pd.concat(keep) if keep else pd.DataFrame(columns=cols)
    attrs = [attributes(a) for a in exons["attributes"]]
    exons = exons.assign(
        transcript=[first(a, "transcript_id", "gene_id", default="?") for a in attrs],
        gene=[first(a, "gene_name", "gene_id", default="?") for a in attrs],
        gene_id=[first(a, "gene_id", default="?") for a in attrs],
    )
    columns = ["start", "end", "strand", "transcript", "gene", "gene_id"]
    return exons[columns].reset_index(drop=True)


def scored_genes(results_dir: str | os.PathLike) -> set[str] | None:
    """The gene ids the run scored (its ``genes.parquet``); None when that file is absent."""
    path = Path(results_dir) / "genes.parquet"
    if not path.is_file():
        return None
    return set(pd.read_parquet(path, columns=["gene_id"])["gene_id"].astype(str))


def read_sites(
    results_dir: str | os.PathLike, region: Region, strands: list[str]
) -> pd.DataFrame | None:
    path = Path(results_dir) / "sites.parquet"
    if not path.exists():
        log.warning("%s not found: no tissue heatmap", path)
        return None
    filters = [
        ("chrom", "=", region.chrom),
        ("pos", ">=", region.start),
        ("pos", "<=", region.end),
        ("strand", "in", strands),
    ]
    return pd.read_parquet(path, filters=filters)


def _strands_to_show(
    results_dir: str | os.PathLike, region: Region, both_strands: bool, channel: str
) -> list[str]:
    if both_strands:
        return ["+", "-"]
    if region.strand:
        return [region.strand]
    counts = {s: len(query(results_dir, region, strand=s, columns=[channel])) for s in "+-"}
    return [max(counts, key=lambda s: (counts[s], s == "+"))]


def plot_region(
    results_dir: str | os.PathLike,
    region: str | Region,
    output: str | os.PathLike | None,
    gtf: str | os.PathLike | None = None,
    both_strands: bool = False,
) -> Figure:
    """Draw ``region`` (``chrom:start-end``, contig or gene) and save it to ``output``."""
    region, parts = resolve(results_dir, region)
    channels = channels_of(next(iter(parts.values()))[0])
    curves = [c for group in site_channels(channels).values() for c in group]
    if not curves:
        raise InputError(f"nothing to plot: no acceptor/donor or P(splice) channel in {channels}")
    strands = _strands_to_show(results_dir, region, both_strands, curves[0])
    scores = {s: query(results_dir, region, strand=s, columns=curves) for s in strands}
    if region.end > 2**62:  # a whole contig: end at its last scored position
        last = max((int(f.pos.max()) for f in scores.values() if len(f)), default=region.start)
        region = Region(region.chrom, region.start, last, region.strand, region.label)
    gtf_path = find_gtf(results_dir, gtf)
    exons = (
        read_exons(gtf_path, region.chrom, region.start, region.end, strands) if gtf_path else None
    )
    scored = scored_genes(results_dir)
    if exons is not None:  # genes of the GTF the run did not select have no scores: drawn pale
        exons["scored"] = [scored is None or g in scored for g in exons.gene_id]
    sites = read_sites(results_dir, region, strands)
    tissues = [c for c in sites.columns if c not in SITE_COLUMNS] if sites is not None else []
    show_heatmap = bool(tissues) and sites is not None and len(sites) > 0
    if sites is not None and not tissues:
        log.info("the model has no tissue channels: no heatmap")

    heights = [3] * len(strands) + [1.2 + 0.35 * _n_transcripts(exons)]
    heights += [0.25 * len(tissues) + 0.8] if show_heatmap else []
    fig = Figure(figsize=(11, sum(heights) * 0.8 + 1), layout="constrained")
    grid = fig.add_gridspec(len(heights), 1, height_ratios=heights)
    where = f"{region.chrom}:{region.start:,}-{region.end:,}"
    named = region.label and region.label.replace(",", "") != where.replace(",", "")
    fig.suptitle(f"{region.label}  ({where})" if named else where)
    first = None
    for row, strand in enumerate(strands):
        ax = fig.add_subplot(grid[row], sharex=first)
        first = first or ax
        _draw_scores(ax, scores[strand], strand, region, curves)
    _draw_exons(fig.add_subplot(grid[len(strands)], sharex=first), exons, region, gtf_path)
    if show_heatmap:
        _draw_heatmap(fig, fig.add_subplot(grid[len(strands) + 1]), sites, tissues)
    if output is not None:
        fig.savefig(output, dpi=150)
        log.info("wrote %s", output)
    return fig


def _draw_scores(
    ax: Axes, frame: pd.DataFrame, strand: str, region: Region, curves: list[str]
) -> None:
    ax.set_label(f"scores {strand}")
    for i, channel in enumerate(curves):
        color = COLORS.get(channel, f"C{i}")
        ax.plot(frame.pos, frame[channel], color=color, lw=0.8, label=channel)
    ax.set_xlim(region.start, region.end)
    ax.set_ylim(0, 1.05)  # headroom: peaks at 1.0 stay visible below the frame
    ax.set_ylabel(f"probability ({strand})")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small", frameon=False)
    if frame.empty:
        ax.text(0.5, 0.5, f"no scores on strand {strand}", transform=ax.transAxes, ha="center")


def _n_transcripts(exons: pd.DataFrame | None) -> int:
    return 0 if exons is None else min(exons.transcript.nunique(), MAX_TRANSCRIPTS)


def _draw_exons(ax: Axes, exons: pd.DataFrame | None, region: Region, gtf: Path | None) -> None:
    ax.set_label("exons")
    ax.set_yticks([])
    ax.set_xlabel(f"{region.chrom} position (1-based)")
    ax.set_xlim(region.start, region.end)
    ax.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))  # genomic positions, no 1e6
    if exons is None or exons.empty:
        note = "no exons in the region" if gtf else "no GTF: pass --gtf to draw exons"
        ax.text(0.5, 0.5, note, transform=ax.transAxes, ha="center", va="center")
        ax.set_ylim(0, 1)
        return
    transcripts = list(dict.fromkeys(exons.transcript))[:MAX_TRANSCRIPTS]
    for y, tx in enumerate(transcripts):
        rows = exons[exons.transcript == tx]
        strand = rows.strand.iloc[0]
        scored = bool(rows.scored.iloc[0]) if "scored" in rows else True
        line, box = ("0.4", "0.2") if scored else ("0.8", "0.75")
        ax.plot([rows.start.min(), rows.end.max()], [y, y], color=line, lw=1)
        for e in rows.itertuples():
            ax.add_patch(Rectangle((e.start, y - 0.3), e.end - e.start + 1, 0.6, color=box))
        label_x = max(rows.start.min(), region.start)
        label = f"{rows.gene.iloc[0]} ({strand})" + ("" if scored else ", not scored")
        ax.text(label_x, y - 0.35, label, fontsize="x-small", va="bottom", color=line)
    ax.set_ylim(len(transcripts) - 0.4, -1.0)  # inverted: the first transcript on top


def _draw_heatmap(fig: Figure, ax: Axes, sites: pd.DataFrame, tissues: list[str]) -> None:
    ax.set_label("tissue usage")  # the axis id tests and users look up
    if len(sites) > MAX_SITES:  # the strongest sites, shown in genomic order
        sites = sites.nlargest(MAX_SITES, "score")
    sites = sites.sort_values(["pos", "site_type"])
    matrix = sites[tissues].to_numpy(np.float32).T
    image = ax.imshow(matrix, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="none")
    ax.set_yticks(range(len(tissues)), tissues, fontsize="x-small")
    labels = [
        f"{p:,} {t[0].upper()}{s}"
        for p, t, s in zip(sites.pos, sites.site_type, sites.strand, strict=True)
    ]
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize="xx-small")
    types = ", ".join(f"{t[0].upper()} {t}" for t in dict.fromkeys(sites.site_type))
    ax.set_title(f"tissue channels at predicted splice sites ({types})", fontsize="small")
    bar = fig.colorbar(image, ax=ax, fraction=0.03)
    bar.ax.set_label("colorbar")
    bar.set_label("probability")
