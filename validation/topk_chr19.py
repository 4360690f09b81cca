"""Top-k splice-site accuracy of SpliceAI on all 56 genes of the bundled chr19 region.

Scores every gene-body position on its gene's strand directly from the model (windows cut with
pyfaidx, independent of the pipeline's stages), then applies the SpliceAI paper's top-k accuracy
to acceptors and donors against the GTF's annotated sites. Target: >= 0.92 for both.

    python validation/topk_chr19.py [--model spliceai] [--chunk 5000] [--genes GPX4,CBARP]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from direct_scoring import read_genes, score_genes

from sptx_pipeline.accuracy import splice_sites, topk_table
from sptx_pipeline.models import load_model

ROOT = Path(__file__).resolve().parents[1]

FASTA = ROOT / "config/example/grch37_chr19_1-1500000.fa"
GTF = ROOT / "config/example/grch37_chr19_1-1500000.gtf"
TARGET = 0.92


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="spliceai")
    parser.add_argument("--chunk", type=int, default=None, help="target length per window")
    parser.add_argument("--genes", default="", help="comma-separated gene names (default: all)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    model = load_model(args.model)
    genes = read_genes(str(GTF))
    if args.genes:
        genes = genes[genes["gene_name"].isin(args.genes.split(","))]
    sites = splice_sites(GTF)
    sites = sites[sites["transcript_id"].isin(_transcripts(genes))]

    began = time.perf_counter()
    scores = score_genes(model, str(FASTA), genes, args.chunk or model.default_chunk_size)
    seconds = time.perf_counter() - began
    accuracy = topk_table(scores, sites)
    counts = sites.drop_duplicates(["chrom", "strand", "pos", "site_type"])["site_type"]
    print(
        f"{len(genes)} genes, {len(scores)} scored positions, {seconds:.0f} s, "
        f"model {model.provenance.get('source', args.model)}"
    )
    for site_type, value in accuracy.items():
        n = int((counts == site_type).sum())
        print(f"top-k accuracy {site_type:8}: {value:.4f} (k = {n})")
    ok = all(value >= TARGET for value in accuracy.values())
    print(f"target >= {TARGET} for both: {'OK' if ok else 'FAIL'}")
    return 0 if ok else 1


def _transcripts(genes) -> set[str]:
    """Transcript ids of the selected genes (from the GTF's transcript lines)."""
    import pyranges as pr

    frame = pr.read_gtf(str(GTF), as_df=True)
    frame = frame[(frame["Feature"] == "transcript") & frame["gene_name"].isin(genes["gene_name"])]
    return set(frame["transcript_id"].astype(str))


if __name__ == "__main__":
    sys.exit(main())
