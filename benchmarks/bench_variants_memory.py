"""Peak RSS of the ``sptx variants`` driver against the number of VCF records.

A synthetic VCF of N sorted SNV records over the bundled chr19 region (positions drawn
uniformly from its sequence past the leading N, REF read from the FASTA, one other base as ALT)
is scored with the stand-in model of ``sptx_pipeline.testing`` (so the model costs next to
nothing) on a local cluster of worker *processes*: the driver process then holds only what the
driver holds (the records and result tables are streamed: ``variants.write_records``,
``write_results``, ``PartEntries``), and its peak RSS (``ru_maxrss``) is what this prints, per N,
together with the RSS after imports (the floor every run pays: Python, torch, Dask, pandas).

``--check`` also scores the smallest N's records in one in-memory pass (``read_records`` +
``score_records``) and compares them with the streamed ``variants.parquet`` (value-equal).

    python benchmarks/bench_variants_memory.py [--sizes 100000 1000000] [--check]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FASTA = ROOT / "config/example/grch37_chr19_1-1500000.fa"
GTF = ROOT / "config/example/grch37_chr19_1-1500000.gtf"
FIRST_BASE = 60_001  # the region starts with about 60 kb of N
SWAP = {"A": "G", "C": "T", "G": "A", "T": "C"}


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def write_vcf(path: Path, n: int, seed: int = 0) -> None:
    """``n`` SNV records, sorted, with the REF of the FASTA (contig ``19``)."""
    import pyfaidx

    sequence = str(pyfaidx.Fasta(str(FASTA), as_raw=True)["chr19"][:]).upper()
    rng = np.random.default_rng(seed)
    positions = np.sort(rng.integers(FIRST_BASE, len(sequence) + 1, n))
    with open(path, "w") as out:
        out.write("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
        for start in range(0, n, 100_000):
            block = positions[start : start + 100_000]
            out.write(
                "".join(
                    f"19\t{p}\t.\t{sequence[p - 1]}\t{SWAP.get(sequence[p - 1], 'A')}\t.\t.\t.\n"
                    for p in block
                )
            )


def run_driver(vcf: Path, genes: Path, exons: Path, out: Path, workers: int) -> None:
    """The measured process: one ``score_variants`` run, then its peak RSS as JSON."""
    from sptx_pipeline.testing import StandInFactory
    from sptx_pipeline.variants import score_variants

    floor = peak_rss_mb()
    began = time.perf_counter()
    summary = score_variants(
        vcf,
        FASTA,
        genes,
        StandInFactory(),
        out / "variants.parquet",
        out / "variants.vcf.gz",
        exons=exons,
        device="cpu",
        cluster={"type": "local", "n_workers": workers, "processes": True},
        progress=False,
    )
    print(
        json.dumps(
            {
                "records": summary.items,
                "seconds": round(time.perf_counter() - began, 1),
                "rss_after_imports_mb": round(floor, 1),
                "peak_rss_mb": round(peak_rss_mb(), 1),
            }
        )
    )


def check_in_memory(vcf: Path, genes: Path, exons: Path, out: Path) -> bool:
    """The streamed ``variants.parquet`` equals what the in-memory driver made: every record
    read at once, ``score_records`` per shard (the default size, as the run), tables joined."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sptx_pipeline.options import DEFAULT_VARIANT_SHARD_SIZE as SHARD
    from sptx_pipeline.testing import StandInFactory
    from sptx_pipeline.variants import Annotation, Settings, score_records
    from sptx_pipeline.vcf import read_records

    annotation = Annotation.load(str(FASTA), str(genes), str(exons))
    model = StandInFactory()().eval()
    records = read_records(vcf)
    settings = Settings("spliceai", 50, False, 50)
    expected = pa.concat_tables(
        [
            score_records(records[i : i + SHARD], annotation, settings, model)
            for i in range(0, len(records), SHARD)
        ]
    )
    got = pq.read_table(out / "variants.parquet")
    return got.replace_schema_metadata(None).equals(expected)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--driver", nargs=4, metavar=("VCF", "GENES", "EXONS", "OUT"))
    args = parser.parse_args()
    if args.driver:
        vcf, genes, exons, out = map(Path, args.driver)
        run_driver(vcf, genes, exons, out, args.workers)
        return
    from sptx_pipeline.annotation import select_genes

    print(f"CPU: {cpu_model()}; driver and {args.workers} worker process(es), stand-in model")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        genes, exons = base / "genes.parquet", base / "exons.parquet"
        select_genes(GTF, FASTA, genes, base / "regions.parquet", out_exons=exons)
        for n in args.sizes:
            vcf, out = base / f"{n}.vcf", base / f"out{n}"
            write_vcf(vcf, n)
            command = [sys.executable, __file__, "--workers", str(args.workers), "--driver"]
            result = subprocess.run(
                [*command, str(vcf), str(genes), str(exons), str(out)],
                capture_output=True,
                text=True,
            )
            if result.returncode:
                sys.exit(result.stderr[-3000:])
            measured = json.loads(result.stdout.strip().splitlines()[-1])
            print(
                f"{n:>9,} records: driver peak RSS {measured['peak_rss_mb']:.0f} MB "
                f"(after imports {measured['rss_after_imports_mb']:.0f} MB), "
                f"{measured['seconds']:.0f} s"
            )
            if args.check and n == min(args.sizes):
                equal = check_in_memory(vcf, genes, exons, out)
                print(f"{n:>9,} records: streamed == in memory: {equal}")
            vcf.unlink()


if __name__ == "__main__":
    main()
