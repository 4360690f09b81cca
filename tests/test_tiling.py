"""The tile stage against an independent re-derivation of the tile grid and of every window."""

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import zarr
from Bio import bgzf

from sptx_pipeline import store
from sptx_pipeline.annotation import select_genes
from sptx_pipeline.provenance import sha256_file
from sptx_pipeline.tiling import tile
from tests.genome_fixtures import (
    EXAMPLE_FASTA,
    EXAMPLE_GTF,
    random_sequence,
    reference_tokens,
    reference_window,
    write_fasta,
    write_gtf,
)

FLANK, T, SHARD = 25, 10, 4
COMPLEMENT = {"A": "T", "C": "G", "G": "C", "T": "A", "N": "N"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A three-contig genome (one shorter than the flank) with overlapping genes on both strands."""
    tmp = tmp_path_factory.mktemp("tile")
    rng = np.random.default_rng(5)
    contigs = {
        "chrB": random_sequence(rng, 437),
        "chrA": random_sequence(rng, 260),
        "chrS": "ACGTG",
    }
    genes = [
        ("chrB", 1, 37, "+", "B1"),  # first window of the chromosome: N padding
        ("chrB", 30, 95, "+", "B2"),  # overlaps B1
        ("chrB", 150, 151, "+", "B3"),  # two bases
        ("chrB", 5, 61, "-", "B4"),
        ("chrB", 331, 437, "-", "B5"),  # to the chromosome end
        ("chrB", 400, 420, "-", "B6"),  # inside B5
        ("chrA", 100, 109, "-", "A1"),
        ("chrA", 120, 200, "+", "A2"),
        ("chrS", 2, 4, "-", "S1"),  # chromosome shorter than the flank
    ]
    fasta = write_fasta(tmp / "g.fa", contigs)
    gtf = write_gtf(tmp / "a.gtf", genes)
    genes_table, regions = select_genes(gtf, fasta, tmp / "genes.parquet", tmp / "regions.parquet")
    table = tile(fasta, tmp / "regions.parquet", tmp / "w.zarr", tmp / "w.parquet", FLANK, T, SHARD)
    tokens = store.open_windows(tmp / "w.zarr")[:]
    return {
        "tmp": tmp,
        "fasta": fasta,
        "contigs": contigs,
        "genes": genes_table,
        "regions": regions,
        "table": table,
        "tokens": tokens,
    }


def gene_body_positions(genes):
    """(chrom, strand) -> 0-based positions in the union of gene bodies of genes.parquet."""
    out = {}
    for gene in genes.itertuples():
        out.setdefault((gene.chrom, gene.strand), set()).update(range(gene.start - 1, gene.end))
    return out


def test_windows_table_and_store_contract(run):
    table, tmp = run["table"], run["tmp"]
    disk = pd.read_parquet(tmp / "w.parquet")
    meta = pq.read_schema(tmp / "w.parquet").metadata
    geometry = {k: int(meta[k.encode()]) for k in ("flank", "chunk_size", "shard_size")}
    assert disk.equals(table)
    assert list(table.columns) == [
        "window",
        "chrom",
        "strand",
        "tile",
        "target_start",
        "target_end",
        "shard",
    ]
    assert geometry == {"flank": FLANK, "chunk_size": T, "shard_size": SHARD}
    assert table["window"].tolist() == list(range(len(table)))
    assert (table["shard"] == table["window"] // SHARD).all()
    assert (table["target_start"] == table["tile"] * T).all()
    assert (table["target_end"] == table["target_start"] + T).all()
    order = {"chrB": 0, "chrA": 1, "chrS": 2}  # FASTA order
    keys = list(
        zip(table.chrom.map(order), table.strand.map({"+": 0, "-": 1}), table.tile, strict=True)
    )
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    group = zarr.open_group(str(tmp / "w.zarr"), mode="r")
    assert group.attrs["flank"] == FLANK and group.attrs["chunk_size"] == T
    assert group.attrs["shard_size"] == SHARD
    assert group.attrs["fasta_sha256"] == sha256_file(run["fasta"])
    assert group.attrs["fasta"] == str(run["fasta"].resolve())
    arr = group["tokens"]
    assert arr.dtype == np.uint8 and arr.shape == (len(table), T + 2 * FLANK)
    assert arr.shards == (SHARD, T + 2 * FLANK)
    assert not list(tmp.glob(".*tmp*"))


def test_tile_grid_rederived(run):
    """Expected tiles: every k whose [kT, (k+1)T) meets a gene body on that strand, and no other."""
    table = run["table"]
    for (chrom, strand), positions in gene_body_positions(run["genes"]).items():
        expected = sorted({p // T for p in positions})
        got = table[(table.chrom == chrom) & (table.strand == strand)]["tile"].tolist()
        assert got == expected, (chrom, strand)
    assert len(table) == sum(
        len({p // T for p in pos}) for pos in gene_body_positions(run["genes"]).values()
    )


def test_every_window_equals_independent_extraction(run):
    for row in run["table"].itertuples():
        seq = run["contigs"][row.chrom]
        expected = reference_tokens(
            reference_window(seq, row.target_start - FLANK, row.target_end + FLANK, row.strand)
        )
        assert run["tokens"][row.window].tolist() == expected, row


def test_random_gene_body_positions_map_back(run):
    """For random gene-body bases: the window containing it, and output index i of that window
    (plus: pos - target_start; minus: target_end - 1 - pos) sees that base at F + i."""
    rng = np.random.default_rng(6)
    table = run["table"].set_index(["chrom", "strand", "tile"])
    checked = 0
    for (chrom, strand), positions in gene_body_positions(run["genes"]).items():
        seq = run["contigs"][chrom]
        for pos in rng.choice(sorted(positions), size=min(60, len(positions)), replace=False):
            row = table.loc[(chrom, strand, pos // T)]
            assert row.target_start <= pos < row.target_end
            base = seq[pos].upper() if seq[pos].upper() in "ACGT" else "N"
            if strand == "+":
                i = pos - row.target_start
            else:
                i = row.target_end - 1 - pos
                base = COMPLEMENT[base]
            assert run["tokens"][row.window, FLANK + i] == reference_tokens(base)[0]
            checked += 1
    assert checked == 193


def test_targets_cover_gene_bodies_exactly_once(run):
    table = run["table"]
    for (chrom, strand), positions in gene_body_positions(run["genes"]).items():
        sel = table[(table.chrom == chrom) & (table.strand == strand)]
        covered = [p for r in sel.itertuples() for p in range(r.target_start, r.target_end)]
        assert len(covered) == len(set(covered))  # no base in two targets
        assert positions <= set(covered)  # every gene-body base in a target
        for r in sel.itertuples():  # every target meets a gene body
            assert positions & set(range(r.target_start, r.target_end))


def test_first_window_padded_and_short_chromosome(run):
    table, tokens, seq = run["table"], run["tokens"], run["contigs"]["chrB"]
    first = table[(table.chrom == "chrB") & (table.strand == "+") & (table.tile == 0)].window.item()
    assert tokens[first, :FLANK].tolist() == [4] * FLANK
    assert tokens[first, FLANK:].tolist() == reference_tokens(seq[: T + FLANK])
    minus0 = table[
        (table.chrom == "chrB") & (table.strand == "-") & (table.tile == 0)
    ].window.item()
    assert tokens[minus0, -FLANK:].tolist() == [4] * FLANK  # reverse complemented: N at the end
    last = table[(table.chrom == "chrB") & (table.strand == "-")].iloc[-1]
    assert last.target_end > len(seq)  # tile 43 runs past the end (437 bases)
    short = table[table.chrom == "chrS"]
    assert short[["strand", "tile"]].values.tolist() == [["-", 0]]
    # ACGTG reverse-complemented is CACGT, surrounded by N on both sides
    window = tokens[short.window.item()].tolist()
    assert window == [4] * (FLANK + T - 5) + reference_tokens("CACGT") + [4] * FLANK


def test_bgzip_fasta_gives_identical_windows(run):
    tmp = run["tmp"]
    bgz = tmp / "g.fa.bgz"
    with bgzf.BgzfWriter(str(bgz), "wb") as out:
        out.write(run["fasta"].read_bytes())
    table = tile(bgz, tmp / "regions.parquet", tmp / "b.zarr", tmp / "b.parquet", FLANK, T, 3)
    assert table.drop(columns="shard").equals(run["table"].drop(columns="shard"))
    assert np.array_equal(store.open_windows(tmp / "b.zarr")[:], run["tokens"])


def test_failed_tile_leaves_no_output_and_rerun_replaces(run, tmp_path):
    tmp = run["tmp"]
    bad = pd.DataFrame({"chrom": ["chrZ"], "strand": ["+"], "start": [0], "end": [5]})
    bad.to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match="contigs that are not in .*chrZ"):
        tile(
            run["fasta"],
            tmp_path / "bad.parquet",
            tmp_path / "w.zarr",
            tmp_path / "w.parquet",
            5,
            10,
        )
    assert list(tmp_path.iterdir()) == [tmp_path / "bad.parquet"]
    empty = bad.iloc[:0]
    empty.to_parquet(tmp_path / "empty.parquet")
    with pytest.raises(ValueError, match="no windows"):
        tile(
            run["fasta"],
            tmp_path / "empty.parquet",
            tmp_path / "w.zarr",
            tmp_path / "w.parquet",
            5,
            10,
        )
    # a second run over an existing store replaces it
    for chunk in (10, 7):
        table = tile(
            run["fasta"],
            tmp / "regions.parquet",
            tmp_path / "w.zarr",
            tmp_path / "w.parquet",
            5,
            chunk,
        )
        assert store.open_windows(tmp_path / "w.zarr").shape == (len(table), chunk + 10)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bad.parquet",
        "empty.parquet",
        "w.parquet",
        "w.zarr",
    ]


def test_example_region_against_pyfaidx(tmp_path):
    """The bundled example: GPX4 (+) and CBARP (-) on real chr19, F=4000, T=1000."""
    import pyfaidx

    select_genes(
        EXAMPLE_GTF,
        EXAMPLE_FASTA,
        tmp_path / "g.parquet",
        tmp_path / "r.parquet",
        genes=["GPX4", "CBARP"],
    )
    table = tile(
        EXAMPLE_FASTA,
        tmp_path / "r.parquet",
        tmp_path / "w.zarr",
        tmp_path / "w.parquet",
        4000,
        1000,
        8,
    )
    assert table.groupby("strand").size().to_dict() == {"+": 4, "-": 11}
    tokens = store.open_windows(tmp_path / "w.zarr")
    fasta = pyfaidx.Fasta(str(EXAMPLE_FASTA))
    for row in table.iloc[[0, 3, 4, 14]].itertuples():
        seq = fasta["chr19"][row.target_start - 4000 : row.target_end + 4000]
        text = str(seq).upper() if row.strand == "+" else str(seq.reverse.complement).upper()
        assert tokens[row.window].tolist() == reference_tokens(text)
