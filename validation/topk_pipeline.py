"""Top-k splice-site accuracy of SpliceAI through the whole pipeline on the bundled chr19 region.

Runs the real Snakemake workflow (genes -> model -> tile -> predict -> merge -> tracks) on all 56
genes of ``config/example/grch37_chr19_1-1500000`` with ``model: spliceai`` (chunk size from the
model), reads ``scores/`` back and applies the SpliceAI paper's top-k accuracy to acceptors and
donors against the GTF's annotated splice sites. Target: >= 0.92 for both; exits 1 below it.

With ``--output-dtype float32`` (the default here) it also prints what float16 storage (the
pipeline's default ``output_dtype``) gives: the stored float32 values cast to float16 are exactly
what float16 storage holds, and rounding can only create ties among the top-k.

    python validation/topk_pipeline.py [--outdir results/spliceai-chr19] [--cores 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sptx_pipeline.accuracy import SITE_TYPES, splice_sites, topk_table

ROOT = Path(__file__).resolve().parents[1]

GTF = ROOT / "config/example/grch37_chr19_1-1500000.gtf"
TARGET = 0.92
STRANDS = {"plus": "+", "minus": "-"}


def run_workflow(outdir: Path, cores: int, output_dtype: str, model: str) -> None:
    """The bundled config with every gene of the region selected and SpliceAI as the model."""
    command = [
        *(sys.executable, "-m", "snakemake", "--cores", str(cores)),
        *("--snakefile", str(ROOT / "Snakefile"), "--directory", str(ROOT)),
        "--config",
        f"model={model}",
        "genes=[]",
        "gene_types=[]",
        f"outdir={outdir}",
        f"output_dtype={output_dtype}",
    ]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def read_scores(outdir: Path) -> pd.DataFrame:
    """Every row of ``scores/`` with ``chrom``, ``strand`` (+/-), ``pos`` and the channels."""
    frame = pd.read_parquet(outdir / "scores")
    frame["chrom"] = frame["chrom"].astype(str)
    frame["strand"] = frame["strand"].astype(str).map(STRANDS)
    return frame


def selected_sites(outdir: Path) -> tuple[pd.DataFrame, int]:
    """Annotated sites of the transcripts of the genes the run selected (``genes.parquet``), and
    the number of those genes."""
    import pyranges as pr

    genes = pd.read_parquet(outdir / "genes.parquet")
    gtf = pr.read_gtf(str(GTF), as_df=True)
    transcripts = gtf.loc[
        (gtf["Feature"] == "transcript") & gtf["gene_id"].isin(genes["gene_id"]), "transcript_id"
    ]
    sites = splice_sites(GTF)
    return sites[sites["transcript_id"].isin(set(transcripts.astype(str)))], len(genes)


def rule_seconds(outdir: Path) -> dict[str, float]:
    """Wall time per rule from Snakemake's benchmark files."""
    return {
        path.stem: float(pd.read_csv(path, sep="\t")["s"].iloc[0])
        for path in sorted((outdir / "benchmarks").glob("*.tsv"))
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--outdir", type=Path, default=ROOT / "results" / "spliceai-chr19")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--output-dtype", default="float32", choices=["float32", "float16"])
    parser.add_argument("--model", default="spliceai", help="spliceai or spliceai:/dir")
    args = parser.parse_args()
    outdir = args.outdir.resolve()

    began = time.perf_counter()
    run_workflow(outdir, args.cores, args.output_dtype, args.model)
    seconds = time.perf_counter() - began

    scores = read_scores(outdir)
    extra = set(scores.columns) - {"chrom", "strand", "pos", "no_splice", *SITE_TYPES}
    if extra:
        print(f"unexpected columns in scores/: {sorted(extra)}")
        return 1
    sites, n_genes = selected_sites(outdir)
    counts = sites.drop_duplicates(["chrom", "strand", "pos", "site_type"])["site_type"]
    stored = str(scores["acceptor"].dtype)
    print(
        f"{n_genes} genes, {len(scores)} scored positions "
        f"({(scores['strand'] == '+').sum()} +, {(scores['strand'] == '-').sum()} -), "
        f"workflow {seconds:.0f} s, output_dtype {args.output_dtype} (read back as {stored})"
    )
    print("rule seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in rule_seconds(outdir).items()))
    accuracy = topk_table(scores, sites)
    for site_type, value in accuracy.items():
        n = int((counts == site_type).sum())
        print(f"top-k accuracy {site_type:8}: {value:.4f} (k = {n})")
    if args.output_dtype == "float32":
        rounded = scores.assign(**{c: scores[c].to_numpy().astype(np.float16) for c in SITE_TYPES})
        as_half = topk_table(rounded, sites)
        print("as stored in float16: " + ", ".join(f"{k} {v:.4f}" for k, v in as_half.items()))
    ok = all(value >= TARGET for value in accuracy.values())
    print(f"target >= {TARGET} for both: {'OK' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
