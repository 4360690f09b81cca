"""Splice-site accuracy against an annotation: annotated sites and top-k accuracy.

Definitions follow the SpliceAI paper (Jaganathan et al. 2019): the annotated splice sites of a
transcript are its exon boundaries except the transcript's outer ends; acceptors are exon starts
and donors exon ends in transcript orientation. With ``k`` annotated sites of a type, top-k
accuracy is the fraction of them among the ``k`` highest-scoring positions of all scored positions.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pyranges as pr

from .errors import InputError

SITE_TYPES = ("acceptor", "donor")


def splice_sites(gtf: str | os.PathLike) -> pd.DataFrame:
    """Annotated splice sites: ``chrom, strand, pos`` (1-based), ``site_type``, ``transcript_id``.

    Sites shared by several transcripts appear once per transcript; deduplicate on
    ``chrom, strand, pos, site_type`` where that matters.
    """
    exons = pr.read_gtf(str(gtf), as_df=True)
    exons = exons[exons["Feature"] == "exon"]
    if exons.empty:
        raise InputError(f"{gtf}: no exon lines, so no annotated splice sites")
    rows = []
    for (chrom, strand, transcript), group in exons.groupby(
        ["Chromosome", "Strand", "transcript_id"], observed=True, sort=False
    ):
        starts = np.sort(group["Start"].to_numpy() + 1)[1:]  # 1-based; drop the outer end
        ends = np.sort(group["End"].to_numpy())[:-1]  # 1-based inclusive; drop the outer end
        start_type, end_type = ("acceptor", "donor") if strand == "+" else ("donor", "acceptor")
        for positions, site_type in ((starts, start_type), (ends, end_type)):
            rows += [(str(chrom), str(strand), int(p), site_type, transcript) for p in positions]
    return pd.DataFrame(rows, columns=["chrom", "strand", "pos", "site_type", "transcript_id"])


def topk_accuracy(scores: np.ndarray, is_site: np.ndarray) -> float:
    """Fraction of the ``k = is_site.sum()`` sites among the ``k`` highest ``scores``.

    ``scores`` and ``is_site`` are aligned over all scored positions (each position once).
    """
    scores = np.asarray(scores, dtype=np.float64)
    is_site = np.asarray(is_site, dtype=bool)
    if scores.shape != is_site.shape:
        raise InputError(f"scores {scores.shape} and is_site {is_site.shape} differ in shape")
    k = int(is_site.sum())
    if k == 0:
        raise InputError("no annotated sites among the scored positions: top-k is undefined")
    top = np.argpartition(-scores, k - 1)[:k]
    return float(is_site[top].sum() / k)


def topk_table(scores: pd.DataFrame, sites: pd.DataFrame) -> dict[str, float]:
    """Top-k accuracy per site type.

    ``scores``: one row per scored position with ``chrom, strand, pos`` and a column per site
    type (``acceptor``, ``donor``); ``sites``: as from :func:`splice_sites`. Sites outside the
    scored positions are an error (they would silently lower nothing and inflate nothing).
    """
    keys = ["chrom", "strand", "pos"]
    if scores.duplicated(keys).any():
        raise InputError("scores has duplicate (chrom, strand, pos) rows")
    result = {}
    for site_type in SITE_TYPES:
        wanted = sites.loc[sites["site_type"] == site_type, keys].drop_duplicates()
        flagged = scores[keys].merge(wanted.assign(_site=True), on=keys, how="left")
        is_site = flagged["_site"].fillna(False).to_numpy(dtype=bool)
        if is_site.sum() != len(wanted):
            raise InputError(
                f"{len(wanted) - is_site.sum()} annotated {site_type} sites are not among the "
                "scored positions"
            )
        result[site_type] = topk_accuracy(scores[site_type].to_numpy(), is_site)
    return result
