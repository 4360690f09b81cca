"""merge: coordinates on both strands, coverage, sites, file format, refusal and atomicity."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from sptx_pipeline import store
from sptx_pipeline.merge import merge
from sptx_pipeline.results import PROVENANCE_KEY
from tests.results_fixtures import GENES, SPLICEAI_CHANNELS, build_run, write_inputs


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return build_run(tmp_path_factory.mktemp("run"), row_group_rows=64, rows_per_file=300)


def _partition(run, chrom, strand):
    name = {"+": "plus", "-": "minus"}[strand]
    return pq.read_table(run.scores / f"chrom={chrom}" / f"strand={name}").to_pandas()


def _partitions(run):
    return sorted(set(zip(run.regions.chrom, run.regions.strand, strict=True)))


def test_scores_equal_independent_coordinates_on_both_strands(run):
    assert {s for _, s in _partitions(run)} == {"+", "-"}
    for chrom, strand in _partitions(run):
        got = _partition(run, chrom, strand)
        want = run.expected(chrom, strand)
        assert list(got.columns) == ["pos", *run.channels]
        np.testing.assert_array_equal(got["pos"].to_numpy(), want["pos"].to_numpy())
        np.testing.assert_array_equal(got[run.channels].to_numpy(), want[run.channels].to_numpy())


def test_coverage_is_the_union_of_gene_bodies(run):
    dirs = sorted(p.relative_to(run.scores).as_posix() for p in run.scores.glob("*/*"))
    want_dirs = sorted(
        f"chrom={c}/strand={'plus' if s == '+' else 'minus'}" for c, s in _partitions(run)
    )
    assert dirs == want_dirs
    for chrom, strand in _partitions(run):
        got = _partition(run, chrom, strand)["pos"].to_numpy()
        genes = [g for g in GENES if g[2] == chrom and g[5] == strand]
        union = set().union(*(range(g[3], g[4] + 1) for g in genes))
        assert len(got) == len(union)
        assert len(np.unique(got)) == len(got)
        assert np.all(np.diff(got) > 0)
        assert set(got.tolist()) == union


def test_file_format_row_groups_and_provenance(run):
    files = sorted(run.scores.rglob("*.parquet"))
    assert len(files) > len(_partitions(run))  # rolled over into several parts
    meta = pq.ParquetFile(files[0]).metadata
    schema = pq.read_schema(files[0])
    assert str(schema.field("pos").type) == "int64"
    assert all(str(schema.field(c).type) == "float" for c in run.channels)
    assert meta.num_row_groups > 1
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        assert group.num_rows <= 64
        assert group.column(0).compression == "ZSTD"
        stats = group.column(0).statistics
        assert stats.has_min_max and stats.min <= stats.max
    record = json.loads(schema.metadata[PROVENANCE_KEY])
    assert record["model"]["source"] == "synthetic"
    assert record["run"]["config"]["gtf"].endswith("genes.gtf")
    assert record["software"]["package"] == "sptx-pipeline"
    assert record["channels"] == run.channels


def test_sites_content(run):
    sites = pd.read_parquet(run.sites)
    tissues = run.channels[3:]
    assert list(sites.columns) == [
        "chrom",
        "pos",
        "strand",
        "site_type",
        "score",
        *tissues,
        "gene_ids",
    ]
    rows = []
    for chrom, strand in _partitions(run):
        exp = run.expected(chrom, strand)
        for site_type in ("acceptor", "donor"):
            hit = exp[exp[site_type] >= 0.1]
            for r in hit.itertuples(index=False):
                genes = sorted(
                    g[0]
                    for g in GENES
                    if g[2] == chrom and g[5] == strand and g[3] <= r.pos <= g[4]
                )
                values = [getattr(r, t) for t in tissues]
                rows.append(
                    (chrom, r.pos, strand, site_type, getattr(r, site_type), *values, genes)
                )
    want = pd.DataFrame(rows, columns=sites.columns)
    assert len(want) > 50 and (want.site_type == "donor").any()
    key = ["chrom", "strand", "pos", "site_type"]
    got = sites.sort_values(key).reset_index(drop=True)
    want = want.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(
        got.drop(columns="gene_ids"), want.drop(columns="gene_ids"), check_dtype=False
    )
    assert [sorted(g) for g in got.gene_ids] == list(want.gene_ids)
    assert any(len(g) == 2 for g in got.gene_ids)  # overlapping genes G1/G2 and G6/G7


def test_duckdb_and_pandas_read_scores(run):
    total = sum(len(run.expected(c, s)) for c, s in _partitions(run))
    glob = f"{run.scores}/**/*.parquet"
    con = duckdb.connect()
    n, strands = con.execute(
        f"SELECT count(*), list(DISTINCT strand ORDER BY strand) "
        f"FROM read_parquet('{glob}', hive_partitioning=true)"
    ).fetchone()
    assert n == total and strands == ["minus", "plus"]
    acc = con.execute(
        f"SELECT acceptor FROM read_parquet('{glob}', hive_partitioning=true) "
        "WHERE chrom = 'chrB' AND strand = 'minus' ORDER BY pos"
    ).fetchnumpy()["acceptor"]
    np.testing.assert_array_equal(acc, run.expected("chrB", "-")["acceptor"].to_numpy())
    frame = pd.read_parquet(run.scores)
    assert len(frame) == total
    assert set(frame["chrom"].astype(str)) == {"chrA", "chrB"}
    assert set(frame["strand"].astype(str)) == {"plus", "minus"}


def test_three_channel_model(tmp_path):
    run = build_run(tmp_path, channels=SPLICEAI_CHANNELS)
    got = _partition(run, "chrA", "-")
    np.testing.assert_array_equal(got.to_numpy(), run.expected("chrA", "-").to_numpy())
    sites = pd.read_parquet(run.sites)
    assert list(sites.columns) == ["chrom", "pos", "strand", "site_type", "score", "gene_ids"]
    assert len(sites) > 0


def test_refuses_incomplete_predictions(tmp_path):
    run = write_inputs(tmp_path, complete=False)
    total = store.n_shards(len(run.windows), 3)
    with pytest.raises(
        RuntimeError, match=rf"{total // 2} of {total} prediction shards are missing"
    ):
        _merge(run)
    assert not run.scores.exists() and not run.sites.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_failed_merge_leaves_nothing_complete(tmp_path):
    run = write_inputs(tmp_path)
    arr = store.open_predictions(tmp_path / "predictions.zarr", mode="r+")
    last = len(run.windows) - 1
    arr[last, :, :] = np.nan  # the last shard is marked done but its data is missing
    with pytest.raises(RuntimeError, match=f"window {last}"):
        _merge(run)
    assert not run.scores.exists() and not run.sites.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _merge(run):
    d = run.outdir
    return merge(
        d / "windows.parquet",
        d / "predictions.zarr",
        d / "regions.parquet",
        d / "genes.parquet",
        run.scores,
        run.sites,
    )


def test_inputs_from_different_runs_are_refused(tmp_path):
    run = write_inputs(tmp_path)
    run.windows.iloc[:-1].to_parquet(tmp_path / "windows.parquet", index=False)
    with pytest.raises(ValueError, match="different runs"):
        _merge(run)
    with pytest.raises(FileNotFoundError, match="run `predict` first"):
        merge(tmp_path / "windows.parquet", tmp_path / "nope.zarr", *[tmp_path / "x"] * 4)
    assert not run.scores.exists() and not run.sites.exists()
