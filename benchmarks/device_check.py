"""The device check behind benchmarks/device_check.sh: one table for the first GPU machine.

Per model (SpliceAI with the published weights when installed; SpTransformer with random
weights, published geometry), on windows cut from the bundled chr19 region:

- parity: max probability difference of float32, tf32, bfloat16 and float16 on the GPU against
  float32 on the CPU (the reference), and whether any output was NaN or inf;
- throughput: windows/s at batch 8, 32 and 128 in each precision (best of 3 after a warm-up),
  with the peak GPU memory of each;
- ``predict`` of the bundled example through the ``local`` cluster on the GPU(s) (one worker
  per GPU, so two workers where two GPUs exist), SpliceAI, bfloat16: windows/s end to end;
- ``sptx variants`` on tests/data/variants/spliceai_variants_input.vcf (110 records) in both
  conventions on the GPU: records/s.

Without a GPU it computes the CPU references and the CPU bfloat16 parity, prints the skipped
parts, and exits 0. Sized for under 8 minutes on one GPU (``--quick``: smaller CPU parts).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_model import genome_windows  # noqa: E402

from sptx_pipeline.models import load_model  # noqa: E402
from sptx_pipeline.models.random_checkpoint import write_random_checkpoint  # noqa: E402
from sptx_pipeline.models.spliceai import spliceai_package_models  # noqa: E402

GPU_PRECISIONS = ("float32", "tf32", "bfloat16", "float16")
BATCHES = (8, 32, 128)
FASTA = ROOT / "config/example/grch37_chr19_1-1500000.fa"
GTF = ROOT / "config/example/grch37_chr19_1-1500000.gtf"
VCF = ROOT / "tests/data/variants/spliceai_variants_input.vcf"
Row = tuple[str, str, str, str, str]  # check, model, precision, setting, result


def probabilities(model, windows: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model.postprocess(model(windows)).float().cpu()


def parity(label: str, source: str, windows: torch.Tensor, gpu: bool, rows: list[Row]) -> None:
    """Each precision's max |p - p_cpu_float32|, on the GPU where there is one, else bfloat16 on
    the CPU; NaN/inf reported, never raised."""
    reference = probabilities(load_model(source, "cpu", "float32"), windows)
    targets = [("cuda", p) for p in GPU_PRECISIONS] if gpu else [("cpu", "bfloat16")]
    for device, precision in targets:
        try:
            model = load_model(source, device, precision)
            out = probabilities(model, windows.to(device))
            result = f"max |dp| {(out - reference).abs().max().item():.5f}, finite"
        except FloatingPointError:
            result = "NaN or inf in the output"
        rows.append(("parity vs CPU float32", label, precision, device, result))


def throughput(label: str, source: str, length: int, rows: list[Row]) -> None:
    """windows/s and peak memory per precision and batch (random tokens: speed only)."""
    for precision in GPU_PRECISIONS:
        model = load_model(source, "cuda", precision)
        for batch in BATCHES:
            tokens = torch.randint(0, 4, (batch, length), device="cuda")
            try:
                torch.cuda.reset_peak_memory_stats()
                with torch.inference_mode():
                    model(tokens[:1])
                    torch.cuda.synchronize()
                    best = float("inf")
                    for _ in range(3):
                        began = time.perf_counter()
                        out = model(tokens)
                        torch.cuda.synchronize()
                        best = min(best, time.perf_counter() - began)
                nan = "" if torch.isfinite(out).all() else ", NaN"
                peak = torch.cuda.max_memory_allocated() / 2**30
                result = f"{batch / best:8.1f} windows/s, peak {peak:.1f} GiB{nan}"
            except torch.cuda.OutOfMemoryError:
                result = "out of GPU memory"
            except FloatingPointError:
                result = "NaN or inf"
            rows.append(("throughput", label, precision, f"batch {batch}", result))
            torch.cuda.empty_cache()


def run(*command: str, cwd: Path | None = None) -> float:
    began = time.perf_counter()
    subprocess.run(command, check=True, cwd=cwd, capture_output=True, text=True)
    return time.perf_counter() - began


def predict_on_gpus(base: Path, rows: list[Row]) -> None:
    """The bundled example through Snakemake, SpliceAI, cluster ``local`` on the GPU(s)."""
    outdir = base / "predict"
    seconds = run(
        *(sys.executable, "-m", "snakemake", "--cores", "all", "--snakefile"),
        *(str(ROOT / "Snakefile"), "--directory", str(ROOT), "--config", "model=spliceai"),
        *(f"outdir={outdir}", "device=cuda", "precision=bfloat16", "batch_size=32"),
        "keep_predictions=true",
    )
    summary = json.loads((outdir / "predictions.json").read_text())
    windows, rate = summary.get("windows"), summary.get("windows_per_s")
    predict_s = _rule_seconds(outdir, "predict")
    gpus = torch.cuda.device_count()
    rows.append(
        (
            "predict (local cluster)",
            "SpliceAI",
            "bfloat16",
            f"{gpus} GPU worker(s)",
            f"{windows} windows, {rate} windows/s in shards; predict rule {predict_s:.1f} s, "
            f"workflow {seconds:.0f} s",
        )
    )


def _rule_seconds(outdir: Path, rule: str) -> float:
    import pandas as pd

    path = outdir / "benchmarks" / f"{rule}.tsv"
    return float(pd.read_csv(path, sep="\t")["s"].iloc[0]) if path.is_file() else float("nan")


def variants_on_gpu(base: Path, sptransformer: str, rows: list[Row]) -> None:
    genes = {name: base / f"{name}.parquet" for name in ("genes", "regions", "exons")}
    run(
        *(sys.executable, "-m", "sptx_pipeline.cli", "genes", "--gtf", str(GTF)),
        *("--fasta", str(FASTA), "--gene-types=", "--out-genes", str(genes["genes"])),
        *("--out-regions", str(genes["regions"]), "--out-exons", str(genes["exons"])),
    )
    records = sum(1 for line in VCF.read_text().splitlines() if not line.startswith("#"))
    for convention, model in (("spliceai", "spliceai"), ("sptransformer", sptransformer)):
        for precision in ("float32", "bfloat16"):
            out = base / f"variants-{convention}-{precision}"
            seconds = run(
                *(sys.executable, "-m", "sptx_pipeline.cli", "variants", "--vcf", str(VCF)),
                *("--fasta", str(FASTA), "--genes", str(genes["genes"])),
                *("--exons", str(genes["exons"]), "--model", model),
                *("--convention", convention, "--device", "cuda", "--precision", precision),
                *("--batch-size", "32", "--out-parquet", str(out / "v.parquet")),
                *("--out-vcf", str(out / "v.vcf.gz"), "--no-progress"),
            )
            rows.append(
                (
                    "variants",
                    convention,
                    precision,
                    f"{records} records",
                    f"{records / seconds:.2f} records/s ({seconds:.0f} s, process start to file)",
                )
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short window per model")
    parser.add_argument("--outdir", type=Path)
    args = parser.parse_args()
    gpu = torch.cuda.is_available()
    device = torch.cuda.get_device_name() if gpu else "none"
    print(f"device check: GPU {device} x {torch.cuda.device_count()}, torch {torch.__version__}")
    rows: list[Row] = []
    skipped: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        base = (args.outdir or Path(tmp)).resolve()
        base.mkdir(parents=True, exist_ok=True)
        sptransformer = str(write_random_checkpoint(base / "sptransformer-random"))
        models = [("SpTransformer (random)", sptransformer, 1000, 4000)]
        if spliceai_package_models() is not None:
            models.insert(0, ("SpliceAI", "spliceai", 5000, 5000))
        else:
            skipped.append("SpliceAI: weights not installed (pip install --no-deps spliceai)")
        n = 1 if args.quick or not gpu else 4
        for label, source, target, flank in models:
            if args.quick:
                target = 500
            windows = genome_windows(n, target, flank)
            parity(label, source, windows, gpu, rows)
            if gpu:
                throughput(label, source, target + 2 * flank, rows)
        steps = [("predict", lambda: predict_on_gpus(base, rows))] if gpu else []
        steps += [("variants", lambda: variants_on_gpu(base, sptransformer, rows))] if gpu else []
        for name, step in steps:
            try:
                step()
            except Exception:  # noqa: BLE001 - one failed part must not hide the others
                rows.append((name, "-", "-", "-", "FAILED: " + traceback.format_exc(limit=1)))
    if not gpu:
        skipped += [
            "GPU parity of float32/tf32/bfloat16/float16 (CPU bfloat16 parity shown instead)",
            f"throughput at batch {'/'.join(map(str, BATCHES))} and peak GPU memory",
            "predict of the bundled example through the local cluster on the GPU(s)",
            "variants/s in both conventions on the GPU",
        ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    header = ("check", "model", "precision", "setting", "result")
    print("  ".join(h.ljust(w) for h, w in zip(header, [*widths, 0], strict=True)).rstrip())
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, [*widths, 0], strict=True)).rstrip())
    if gpu:
        print(f"peak GPU memory over the run: {torch.cuda.max_memory_reserved() / 2**30:.1f} GiB")
    for line in skipped:
        print(f"skipped (no GPU here): {line}" if not gpu else f"skipped: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
