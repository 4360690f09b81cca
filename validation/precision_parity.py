"""bfloat16 against float32 through the pipeline on the bundled chr19 region: the parity table.

Per model, what ``precision: bfloat16`` changes against ``precision: float32``:

- SpliceAI (published weights), ``predict`` through the Snakemake workflow on the selected genes
  of ``config/example/grch37_chr19_1-1500000`` (``output_dtype: float32``): max and 99.9th
  percentile of the probability difference over every scored position and channel of
  ``scores/``, and the top-k accuracy of acceptors and donors against the GTF's annotated sites
  (sptx_pipeline/accuracy.py, as validation/topk_pipeline.py) in both precisions;
- SpliceAI convention of ``sptx variants`` against the official ``spliceai`` 1.3.1 CLI's outputs
  in tests/data/variants (every official run there: -D 50/500, -M 0/1, the chr19 fixture): the
  share of DS values within 0.01 of the official one and the share of DP equal to the official
  one where the official DS >= 0.2, in both precisions;
- SpTransformer convention (random weights, published geometry: the published checkpoint is not
  bundled) on the chr19 fixture's records: max |delta| difference over the splice and tissue
  deltas, and the share of rows whose tissue flags change.

    python validation/precision_parity.py [--genes GPX4,STK11] [--cores 2] [--outdir DIR]

Every run writes under ``--outdir``; a rerun reuses finished workflow outputs (Snakemake).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pysam

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "validation"))

from topk_pipeline import read_scores, selected_sites  # noqa: E402

from sptx_pipeline.accuracy import SITE_TYPES, topk_table  # noqa: E402

FASTA = ROOT / "config/example/grch37_chr19_1-1500000.fa"
GTF = ROOT / "config/example/grch37_chr19_1-1500000.gtf"
DATA = ROOT / "tests/data/variants"
PRECISIONS = ("float32", "bfloat16")
OFFICIAL_RUNS = [  # (input, official output, sptx options), as tests/test_variants_spliceai.py
    ("spliceai_chr19_variants.vcf", "spliceai_chr19_variants_expected.vcf", ()),
    ("spliceai_variants_input.vcf", "spliceai_D50_M0.vcf", ()),
    ("spliceai_variants_input.vcf", "spliceai_D50_M1.vcf", ("--mask",)),
    ("spliceai_variants_input.vcf", "spliceai_D500_M0.vcf", ("--distance", "500")),
    ("spliceai_variants_input.vcf", "spliceai_D500_M1.vcf", ("--distance", "500", "--mask")),
    ("spliceai_chr_input.vcf", "spliceai_chr_D50_M0.vcf", ()),
]
DS_TOLERANCE = 0.01
DP_MIN_DS = 0.2


def sptx(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "sptx_pipeline.cli", *args], check=True)


def run_workflow(outdir: Path, precision: str, genes: list[str], cores: int) -> float:
    """The bundled config with SpliceAI, every (or the given) gene, float32 storage."""
    command = [
        *(sys.executable, "-m", "snakemake", "--cores", str(cores), "--quiet", "rules"),
        *("--snakefile", str(ROOT / "Snakefile"), "--directory", str(ROOT)),
        "--config",
        "model=spliceai",
        f"genes=[{','.join(genes)}]",
        "gene_types=[]",
        f"outdir={outdir}",
        "output_dtype=float32",
        f"precision={precision}",
    ]
    began = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - began


def predict_parity(base: Path, genes: list[str], cores: int) -> list[str]:
    scores, accuracy, seconds = {}, {}, {}
    for precision in PRECISIONS:
        outdir = base / f"predict-{precision}"
        seconds[precision] = run_workflow(outdir, precision, genes, cores)
        frame = read_scores(outdir)
        scores[precision] = frame.sort_values(["chrom", "strand", "pos"]).reset_index(drop=True)
        sites, n_genes = selected_sites(outdir)
        accuracy[precision] = topk_table(scores[precision], sites)
    ref, low = scores["float32"], scores["bfloat16"]
    assert ref[["chrom", "strand", "pos"]].equals(low[["chrom", "strand", "pos"]])
    channels = ["no_splice", *SITE_TYPES]
    diff = np.abs(low[channels].to_numpy(np.float64) - ref[channels].to_numpy(np.float64))
    lines = [
        f"SpliceAI predict, {n_genes} genes, {len(ref)} positions x {len(channels)} channels "
        f"(workflow s: float32 {seconds['float32']:.0f}, bfloat16 {seconds['bfloat16']:.0f}; "
        "a reused run takes ~0)",
        f"  probability |bf16 - f32|: max {diff.max():.4f}, "
        f"99.9th percentile {np.quantile(diff, 0.999):.5f}",
    ]
    for site in SITE_TYPES:
        f32, bf16 = accuracy["float32"][site], accuracy["bfloat16"][site]
        verdict = "OK" if abs(bf16 - f32) <= 0.002 else "FAIL"
        lines.append(
            f"  top-k {site:8s}: float32 {f32:.4f}, bfloat16 {bf16:.4f}, "
            f"difference {bf16 - f32:+.4f} (goal |.| <= 0.002: {verdict})"
        )
    return lines


def official_entries(path: Path) -> list[list[str]]:
    """Every SpliceAI INFO entry of a VCF, split at ``|``, in file order."""
    with pysam.VariantFile(str(path)) as vcf:
        return [
            entry.split("|")
            for rec in vcf
            if "SpliceAI" in rec.info
            for entry in rec.info["SpliceAI"]
        ]


def annotation(base: Path) -> dict[str, Path]:
    paths = {name: base / f"{name}.parquet" for name in ("genes", "regions", "exons")}
    if not all(p.is_file() for p in paths.values()):
        sptx(
            *("genes", "--gtf", str(GTF), "--fasta", str(FASTA), "--gene-types="),
            *("--out-genes", str(paths["genes"]), "--out-regions", str(paths["regions"])),
            *("--out-exons", str(paths["exons"])),
        )
    return paths


def run_variants(
    base: Path, model: str, vcf: Path, precision: str, name: str, *extra: str
) -> tuple[Path, Path]:
    genes = annotation(base)
    out = base / f"variants-{name}-{precision}"
    parquet, vcf_out = out / "variants.parquet", out / "variants.vcf.gz"
    if not vcf_out.is_file():
        sptx(
            *("variants", "--vcf", str(vcf), "--fasta", str(FASTA), "--model", model),
            *("--genes", str(genes["genes"]), "--exons", str(genes["exons"])),
            *("--out-parquet", str(parquet), "--out-vcf", str(vcf_out), "--device", "cpu"),
            *("--precision", precision, "--no-progress", *extra),
        )
    return parquet, vcf_out


def high_ds_records(base: Path, source: str, expected: str) -> tuple[Path, Path]:
    """The records of an official run whose official DS reaches ``DP_MIN_DS`` somewhere, as an
    input VCF and the official output (same records, same order): the DP comparison in less
    time."""
    keep = set()
    with pysam.VariantFile(str(DATA / expected)) as vcf:
        for rec in vcf:
            values = [
                float(v)
                for entry in rec.info.get("SpliceAI", ())
                for v in entry.split("|")[2:6]
                if v != "."
            ]
            if values and max(values) >= DP_MIN_DS:
                keep.add((rec.pos, rec.ref))
    paths = []
    for path in (DATA / source, DATA / expected):
        out = base / f"high-ds-{path.name}"
        with (
            pysam.VariantFile(str(path)) as vcf,
            pysam.VariantFile(str(out), "w", header=vcf.header) as writer,
        ):
            for rec in vcf:
                if (rec.pos, rec.ref) in keep:
                    writer.write(rec)
        paths.append(out)
    return paths[0], paths[1]


def spliceai_variant_parity(
    base: Path, runs: list[str], precisions: list[str], high_ds: bool = False
) -> list[str]:
    lines = []
    chosen = [run for run in OFFICIAL_RUNS if not runs or Path(run[1]).stem in runs]
    for precision in precisions:
        ds_ok = ds_all = dp_ok = dp_all = 0
        for source, expected, extra in chosen:
            name = Path(expected).stem + ("-high-ds" if high_ds else "")
            inputs, official = (
                high_ds_records(base, source, expected)
                if high_ds
                else (DATA / source, DATA / expected)
            )
            _, vcf_out = run_variants(base, "spliceai", inputs, precision, name, *extra)
            ours, theirs = official_entries(vcf_out), official_entries(official)
            assert [e[:2] for e in ours] == [e[:2] for e in theirs], expected
            for got, want in zip(ours, theirs, strict=True):
                if want[2] == ".":
                    continue
                for i in range(4):
                    ds_all += 1
                    ds_ok += abs(float(got[2 + i]) - float(want[2 + i])) <= DS_TOLERANCE + 1e-9
                    if float(want[2 + i]) >= DP_MIN_DS:
                        dp_all += 1
                        dp_ok += got[6 + i] == want[6 + i]
        lines.append(
            f"  {precision:8s}: |DS - official| <= {DS_TOLERANCE}: {ds_ok}/{ds_all} "
            f"({100 * ds_ok / ds_all:.2f}%); DP equal where official DS >= {DP_MIN_DS}: "
            f"{dp_ok}/{dp_all} ({100 * dp_ok / max(dp_all, 1):.2f}%)"
        )
    names = ", ".join(Path(e).stem for _, e, _ in chosen)
    subset = f", records with an official DS >= {DP_MIN_DS} only" if high_ds else ""
    return [f"SpliceAI convention vs the official spliceai 1.3.1 CLI ({names}{subset}):", *lines]


def sptransformer_variant_parity(base: Path) -> list[str]:
    from sptx_pipeline.models.random_checkpoint import write_random_checkpoint

    model = base / "sptransformer-random"
    if not (model / "model.safetensors").is_file():
        write_random_checkpoint(model, seed=0)
    frames = {}
    for precision in PRECISIONS:
        parquet, _ = run_variants(
            base,
            str(model),
            DATA / "spliceai_chr19_variants.vcf",
            precision,
            "sptransformer",
            *("--convention", "sptransformer"),
        )
        frames[precision] = pd.read_parquet(parquet)
    ref, low = frames["float32"], frames["bfloat16"]
    keys = ["record", "alt", "gene_id"]
    assert ref[keys].equals(low[keys])
    ok = (ref["status"] == "ok").to_numpy()
    deltas = [c for c in ref.columns if c.startswith("delta_") or c.startswith("ds_")]
    flags = [c for c in ref.columns if c.startswith("flag_")]
    diff = np.abs(low.loc[ok, deltas].to_numpy(float) - ref.loc[ok, deltas].to_numpy(float))
    changed = (low.loc[ok, flags].to_numpy() != ref.loc[ok, flags].to_numpy()).any(axis=1)
    return [
        f"SpTransformer convention (RANDOM weights), {int(ok.sum())} scored rows "
        f"(record x ALT x gene), {len(deltas)} delta columns:",
        f"  max |delta bf16 - delta f32|: {diff.max():.4f}; rows whose flags change: "
        f"{int(changed.sum())}/{len(changed)} ({100 * changed.mean():.2f}%)",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outdir", type=Path, help="work folder (default: a temporary one)")
    parser.add_argument("--genes", default="", help="comma-separated gene names (default: all)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--skip-predict", action="store_true")
    parser.add_argument("--skip-sptransformer", action="store_true")
    parser.add_argument(
        "--high-ds-only",
        action="store_true",
        help=f"variants: only the records with an official DS >= {DP_MIN_DS} (faster)",
    )
    parser.add_argument(
        "--official-runs", default="", help="official outputs to compare (stems; default all)"
    )
    parser.add_argument(
        "--variant-precisions",
        default=",".join(PRECISIONS),
        help="SpliceAI-convention precisions (float32 equals the official CLI as printed: "
        "tests/test_variants_spliceai.py)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = (args.outdir or Path(tmp)).resolve()
        base.mkdir(parents=True, exist_ok=True)
        genes = [g for g in args.genes.split(",") if g]
        runs = [r for r in args.official_runs.split(",") if r]
        parts = [] if args.skip_predict else [lambda: predict_parity(base, genes, args.cores)]
        parts += [
            lambda: spliceai_variant_parity(
                base, runs, args.variant_precisions.split(","), args.high_ds_only
            ),
        ]
        parts += [] if args.skip_sptransformer else [lambda: sptransformer_variant_parity(base)]
        lines: list[str] = []
        for part in parts:
            lines += part()
            print("\n".join(["", "bfloat16 vs float32 parity (CPU), so far:", *lines]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
