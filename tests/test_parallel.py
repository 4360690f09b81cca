"""Merge and tracks in parallel processes write exactly what the serial run writes."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pybigtools
import pytest

from sptx_pipeline.tracks import write_tracks

from .results_fixtures import build_run


def _files(root):
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    # small row groups and files, so partitions span several row groups and part files
    kwargs = {"row_group_rows": 64, "rows_per_file": 256}
    serial = build_run(tmp_path_factory.mktemp("serial"), workers=1, **kwargs)
    parallel = build_run(tmp_path_factory.mktemp("parallel"), workers=3, **kwargs)
    return serial, parallel


def test_parallel_merge_equals_serial(runs):
    serial, parallel = runs
    files = _files(serial.scores)
    assert len(files) > 4 and files == _files(parallel.scores)  # chrA +/-, chrB -; parts
    for name in files:
        a, b = pq.ParquetFile(serial.scores / name), pq.ParquetFile(parallel.scores / name)
        assert a.metadata.num_row_groups == b.metadata.num_row_groups
        assert a.read().equals(b.read())
        chrom = name.parts[0].removeprefix("chrom=")
        strand = {"strand=plus": "+", "strand=minus": "-"}[name.parts[1]]
        assert len(a.read()) and chrom in {"chrA", "chrB"} and strand in "+-"
    sites_a, sites_b = pq.read_table(serial.sites), pq.read_table(parallel.sites)
    assert len(sites_a) > 0 and sites_a.equals(sites_b)
    # and both equal the truth the fixture derives independently of merge
    for chrom, strand, side in (
        ("chrA", "+", "plus"),
        ("chrA", "-", "minus"),
        ("chrB", "-", "minus"),
    ):
        expected = serial.expected(chrom, strand)
        got = pq.read_table(serial.scores / f"chrom={chrom}" / f"strand={side}").to_pandas()
        np.testing.assert_array_equal(got["pos"].to_numpy(), expected["pos"].to_numpy())
        np.testing.assert_array_equal(got["acceptor"].to_numpy(), expected["acceptor"].to_numpy())


def test_parallel_tracks_equal_serial(runs, tmp_path):
    serial, _ = runs
    fasta = serial.outdir / "genome.fa"
    one = write_tracks(serial.scores, fasta, tmp_path / "one", ["acceptor", "brain"], workers=1)
    two = write_tracks(serial.scores, fasta, tmp_path / "two", ["acceptor", "brain"], workers=2)
    assert [p.name for p in one] == [p.name for p in two] and len(one) == 4
    for a, b in zip(one, two, strict=True):
        assert a.read_bytes() == b.read_bytes()
        with pybigtools.open(str(a)) as bw:
            assert sum(1 for _ in bw.records("chrA")) > 0
