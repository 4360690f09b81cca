"""The whole pipeline (genes -> tile -> predict -> merge) against an independent re-derivation.

For sampled rows of ``scores/`` the test cuts the window itself from the FASTA with pyfaidx,
reverse-complements it with pyfaidx for minus-strand genes, runs ``postprocess(model(window))``
and compares with the stored probabilities. It shares no code with ``genome``/``tiling``/``merge``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyfaidx
import pytest
import torch

from sptx_pipeline import store
from sptx_pipeline.annotation import select_genes
from sptx_pipeline.inference import predict
from sptx_pipeline.merge import merge
from sptx_pipeline.models import load_model
from sptx_pipeline.models.random_checkpoint import TINY_CONFIG, write_random_checkpoint
from sptx_pipeline.tiling import tile

pytestmark = pytest.mark.slow  # two whole pipelines re-derived from the FASTA (~35 s)

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "example"
CHR19_FASTA = EXAMPLE / "grch37_chr19_1-1500000.fa"
CHR19_GTF = EXAMPLE / "grch37_chr19_1-1500000.gtf"
# STK11 (+) and CBARP (-) overlap on opposite strands; EFNA2 lies inside MUM1 (both +).
CHR19_GENES = ["STK11", "CBARP", "EFNA2", "MUM1", "GAMT"]
CHUNK = 500
BASES = {"A": 0, "C": 1, "G": 2, "T": 3}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_random_checkpoint(tmp_path_factory.mktemp("ckpt"), seed=7, **TINY_CONFIG)


def run_pipeline(fasta: Path, gtf: Path, genes: list[str], model: str, out: Path) -> Path:
    """Every stage through its package function, as the Snakefile chains them."""
    select_genes(
        str(gtf),
        str(fasta),
        out / "genes.parquet",
        out / "regions.parquet",
        gene_types=[],
        chromosomes=[],
        genes=genes,
        missing_contigs="error",
    )
    flank = load_model(model).flank
    tile(
        str(fasta),
        out / "regions.parquet",
        out / "windows.zarr",
        out / "windows.parquet",
        flank=flank,
        chunk_size=CHUNK,
        shard_size=16,
    )
    predict(
        out / "windows.zarr",
        out / "predictions.zarr",
        model,
        device="cpu",
        batch_size=8,
        output_dtype="float32",
        cluster={"type": "local", "n_workers": 1},
        progress=False,
    )
    merge(
        out / "windows.parquet",
        out / "predictions.zarr",
        out / "regions.parquet",
        out / "genes.parquet",
        out / "scores",
        out / "sites.parquet",
    )
    return out


def independent_window(
    fasta: pyfaidx.Fasta, chrom: str, strand: str, pos: int, flank: int
) -> tuple[torch.Tensor, int]:
    """Tokens of the window holding 1-based ``pos`` and the output index of ``pos`` in it."""
    k = (pos - 1) // CHUNK
    start, end = k * CHUNK - flank, (k + 1) * CHUNK + flank
    length = len(fasta[chrom])
    record = fasta[chrom][max(start, 0) : min(end, length)]
    seq = record.reverse.complement.seq if strand == "-" else record.seq
    left, right = "N" * max(0, -start), "N" * max(0, end - length)
    seq = (right + seq + left) if strand == "-" else (left + seq + right)
    tokens = torch.tensor([[BASES.get(base, 4) for base in seq.upper()]])
    index = (pos - 1 - k * CHUNK) if strand == "+" else ((k + 1) * CHUNK - pos)
    return tokens, index


def sample_rows(scores: pd.DataFrame, genes: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """Random rows plus every row within 10 nt of a gene end."""
    near_ends = pd.concat(
        scores[
            (scores.chrom == g.chrom)
            & (scores.strand == g.strand)
            & (((scores.pos - g.start).abs() <= 10) | ((scores.pos - g.end).abs() <= 10))
        ]
        for g in genes.itertuples()
    )
    rest = scores.sample(n=min(n, len(scores)), random_state=seed)
    return pd.concat([near_ends, rest]).drop_duplicates(["chrom", "strand", "pos"])


def check_against_rederivation(
    out: Path, fasta_path: Path, model_source: str, n: int = 200
) -> pd.DataFrame:
    scores = pd.read_parquet(out / "scores")
    scores["strand"] = scores["strand"].astype(str).map({"plus": "+", "minus": "-"})
    scores["chrom"] = scores["chrom"].astype(str)
    genes = pd.read_parquet(out / "genes.parquet")
    rows = sample_rows(scores, genes, n, seed=3)
    model = load_model(model_source)
    fasta = pyfaidx.Fasta(str(fasta_path))
    channels = list(model.channels)
    for row in rows.itertuples():
        tokens, index = independent_window(fasta, row.chrom, row.strand, row.pos, model.flank)
        with torch.inference_mode():
            expected = model.postprocess(model(tokens))[0, index].numpy()
        stored = np.array([getattr(row, c) for c in channels], dtype=np.float32)
        np.testing.assert_allclose(
            stored, expected, rtol=0, atol=2e-5, err_msg=f"{row.chrom}:{row.pos} {row.strand}"
        )
    return rows


def check_coverage(out: Path) -> None:
    """Rows per (chrom, strand) = union of gene bodies; unique pos; each window once."""
    scores = pd.read_parquet(out / "scores")
    scores["strand"] = scores["strand"].astype(str).map({"plus": "+", "minus": "-"})
    genes = pd.read_parquet(out / "genes.parquet")
    for (chrom, strand), group in scores.groupby(["chrom", "strand"], observed=True):
        covered = np.zeros(int(genes.end.max()) + 1, dtype=bool)
        for g in genes[(genes.chrom == chrom) & (genes.strand == strand)].itertuples():
            covered[g.start : g.end + 1] = True
        assert len(group) == covered.sum()
        assert group.pos.is_unique
        assert covered[group.pos.to_numpy()].all()
    windows = pd.read_parquet(out / "windows.parquet")
    assert not windows.duplicated(["chrom", "strand", "tile"]).any()
    n_shards = store.n_shards(len(windows), 16)
    assert all(store.read_done(out / "predictions.zarr", s) for s in range(n_shards))


def test_real_chr19_region_matches_rederivation(checkpoint: Path, tmp_path: Path) -> None:
    out = run_pipeline(CHR19_FASTA, CHR19_GTF, CHR19_GENES, str(checkpoint), tmp_path)
    rows = check_against_rederivation(out, CHR19_FASTA, str(checkpoint), n=200)
    assert len(rows) >= 200 and set(rows.strand) == {"+", "-"}
    overlap = rows[(rows.strand == "+") & rows.pos.between(1286153, 1300236)]  # EFNA2 in MUM1
    assert len(overlap) > 0
    check_coverage(out)


def test_chromosome_start_and_short_contig(checkpoint: Path, tmp_path: Path) -> None:
    """First window of a chromosome (N padding on the left) and a contig shorter than the flank."""
    rng = np.random.default_rng(11)
    contigs = {"chrA": 2600, "chrB": 150}
    with open(tmp_path / "toy.fa", "w") as handle:
        for name, length in contigs.items():
            seq = "".join(rng.choice(list("ACGTacgtN"), size=length))
            handle.write(f">{name}\n{seq}\n")
    lines = [
        ("chrA", 1, 700, "+", "g1"),
        ("chrA", 400, 2600, "-", "g2"),
        ("chrA", 1990, 2600, "+", "g3"),
        ("chrB", 5, 140, "-", "g4"),
    ]
    with open(tmp_path / "toy.gtf", "w") as handle:
        for chrom, start, end, strand, name in lines:
            attrs = f'gene_id "{name}"; gene_name "{name}"; gene_type "protein_coding";'
            handle.write(f"{chrom}\ttest\tgene\t{start}\t{end}\t.\t{strand}\t.\t{attrs}\n")
    out = run_pipeline(
        tmp_path / "toy.fa", tmp_path / "toy.gtf", [], str(checkpoint), tmp_path / "run"
    )
    rows = check_against_rederivation(out, tmp_path / "toy.fa", str(checkpoint), n=200)
    assert {"chrA", "chrB"} <= set(rows.chrom) and (rows.pos <= 10).any()
    check_coverage(out)
