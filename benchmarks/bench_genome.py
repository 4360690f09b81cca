"""Genome-scale dry run (issue 13): every stage's time, peak memory, bytes and files, extrapolated.

1. A GENCODE-size annotation: 63,414 genes and 251,059 transcripts (with their exons) in GENCODE
   GTF format on GRCh38's chromosome names and lengths (``GRCH38``, 3.09 Gb). The numbers of
   genes and transcripts are GENCODE's; everything else is synthetic: genes are spread over the
   chromosomes in proportion to their length, strands are random, gene lengths are log-normal
   (protein-coding median 24 kb, mean ~67 kb; lncRNA median 8 kb; other types median 1 kb), so
   the union of protein-coding + lncRNA gene bodies covers about half of each strand, as in
   GENCODE. Real gene density varies between chromosomes (chr19 is dense); this one does not.
2. A random genome holding only the chromosomes of the run (``--chromosomes``, default chr21)
   at their GRCh38 lengths.
3. genes (on the whole genome-wide GTF) -> tile -> predict -> merge -> tracks -> query through
   the library functions, each stage in a fresh child process (its own peak RSS). predict uses
   the test suite's stand-in conv net widened to SpTransformer's 18 channels (flank 4000,
   T = 1000): its values are random-looking probabilities, so they compress worse than a real
   model's (see ``bench_encodings.py`` for real SpliceAI output). ``--gene-fraction`` keeps a
   random subset of the run's genes so that the run fits a few minutes.
4. Per stage: seconds, peak RSS, the bytes and files of its outputs, bytes per scored position
   and per position and channel; then a genome-wide extrapolation for protein-coding only and for
   the default gene types (protein_coding + lncRNA): position-based outputs (scores, sites,
   tracks) scale with scored positions, window-based ones (windows.zarr, predictions.zarr) with
   windows, both counted exactly from the genome-wide annotation. Times scale the same way and
   are for one process on this machine.

    python benchmarks/bench_genome.py [--chromosomes chr21] [--gene-fraction 0.25] [--out DIR]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))

from sptx_pipeline.testing import WIDE_CHANNELS, StandInFactory  # noqa: E402

# GRCh38 primary assembly chromosome lengths (UCSC hg38 naming), 3,088,269,832 bases in all
GRCH38 = {
    "chr1": 248_956_422, "chr2": 242_193_529, "chr3": 198_295_559, "chr4": 190_214_555,
    "chr5": 181_538_259, "chr6": 170_805_979, "chr7": 159_345_973, "chr8": 145_138_636,
    "chr9": 138_394_717, "chr10": 133_797_422, "chr11": 135_086_622, "chr12": 133_275_309,
    "chr13": 114_364_328, "chr14": 107_043_718, "chr15": 101_991_189, "chr16": 90_338_345,
    "chr17": 83_257_441, "chr18": 80_373_285, "chr19": 58_617_616, "chr20": 64_444_167,
    "chr21": 46_709_983, "chr22": 50_818_468, "chrX": 156_040_895, "chrY": 57_227_415,
    "chrM": 16_569,
}  # fmt: skip
N_GENES, N_TRANSCRIPTS = 63_414, 251_059
# gene type: (genes, log-normal median length, sigma, extra transcripts weight, mean exons)
GENE_TYPES = {
    "protein_coding": (20_000, 24_000, 1.43, 7.2, 9.0),
    "lncRNA": (19_400, 8_000, 1.51, 2.0, 2.5),
    "other": (N_GENES - 39_400, 1_000, 1.2, 0.2, 0.3),  # pseudogenes, small RNAs, ...
}
FLANK, CHUNK, SHARD, BATCH = 4000, 1000, 64, 16
DEFAULT_TYPES = ["protein_coding", "lncRNA"]
# the stand-in is not a splice model: at 0.999 0.21% of its positions are sites, as 0.23% of
# SpliceAI's are at the default 0.1 on the bundled region
SITES_MIN_SCORE = 0.999


# ----------------------------------------------------------------------------- inputs


def gene_table(seed: int = 0) -> pd.DataFrame:
    """Genome-wide genes: id, name, type, chrom, start/end (1-based inclusive), strand, and the
    number of transcripts (``N_TRANSCRIPTS`` in all, at least one each)."""
    rng = np.random.default_rng(seed)
    names = np.array([c for c in GRCH38 if c != "chrM"])
    weights = np.array([GRCH38[c] for c in names], dtype=float)
    frames = []
    for gene_type, (count, median, sigma, _, _) in GENE_TYPES.items():
        chrom = rng.choice(names, size=count, p=weights / weights.sum())
        length = np.clip(rng.lognormal(np.log(median), sigma, count), 200, 2_400_000).astype(int)
        size = np.array([GRCH38[c] for c in chrom])
        start = (rng.random(count) * (size - length - 1)).astype(np.int64) + 1
        frames.append(
            pd.DataFrame(
                {
                    "gene_type": gene_type,
                    "chrom": chrom,
                    "start": start,
                    "end": start + length - 1,
                    "strand": rng.choice(["+", "-"], count),
                }
            )
        )
    genes = pd.concat(frames, ignore_index=True)
    weight = genes["gene_type"].map({t: v[3] for t, v in GENE_TYPES.items()}).to_numpy()
    extra = rng.multinomial(N_TRANSCRIPTS - len(genes), weight / weight.sum())
    genes["transcripts"] = 1 + extra
    order = genes.sort_values(["chrom", "start"]).index
    genes = genes.loc[order].reset_index(drop=True)
    genes.insert(0, "gene_id", [f"ENSG{i + 1:011d}.1" for i in range(len(genes))])
    genes.insert(1, "gene_name", [f"GENE{i + 1}" for i in range(len(genes))])
    return genes


def write_gtf(genes: pd.DataFrame, path: Path, seed: int = 0) -> int:
    """GENCODE-format GTF (gzip): gene, transcript and exon records; returns the line count."""
    rng = np.random.default_rng(seed + 1)
    exon_mean = {t: v[4] for t, v in GENE_TYPES.items()}
    lines = 0
    with gzip.open(path, "wt", compresslevel=1) as out:
        out.write("##description: synthetic GENCODE-size annotation (bench_genome.py)\n")
        for g in genes.itertuples(index=False):
            attrs = f'gene_id "{g.gene_id}"; gene_type "{g.gene_type}"; gene_name "{g.gene_name}";'
            rows = [
                f"{g.chrom}\tBENCH\tgene\t{g.start}\t{g.end}\t.\t{g.strand}\t.\t{attrs} level 2;"
            ]
            length = g.end - g.start + 1
            for t in range(g.transcripts):
                # the first transcript spans the gene, so the gene body is their union
                lo, hi = (0, length) if t == 0 else np.sort(rng.integers(0, length, 2))
                hi = max(hi, lo + 1)
                tid = f"{g.gene_id.split('.')[0].replace('G', 'T')}{t:03d}.1"
                tattrs = f'{attrs} transcript_id "{tid}"; transcript_type "{g.gene_type}";'
                rows.append(
                    f"{g.chrom}\tBENCH\ttranscript\t{g.start + lo}\t{g.start + hi - 1}\t.\t"
                    f"{g.strand}\t.\t{tattrs} level 2;"
                )
                n_exons = 1 + rng.poisson(exon_mean[g.gene_type])
                cuts = np.unique(rng.integers(lo, hi, 2 * n_exons))
                cuts = np.concatenate([[lo], cuts, [hi]])
                for e, (a, b) in enumerate(zip(cuts[:-1:2], cuts[1::2], strict=False)):
                    if b > a:
                        rows.append(
                            f"{g.chrom}\tBENCH\texon\t{g.start + a}\t{g.start + b - 1}\t.\t"
                            f"{g.strand}\t.\t{tattrs} exon_number {e + 1}; level 2;"
                        )
            out.write("\n".join(rows) + "\n")
            lines += len(rows)
    return lines


def write_genome(path: Path, chromosomes: list[str], seed: int = 0) -> None:
    """Random sequence for ``chromosomes`` at their GRCh38 lengths, 60 bases a line."""
    rng = np.random.default_rng(seed + 2)
    acgt = np.frombuffer(b"ACGT", dtype=np.uint8)
    with open(path, "wb") as handle:
        for chrom in chromosomes:
            handle.write(f">{chrom}\n".encode())
            size = GRCH38[chrom]
            for begin in range(0, size, 6_000_000):  # whole lines per block
                n = min(6_000_000, size - begin)
                block = acgt[rng.integers(0, 4, n)]
                full = n // 60 * 60
                lines = np.hstack(
                    [block[:full].reshape(-1, 60), np.full((full // 60, 1), 10, np.uint8)]
                )
                handle.write(lines.tobytes())
                if n > full:
                    handle.write(block[full:].tobytes() + b"\n")


def genome_wide_counts(genes: pd.DataFrame, gene_types: list[str]) -> dict[str, int]:
    """Scored positions and windows genome-wide for ``gene_types`` (exact, from the annotation)."""
    from sptx_pipeline.annotation import merge_regions
    from sptx_pipeline.tiling import tiles_for_regions

    selected = genes[genes["gene_type"].isin(gene_types)]
    regions = merge_regions(selected, list(GRCH38))
    windows = sum(
        len(tiles_for_regions(g["start"].to_numpy(), g["end"].to_numpy(), CHUNK))
        for _, g in regions.groupby(["chrom", "strand"])
    )
    return {"positions": int((regions["end"] - regions["start"]).sum()), "windows": windows}


# ----------------------------------------------------------------------------- the stages


def wide_factory() -> Any:
    """The test suite's stand-in model with SpTransformer's 18 channels."""
    return StandInFactory(flank=FLANK, hidden=8, channels=WIDE_CHANNELS)


def run_stage(stage: str, work: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Child process: run one stage, print seconds and peak RSS as JSON."""
    began = time.perf_counter()
    extra: dict[str, Any] = {}
    if stage == "genes":
        from sptx_pipeline.annotation import select_genes

        genes, regions = select_genes(
            work / "gencode.gtf.gz",
            work / "genome.fa",
            work / "genes.parquet",
            work / "regions.parquet",
            gene_types=DEFAULT_TYPES,
            chromosomes=options["chromosomes"],
            genes=options["genes"],
            missing_contigs="skip",
        )
        extra = {"genes": len(genes), "positions": int((regions.end - regions.start).sum())}
    elif stage == "tile":
        from sptx_pipeline.tiling import tile

        table = tile(
            work / "genome.fa",
            work / "regions.parquet",
            work / "windows.zarr",
            work / "windows.parquet",
            FLANK,
            CHUNK,
            SHARD,
        )
        extra = {"windows": len(table)}
    elif stage == "predict":
        from sptx_pipeline.inference import predict

        summary = predict(
            work / "windows.zarr",
            work / "predictions.zarr",
            wide_factory(),
            device="cpu",
            batch_size=BATCH,
            output_dtype="float16",
            progress=False,
        )
        extra = {"windows_per_s": summary.items_per_s}
    elif stage == "merge":
        from sptx_pipeline.merge import merge

        counts = merge(
            work / "windows.parquet",
            work / "predictions.zarr",
            work / "regions.parquet",
            work / "genes.parquet",
            work / "scores",
            work / "sites.parquet",
            sites_min_score=SITES_MIN_SCORE,
            workers=options["workers"],
            delete_predictions=False,  # measured below; the default config keeps it
        )
        extra = {"rows": sum(counts.values()), "workers": options["workers"]}
    elif stage == "tracks":
        from sptx_pipeline.tracks import write_tracks

        write_tracks(
            work / "scores", work / "genome.fa", work / "tracks", workers=options["workers"]
        )
        extra = {"workers": options["workers"]}
    elif stage == "query":
        from sptx_pipeline.errors import InputError
        from sptx_pipeline.query import export, query

        chrom = options["chromosomes"][0]
        small = time.perf_counter()
        query(work, f"{chrom}:20,000,000-20,100,000")
        extra["query_100kb_s"] = round(time.perf_counter() - small, 3)
        large = f"{chrom}:1-{options['large_query_end']}"
        began_large = time.perf_counter()
        rows = export(work, large, "csv", work / "large.csv")
        extra["large_query_csv_s"] = round(time.perf_counter() - began_large, 2)
        extra["large_query_rows"] = rows
        extra["large_query_csv_bytes"] = (work / "large.csv").stat().st_size
        (work / "large.csv").unlink()
        began_large = time.perf_counter()
        try:
            export(work, large, "table")
        except InputError:
            extra["large_query_table_refused_s"] = round(time.perf_counter() - began_large, 2)
    else:
        raise ValueError(stage)
    return {
        "seconds": round(time.perf_counter() - began, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        **extra,
    }


def child(stage: str, work: Path, options: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", stage, str(work), json.dumps(options)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- measuring


OUTPUTS = {
    "genes": ["genes.parquet", "regions.parquet"],
    "tile": ["windows.zarr", "windows.parquet"],
    "predict": ["predictions.zarr"],
    "merge": ["scores", "sites.parquet"],
    "tracks": ["tracks"],
    "query": [],
}
PER_WINDOW = {"windows.zarr", "windows.parquet", "predictions.zarr"}


def footprint(path: Path) -> tuple[int, int]:
    """Bytes on disk (apparent size) and number of files under ``path``."""
    if path.is_file():
        return path.stat().st_size, 1
    files = [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


def gib(n: float) -> str:
    return f"{n / 1e9:8.2f} GB"


def real_rates(run: Path) -> dict[str, Any]:
    """Bytes per position and channel of a real model's outputs: ``run`` is a finished pipeline
    outdir (e.g. SpliceAI on the bundled chr19 region); its predictions are merged again and
    its tracks written with this code (default settings) into a temporary directory."""
    from sptx_pipeline.merge import merge
    from sptx_pipeline.results import read_provenance
    from sptx_pipeline.tracks import write_tracks

    fasta = read_provenance(run / "windows.parquet")["fasta"]
    with tempfile.TemporaryDirectory(prefix="bench-real-") as tmp:
        out = Path(tmp)
        counts = merge(
            run / "windows.parquet",
            run / "predictions.zarr",
            run / "regions.parquet",
            run / "genes.parquet",
            out / "scores",
            out / "sites.parquet",
        )
        write_tracks(out / "scores", fasta, out / "tracks")
        positions = sum(counts.values())
        channels = len(pq.read_schema(next((out / "scores").rglob("*.parquet"))).names) - 1
        per_channel = {
            name: footprint(path)[0] / positions / channels
            for name, path in (
                ("scores", out / "scores"),
                ("sites.parquet", out / "sites.parquet"),
                ("tracks", out / "tracks"),
                ("predictions.zarr", run / "predictions.zarr"),
            )
        }
    for name, rate in per_channel.items():
        print(f"  real values, {name}: {rate:.3f} bytes per position and channel")
    return {
        "source": str(run),
        "positions": positions,
        "channels": channels,
        "per_channel": per_channel,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromosomes", default="chr21", help="comma-separated GRCh38 names")
    parser.add_argument("--gene-fraction", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="processes of merge and tracks")
    parser.add_argument("--out", help="work directory (kept); default: a temporary one")
    parser.add_argument(
        "--real",
        help="a finished run of a real model (e.g. SpliceAI on the bundled region): its bytes "
        "per position and channel give a second extrapolation",
    )
    parser.add_argument(
        "--child", nargs=3, metavar=("STAGE", "DIR", "OPTIONS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        stage, work, options = args.child
        print(json.dumps(run_stage(stage, Path(work), json.loads(options))), flush=True)
        return

    chromosomes = args.chromosomes.split(",")
    work = Path(args.out or tempfile.mkdtemp(prefix="bench-genome-"))
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    began = time.perf_counter()
    genes = gene_table(args.seed)
    lines = write_gtf(genes, work / "gencode.gtf.gz", args.seed)
    write_genome(work / "genome.fa", chromosomes, args.seed)
    print(
        f"inputs ({time.perf_counter() - began:.0f} s): GTF with {len(genes):,} genes, "
        f"{int(genes.transcripts.sum()):,} transcripts, {lines:,} lines "
        f"({(work / 'gencode.gtf.gz').stat().st_size / 1e6:.0f} MB gzip); random genome "
        f"{','.join(chromosomes)} ({sum(GRCH38[c] for c in chromosomes) / 1e6:.1f} Mb of "
        f"{sum(GRCH38.values()) / 1e9:.2f} Gb)"
    )
    on_run = genes[genes["chrom"].isin(chromosomes) & genes["gene_type"].isin(DEFAULT_TYPES)]
    keep = on_run.sample(frac=args.gene_fraction, random_state=args.seed)["gene_id"].tolist()
    options = {
        "chromosomes": chromosomes,
        "genes": keep if args.gene_fraction < 1 else [],
        "large_query_end": 10_000_000,
        "workers": args.workers,
    }

    n_channels = len(WIDE_CHANNELS)
    results: dict[str, dict[str, Any]] = {}
    for stage in OUTPUTS:
        results[stage] = child(stage, work, options)
        print(f"{stage:8s} {json.dumps(results[stage])}", flush=True)
    positions = results["genes"]["positions"]
    windows = results["tile"]["windows"]

    print(
        f"\nrun: {results['genes']['genes']:,} genes on {','.join(chromosomes)}, "
        f"{positions:,} scored positions, {windows:,} windows, {n_channels} channels"
    )
    header = (
        f"{'stage':8s} {'output':18s} {'seconds':>8s} {'peak RSS':>9s} {'bytes':>12s} "
        f"{'files':>6s} {'B/pos':>7s} {'B/pos/ch':>9s}"
    )
    print(header)
    sizes: dict[str, int] = {}
    for stage, outputs in OUTPUTS.items():
        r = results[stage]
        for i, name in enumerate(outputs or ["-"]):
            size, files = footprint(work / name) if outputs else (0, 0)
            sizes[name] = size
            timing = f"{r['seconds']:8.1f} {r['peak_rss_mib']:7.0f}Mi" if i == 0 else " " * 18
            per_ch = size / positions / (1 if name.startswith("windows") else n_channels)
            print(
                f"{stage if i == 0 else '':8s} {name:18s} {timing} {size:12,d} {files:6d} "
                f"{size / positions:7.3f} {per_ch:9.3f}"
            )
    for stage, r in results.items():
        for key, value in r.items():
            if key not in ("seconds", "peak_rss_mib"):
                print(f"  {stage}: {key} = {value}")

    real = real_rates(Path(args.real)) if args.real else None
    print("\ngenome-wide extrapolation (GRCh38, GENCODE-size annotation, 18 channels):")
    if real:
        print(
            f"  (second column: {real['channels']} channels of {real['source']} over "
            f"{real['positions']:,} positions, bytes per position and channel x 18)"
        )
    for label, types in (("protein_coding", ["protein_coding"]), ("default", DEFAULT_TYPES)):
        counts = genome_wide_counts(genes, types)
        pos_ratio = counts["positions"] / positions
        win_ratio = counts["windows"] / windows
        print(
            f"  {label}: {counts['positions'] / 1e9:.2f} G positions, {counts['windows']:,} windows"
        )
        totals = [0.0, 0.0]
        for name, size in sizes.items():
            if name == "-":
                continue
            scaled = size * (win_ratio if name in PER_WINDOW else pos_ratio)
            line = f"    {name:18s} {gib(scaled)}"
            totals[0] += scaled
            if real:
                per = real["per_channel"].get(name)
                other = scaled if per is None else per * n_channels * counts["positions"]
                totals[1] += other
                line += f" {gib(other)}"
            print(line)
        print(f"    {'total':18s} {gib(totals[0])}" + (f" {gib(totals[1])}" if real else ""))
        kept = totals[1 if real else 0] - (
            (real["per_channel"]["predictions.zarr"] * n_channels * counts["positions"])
            if real
            else sizes["predictions.zarr"] * win_ratio
        )
        print(f"    {'total, keep_predictions: false':32s} {gib(kept)}")
        for stage in ("tile", "predict", "merge", "tracks"):
            ratio = win_ratio if stage in ("tile", "predict") else pos_ratio
            hours = results[stage]["seconds"] * ratio / 3600
            print(f"    {stage} time, one process here: {hours:.2f} h")
    if not args.out:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
