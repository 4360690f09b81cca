"""Score gene bodies directly with a model, cutting windows from the FASTA with pyfaidx.

A reference path for validation, deliberately independent of the pipeline's own tiling,
storage and merge code: one window per ``chunk`` of a gene body, ``flank`` bases of real genome
on each side (N beyond the contig), reverse-complemented on the minus strand.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pyfaidx
import torch

log = logging.getLogger(__name__)

_TOKENS = np.full(256, 4, dtype=np.uint8)
for _i, _base in enumerate("ACGT"):
    _TOKENS[ord(_base)] = _TOKENS[ord(_base.lower())] = _i


def encode(seq: str) -> np.ndarray:
    """A=0, C=1, G=2, T=3, anything else (N, IUPAC) = 4."""
    return _TOKENS[np.frombuffer(seq.encode("ascii"), dtype=np.uint8)]


def reverse_complement(tokens: np.ndarray) -> np.ndarray:
    out = tokens[::-1].copy()
    acgt = out < 4
    out[acgt] = 3 - out[acgt]
    return out


def window_sequence(fasta: pyfaidx.Fasta, chrom: str, start: int, end: int) -> str:
    """Genome ``[start, end)`` (0-based), padded with N where it runs off the contig."""
    length = len(fasta[chrom])
    left, right = max(start, 0), min(end, length)
    seq = fasta[chrom][left:right].seq if right > left else ""
    return "N" * (left - start) + seq + "N" * (end - right)


@torch.no_grad()
def score_interval(
    model, fasta: pyfaidx.Fasta, chrom: str, start: int, end: int, strand: str, chunk: int
) -> pd.DataFrame:
    """Probabilities for genome ``[start, end)`` (0-based) on ``strand``; ``pos`` is 1-based."""
    flank = model.flank
    rows = []
    for lo in range(start, end, chunk):
        hi = min(lo + chunk, end)
        tokens = encode(window_sequence(fasta, chrom, lo - flank, hi + flank))
        if strand == "-":
            tokens = reverse_complement(tokens)
        probs = model.postprocess(model(torch.from_numpy(tokens)[None].long()))[0].numpy()
        if strand == "-":
            probs = probs[::-1]  # index i of a minus window is genomic position hi - 1 - i
        frame = pd.DataFrame(probs, columns=list(model.channels))
        frame.insert(0, "pos", np.arange(lo, hi) + 1)
        rows.append(frame)
    scores = pd.concat(rows, ignore_index=True)
    scores.insert(0, "strand", strand)
    scores.insert(0, "chrom", chrom)
    return scores


def score_genes(model, fasta_path: str, genes: pd.DataFrame, chunk: int) -> pd.DataFrame:
    """Scores over the gene bodies in ``genes`` (``chrom, start, end, strand``; 1-based inclusive),
    each (chrom, strand, pos) once."""
    fasta = pyfaidx.Fasta(fasta_path)
    parts = []
    for n, g in enumerate(genes.itertuples(), start=1):
        log.info("scoring %s (%s, %d nt), gene %d of %d", g.gene_name, g.strand,
                 g.end - g.start + 1, n, len(genes))  # fmt: skip
        parts.append(score_interval(model, fasta, g.chrom, g.start - 1, g.end, g.strand, chunk))
    return pd.concat(parts, ignore_index=True).drop_duplicates(["chrom", "strand", "pos"])


def read_genes(gtf: str) -> pd.DataFrame:
    """Gene lines of a GTF as ``gene_name, chrom, start, end, strand`` (1-based inclusive)."""
    import pyranges as pr

    frame = pr.read_gtf(gtf, as_df=True)
    frame = frame[frame["Feature"] == "gene"]
    return pd.DataFrame(
        {
            "gene_name": frame["gene_name"].astype(str).to_numpy(),
            "chrom": frame["Chromosome"].astype(str).to_numpy(),
            "start": frame["Start"].to_numpy() + 1,
            "end": frame["End"].to_numpy(),
            "strand": frame["Strand"].astype(str).to_numpy(),
        }
    )
