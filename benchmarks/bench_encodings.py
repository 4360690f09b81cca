"""Bytes per position and channel of ``scores/`` and bigWig tracks under different encodings.

Reads every row of a finished run's ``scores/`` (give it real model output: e.g. SpliceAI on the
bundled chr19 region, ``snakemake --cores all --config model=spliceai 'genes=[]' gene_types=[]
outdir=results/spliceai-chr19``) and rewrites it:

- Parquet: the current writer settings (ZSTD 3, PLAIN, no dictionary) against byte-stream-split
  floats, DELTA_BINARY_PACKED ``pos``, dictionary-encoded floats, ZSTD levels, and float16 columns.
  Each variant is read back and compared with the input (lossless ones must be equal).
- bigWig (pybigtools, which writes bedGraph sections: one entry per run of equal values): the
  exact float32 values against values rounded to a grid of 2^-k.

Prints bytes per position per channel, write seconds and, for bigWig, entries per position.

    python benchmarks/bench_encodings.py --scores results/spliceai-chr19/scores --fasta genome.fa
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sptx_pipeline.tracks import chrom_sizes, runs  # noqa: E402

PARQUET_VARIANTS = {
    "current (zstd3, plain)": dict(compression="zstd", compression_level=3, use_dictionary=False),
    "bss floats": dict(
        compression="zstd", compression_level=3, use_dictionary=False, use_byte_stream_split=True
    ),
    "bss floats + delta pos": dict(
        compression="zstd",
        compression_level=3,
        use_dictionary=False,
        column_encoding="bss+delta",
    ),
    "bss + delta, zstd 9": dict(
        compression="zstd", compression_level=9, use_dictionary=False, column_encoding="bss+delta"
    ),
    "dictionary floats + delta pos": dict(
        compression="zstd", compression_level=3, column_encoding="dict+delta"
    ),
    "float16 columns, bss + delta": dict(
        compression="zstd",
        compression_level=3,
        use_dictionary=False,
        column_encoding="bss+delta",
        float16=True,
    ),
}


def read_partitions(scores: Path) -> list[tuple[str, pa.Table]]:
    """One table per ``chrom=/strand=`` partition (files concatenated in order)."""
    out = []
    for directory in sorted(scores.glob("chrom=*/strand=*")):
        files = sorted(directory.glob("*.parquet"))
        table = pa.concat_tables(pq.read_table(f) for f in files).replace_schema_metadata(None)
        out.append((directory.parent.name.removeprefix("chrom="), table))
    return out


def write_variant(table: pa.Table, path: Path, options: dict) -> None:
    options = dict(options)
    encoding = options.pop("column_encoding", None)
    float16 = options.pop("float16", False)
    floats = [n for n in table.column_names if n != "pos"]
    if float16:
        table = table.cast(
            pa.schema([pa.field("pos", pa.int64())] + [pa.field(n, pa.float16()) for n in floats])
        )
    if encoding == "bss+delta":
        options["use_byte_stream_split"] = floats
        options["column_encoding"] = {"pos": "DELTA_BINARY_PACKED"}
    elif encoding == "dict+delta":
        options["use_dictionary"] = floats
        options["column_encoding"] = {"pos": "DELTA_BINARY_PACKED"}
    pq.write_table(table, path, row_group_size=128 * 1024, write_statistics=True, **options)


def parquet_part(parts: list[tuple[str, pa.Table]], work: Path) -> None:
    rows = sum(t.num_rows for _, t in parts)
    channels = parts[0][1].num_columns - 1
    print(f"Parquet: {rows:,} positions x {channels} channels in {len(parts)} partitions")
    print(
        f"  {'variant':32s} {'B/pos':>7s} {'B/pos/ch':>9s} {'write s':>8s} {'read s':>7s}  lossless"
    )
    for name, options in PARQUET_VARIANTS.items():
        size, wrote, read, equal = 0, 0.0, 0.0, True
        for i, (_, table) in enumerate(parts):
            path = work / f"p{i}.parquet"
            began = time.perf_counter()
            write_variant(table, path, options)
            wrote += time.perf_counter() - began
            size += path.stat().st_size
            began = time.perf_counter()
            back = pq.read_table(path)
            read += time.perf_counter() - began
            back = back.cast(table.schema)
            equal &= back.equals(table)
        print(
            f"  {name:32s} {size / rows:7.3f} {size / rows / channels:9.3f} {wrote:8.2f} "
            f"{read:7.2f}  {'yes' if equal else 'NO'}"
        )


def bigwig_part(parts: list[tuple[str, pa.Table]], sizes: dict[str, int], work: Path) -> None:
    import pybigtools

    channels = [n for n in parts[0][1].column_names if n != "pos"]
    rows = sum(t.num_rows for _, t in parts)
    print(f"\nbigWig (bedGraph sections), all {len(channels)} channels, both strands:")
    print(
        f"  {'values':28s} {'B/pos/ch':>9s} {'entries/pos':>12s} {'write s':>8s} {'max error':>10s}"
    )
    for bits in (None, 16, 12, 10, 8):
        total, entries, seconds, error = 0, 0, 0.0, 0.0
        for c in channels:
            for i, (chrom, table) in enumerate(parts):
                pos = table["pos"].to_numpy()
                exact = table[c].to_numpy().astype(np.float32)
                values = exact if bits is None else np.round(exact * 2**bits) / 2**bits
                values = values.astype(np.float32)
                error = max(error, float(np.abs(values - exact).max()))
                starts, ends, vals = runs(pos, values)
                entries += len(starts)
                path = work / f"t{i}.bw"
                began = time.perf_counter()
                pybigtools.open(str(path), "w").write(
                    {chrom: sizes[chrom]},
                    zip(
                        [chrom] * len(starts),
                        starts.tolist(),
                        ends.tolist(),
                        vals.tolist(),
                        strict=True,
                    ),
                )
                seconds += time.perf_counter() - began
                total += path.stat().st_size
        label = "exact (float32)" if bits is None else f"rounded to 2^-{bits} ({2.0**-bits:.2g})"
        print(
            f"  {label:28s} {total / rows / len(channels):9.3f} "
            f"{entries / rows / len(channels):12.3f} {seconds:8.2f} {error:10.2g}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scores", required=True, type=Path)
    parser.add_argument("--fasta", required=True)
    parser.add_argument("--skip", choices=["parquet", "bigwig"], help="leave one part out")
    args = parser.parse_args()
    parts = read_partitions(args.scores)
    dtype = parts[0][1].schema.field(1).type
    print(f"{args.scores}: value type {dtype}")
    with tempfile.TemporaryDirectory(prefix="bench-enc-") as tmp:
        if args.skip != "parquet":
            parquet_part(parts, Path(tmp))
        if args.skip != "bigwig":
            bigwig_part(parts, chrom_sizes(args.fasta), Path(tmp))


if __name__ == "__main__":
    main()
