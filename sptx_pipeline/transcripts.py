"""Canonical transcripts of the selected genes: the exon boundaries variant masking needs.

Per gene, the transcript tagged ``Ensembl_canonical`` (GENCODE >= 38), else ``MANE_Select``, else
the one with the most exonic bases (ties: the longer span, then the smaller transcript id). Its
exons go to ``exons.parquet``: ``gene_id, transcript_id, start, end`` (1-based inclusive, as in
the GTF), sorted by gene and start. The annotated splice sites are the exon starts and ends.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable

import pandas as pd

from .genome import open_text
from .gtf import attributes, first

EXON_COLUMNS = ["gene_id", "transcript_id", "start", "end"]
CANONICAL_TAGS = ("Ensembl_canonical", "MANE_Select")


def canonical_exons(gtf: str | os.PathLike, gene_ids: Iterable[str]) -> pd.DataFrame:
    """Exons of each gene's canonical transcript (the GTF was validated by the genes stage)."""
    wanted = set(gene_ids)
    exons: dict[str, list[tuple[int, int]]] = defaultdict(list)
    owner: dict[str, str] = {}
    tags: dict[str, set[str]] = defaultdict(set)
    with open_text(gtf) as handle:
        for line in handle:
            if line.startswith("#"):
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 9 or fields[2] not in ("transcript", "exon"):
                continue
            attrs = attributes(fields[8])
            gene, transcript = first(attrs, "gene_id"), first(attrs, "transcript_id")
            if gene not in wanted or not transcript:
                continue
            owner[transcript] = gene
            tags[transcript].update(attrs.get("tag", []))
            if fields[2] == "exon":
                exons[transcript].append((int(fields[3]), int(fields[4])))
    chosen: dict[str, str] = {}
    for gene, candidates in _by_gene(owner).items():
        chosen[gene] = min(candidates, key=lambda t: _rank(t, tags[t], exons[t]))
    rows = [
        (gene, transcript, start, end)
        for gene, transcript in chosen.items()
        for start, end in sorted(exons[transcript])
    ]
    frame = pd.DataFrame(rows, columns=EXON_COLUMNS)
    return frame.astype({"start": "int64", "end": "int64"}).sort_values(
        ["gene_id", "start"], kind="stable", ignore_index=True
    )


def _by_gene(owner: dict[str, str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for transcript, gene in owner.items():
        groups[gene].append(transcript)
    return groups


def _rank(transcript: str, tags: set[str], exons: list[tuple[int, int]]) -> tuple:
    tagged = [tag not in tags for tag in CANONICAL_TAGS]  # False sorts first
    exonic = sum(end - start + 1 for start, end in exons)
    span = (max(e for _, e in exons) - min(s for s, _ in exons)) if exons else 0
    return (*tagged, not exons, -exonic, -span, transcript)
