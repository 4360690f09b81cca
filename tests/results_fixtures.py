"""A synthetic run written straight to the on-disk contract of DESIGN.md ("Files between stages").

Predictions come from a known per-(chrom, strand) table ``truth[chrom, strand][p, c]`` indexed
by genomic 0-based position ``p``: a plus window stores ``truth[ts:te]``, a minus window stores it
reversed (index ``i`` = genomic ``te - 1 - i``). Tests compare results against ``truth`` directly,
which re-derives the coordinates independently of the code under test.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sptx_pipeline import store
from sptx_pipeline.merge import merge
from sptx_pipeline.models.sptransformer import SPTRANSFORMER_CHANNELS

SPTX_CHANNELS = list(SPTRANSFORMER_CHANNELS)
SPLICEAI_CHANNELS = ["no_splice", "acceptor", "donor"]
CHROM_SIZES = {"chrA": 2300, "chrB": 1250}
T = 100
SHARD = 3

# gene_id, gene_name, chrom, start, end (1-based inclusive), strand
GENES = [
    ("G1.1", "ALPHA", "chrA", 1, 260, "+"),  # starts at the chromosome start (first tile)
    ("G2.1", "BETA", "chrA", 200, 650, "+"),  # overlaps G1
    ("G3.1", "GAMMA", "chrA", 1001, 1100, "+"),  # exactly one tile
    ("G4.1", "DELTA", "chrA", 150, 420, "-"),
    ("G5.1", "EPSILON", "chrA", 1950, 2300, "-"),  # ends at the chromosome end
    ("G6.1", "ZETA", "chrB", 37, 1163, "-"),
    ("G7.1", "ETA", "chrB", 500, 540, "-"),  # nested in G6
]


@dataclass
class Run:
    outdir: Path
    channels: list[str]
    truth: dict[tuple[str, str], np.ndarray]  # float32 values as stored (after output dtype)
    genes: pd.DataFrame
    regions: pd.DataFrame
    windows: pd.DataFrame

    @property
    def scores(self) -> Path:
        return self.outdir / "scores"

    @property
    def sites(self) -> Path:
        return self.outdir / "sites.parquet"

    def expected(self, chrom: str, strand: str) -> pd.DataFrame:
        """All positions inside the regions of (chrom, strand), from ``truth``."""
        reg = self.regions[(self.regions.chrom == chrom) & (self.regions.strand == strand)]
        pos0 = np.concatenate([np.arange(s, e) for s, e in zip(reg.start, reg.end, strict=True)])
        pos0 = np.unique(pos0)
        frame = pd.DataFrame(self.truth[(chrom, strand)][pos0], columns=self.channels)
        frame.insert(0, "pos", pos0 + 1)
        return frame


def _genes_frame() -> pd.DataFrame:
    rows = [(i, n, "protein_coding", c, s, e, st) for i, n, c, s, e, st in GENES]
    cols = ["gene_id", "gene_name", "gene_type", "chrom", "start", "end", "strand"]
    return pd.DataFrame(rows, columns=cols)


def _regions_frame(genes: pd.DataFrame) -> pd.DataFrame:
    out = []
    for (chrom, strand), g in genes.groupby(["chrom", "strand"], sort=True):
        intervals = sorted(zip(g.start - 1, g.end, strict=True))
        merged = [list(intervals[0])]
        for s, e in intervals[1:]:
            if s <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e)
            else:
                merged.append([s, e])
        out += [(chrom, strand, s, e) for s, e in merged]
    return pd.DataFrame(out, columns=["chrom", "strand", "start", "end"])


def _windows_frame(regions: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for chrom in CHROM_SIZES:
        for strand in "+-":
            reg = regions[(regions.chrom == chrom) & (regions.strand == strand)]
            tiles = sorted(
                {
                    k
                    for s, e in zip(reg.start, reg.end, strict=True)
                    for k in range(s // T, (e - 1) // T + 1)
                }
            )
            rows += [(chrom, strand, k, k * T, (k + 1) * T) for k in tiles]
    frame = pd.DataFrame(rows, columns=["chrom", "strand", "tile", "target_start", "target_end"])
    frame.insert(0, "window", np.arange(len(frame), dtype=np.int64))
    frame["shard"] = frame["window"] // SHARD
    return frame


def _truth(
    channels: list[str], seed: int, dtype: str, peaks: bool = False
) -> dict[tuple[str, str], np.ndarray]:
    """Random probabilities per position; ``peaks``: mostly near zero with a few strong sites
    (used for the README picture, which then looks more like a real track)."""
    rng = np.random.default_rng(seed)
    alpha = [200.0, 0.05, 0.05] if peaks else [8.0, 0.3, 0.3]
    truth = {}
    for chrom, size in CHROM_SIZES.items():
        n = -(-size // T) * T  # the last tile may run past the chromosome end
        for strand in "+-":
            splice = rng.dirichlet(alpha, size=n)
            if peaks:  # a strong acceptor or donor at about 1 position in 40
                sites = np.flatnonzero(rng.random(n) < 0.025)
                kind = rng.integers(1, 3, size=len(sites))
                strength = rng.uniform(0.2, 0.95, size=len(sites))
                splice[sites] = 0.0
                splice[sites, kind] = strength
                splice[sites, 0] = 1 - strength
            tissue = rng.random((n, len(channels) - 3))
            values = np.concatenate([splice, tissue], axis=1)
            truth[(chrom, strand)] = values.astype(dtype).astype(np.float32)
    return truth


def write_inputs(
    outdir: Path,
    channels: list[str] = SPTX_CHANNELS,
    seed: int = 0,
    dtype: str = "float16",
    complete: bool = True,
    peaks: bool = False,
) -> Run:
    """genes/regions/windows parquet, predictions.zarr (all shards done unless not ``complete``)
    and a FASTA + GTF of the synthetic genome."""
    outdir.mkdir(parents=True, exist_ok=True)
    genes = _genes_frame()
    regions = _regions_frame(genes)
    windows = _windows_frame(regions)
    truth = _truth(channels, seed, dtype, peaks)
    genes.to_parquet(outdir / "genes.parquet", index=False)
    regions.to_parquet(outdir / "regions.parquet", index=False)
    table = pa.Table.from_pandas(windows, preserve_index=False)
    meta = {b"flank": b"50", b"chunk_size": str(T).encode(), b"shard_size": str(SHARD).encode()}
    pq.write_table(
        table.replace_schema_metadata({**table.schema.metadata, **meta}), outdir / "windows.parquet"
    )

    arr = store.create_predictions(
        outdir / "predictions.zarr",
        len(windows),
        T,
        channels,
        SHARD,
        dtype,
        {"chunk_size": T, "model": {"source": "synthetic", "sha256": "0" * 64}},
    )
    for shard in store.shard_grid(len(windows), SHARD):
        lo, hi = shard.start, shard.stop
        block = np.empty((hi - lo, T, len(channels)), dtype=dtype)
        for j, w in enumerate(windows.itertuples()):
            if lo <= j < hi:
                values = truth[(w.chrom, w.strand)][w.target_start : w.target_end]
                block[j - lo] = values if w.strand == "+" else values[::-1]
        arr[lo:hi] = block
        if complete or shard.index % 2 == 0:
            stored = np.asarray(arr[lo:hi])  # the marker predict writes: range and checksum
            marker = {"start": lo, "stop": hi, "sha256": store.array_sha256(stored)}
            store.mark_done(outdir / "predictions.zarr", shard.index, marker)
    _write_fasta(outdir / "genome.fa", seed)
    _write_gtf(outdir / "genes.gtf")
    return Run(outdir, channels, truth, genes, regions, windows)


def _write_fasta(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    with open(path, "w") as handle:
        for chrom, size in CHROM_SIZES.items():
            seq = "".join(rng.choice(list("ACGT"), size))
            handle.write(f">{chrom}\n")
            for i in range(0, size, 60):
                handle.write(seq[i : i + 60] + "\n")


def _write_gtf(path: Path) -> None:
    """Two exons per gene (its first and last 30 nt) in one transcript, GENCODE-style attributes."""
    lines = []
    for gid, name, chrom, start, end, strand in GENES:
        attrs = (
            f'gene_id "{gid}"; transcript_id "T{gid}"; gene_name "{name}"; '
            'gene_type "protein_coding";'
        )
        lines.append(f"{chrom}\tsynthetic\tgene\t{start}\t{end}\t.\t{strand}\t.\t{attrs}")
        lines.append(f"{chrom}\tsynthetic\ttranscript\t{start}\t{end}\t.\t{strand}\t.\t{attrs}")
        for s, e in ((start, min(end, start + 29)), (max(start, end - 29), end)):
            lines.append(f"{chrom}\tsynthetic\texon\t{s}\t{e}\t.\t{strand}\t.\t{attrs}")
    path.write_text("\n".join(lines) + "\n")


def build_run(outdir: Path, channels: list[str] = SPTX_CHANNELS, **merge_kwargs) -> Run:
    """Inputs plus a finished merge into ``outdir/scores`` and ``outdir/sites.parquet``."""
    run = write_inputs(outdir, channels)
    merge(
        outdir / "windows.parquet",
        outdir / "predictions.zarr",
        outdir / "regions.parquet",
        outdir / "genes.parquet",
        run.scores,
        run.sites,
        provenance={"config": {"gtf": str(outdir / "genes.gtf")}},
        **merge_kwargs,
    )
    return run
