"""query: equals a pandas filter of the same dataset; region parsing and errors; output formats."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sptx_pipeline.cli import main
from sptx_pipeline.errors import InputError
from sptx_pipeline.query import export, query, read_scores, write_result
from sptx_pipeline.results import SCORES_PARTITIONING
from tests.results_fixtures import build_run

ROW_GROUP = 64
PER_FILE = 300


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return build_run(
        tmp_path_factory.mktemp("run"), row_group_rows=ROW_GROUP, rows_per_file=PER_FILE
    )


@pytest.fixture(scope="module")
def everything(run):
    frame = pd.read_parquet(run.scores)
    frame["chrom"] = frame["chrom"].astype(str)
    frame["strand"] = frame["strand"].astype(str).map({"plus": "+", "minus": "-"})
    return frame[["chrom", "pos", "strand", *run.channels]]


def _filter(everything, chrom, start, end, strand=None):
    keep = (everything.chrom == chrom) & everything.pos.between(start, end)
    if strand:
        keep &= everything.strand == strand
    return everything[keep].sort_values(["pos", "strand"]).reset_index(drop=True)


def _assert_same(got, want):
    assert len(want) == len(got)
    pd.testing.assert_frame_equal(
        got.reset_index(drop=True), want.reset_index(drop=True), check_dtype=False
    )


def _boundaries(run):
    """pos of the first row of every row group after the first, and of every file after the
    first, in the chrA plus partition."""
    groups, files = [], []
    paths = sorted((run.scores / "chrom=chrA" / "strand=plus").glob("*.parquet"))
    for i, path in enumerate(paths):
        meta = pq.ParquetFile(path).metadata
        for g in range(meta.num_row_groups):
            first = meta.row_group(g).column(0).statistics.min
            (files if g == 0 and i > 0 else groups).append(first)
    return groups[1:], files


@pytest.mark.parametrize(
    ("chrom", "start", "end", "strand"),
    [
        ("chrA", 100, 700, None),  # both strands, overlapping genes on each
        ("chrA", 100, 700, "+"),
        ("chrA", 100, 700, "-"),
        ("chrB", 37, 1163, "-"),  # a whole gene on minus
        ("chrA", 1, 1, None),  # first base of the chromosome
        ("chrA", 2300, 2300, "-"),  # last base of the chromosome
        ("chrA", 660, 999, "+"),  # between genes: empty
    ],
)
def test_query_equals_pandas_filter(run, everything, chrom, start, end, strand):
    got = query(run.outdir, f"{chrom}:{start}-{end}", strand=strand)
    want = _filter(everything, chrom, start, end, strand)
    assert list(got.columns) == ["chrom", "pos", "strand", *run.channels]
    _assert_same(got, want)


def test_query_at_row_group_and_file_boundaries(run, everything):
    groups, files = _boundaries(run)
    assert groups and files
    for first in groups[:3] + files:
        for start, end in (
            (first - 1, first),
            (first, first + ROW_GROUP - 1),
            (first - 5, first + 5),
        ):
            got = query(run.outdir, f"chrA:{start}-{end}", strand="+")
            _assert_same(got, _filter(everything, "chrA", start, end, "+"))
            assert len(got) > 0


def test_partition_boundaries(run, everything):
    got = query(run.outdir, "chrB")  # whole contig: only the minus partition exists
    _assert_same(got, _filter(everything, "chrB", 1, 10**9))
    assert set(got.strand) == {"-"}
    assert not set(got.chrom) - {"chrB"}
    got = query(run.outdir, "chrB:1-2000", strand="+")
    assert got.empty and list(got.columns[:3]) == ["chrom", "pos", "strand"]


def test_commas_gene_names_and_ids(run, everything):
    one = query(run.outdir, "chrA:1,050")  # a single position
    assert len(one) == 1
    _assert_same(one, _filter(everything, "chrA", 1050, 1050))
    _assert_same(query(run.outdir, "chrA:1,001-1,100"), _filter(everything, "chrA", 1001, 1100))
    beta = query(run.outdir, "BETA")
    _assert_same(beta, _filter(everything, "chrA", 200, 650, "+"))
    delta = query(run.outdir, "G4")  # id without its version
    _assert_same(delta, _filter(everything, "chrA", 150, 420, "-"))
    other = query(run.outdir, "G4.1", strand="+")  # explicit strand wins over the gene's
    _assert_same(other, _filter(everything, "chrA", 150, 420, "+"))


def test_columns_and_min_score(run, everything):
    got = query(run.outdir, "chrA:1-2300", columns=["acceptor", "brain"], min_score=0.3)
    want = _filter(everything, "chrA", 1, 2300)
    want = want[(want.acceptor >= 0.3) | (want.donor >= 0.3)]
    assert list(got.columns) == ["chrom", "pos", "strand", "acceptor", "brain"]
    _assert_same(got, want[["chrom", "pos", "strand", "acceptor", "brain"]])
    assert len(got) > 10


@pytest.mark.parametrize(
    ("region", "message"),
    [
        ("chrZ:1-10", "unknown contig 'chrZ'"),
        ("chrA:10-5", "reversed"),
        ("chrA:0-5", "1-based"),
        ("chrA:abc-5", "malformed region"),
        ("chrA:5-", "malformed region"),
        ("NOPE", "unknown contig or gene 'NOPE'"),
    ],
)
def test_errors(run, region, message):
    with pytest.raises(ValueError, match=message):
        query(run.outdir, region)


def test_unknown_column(run):
    with pytest.raises(ValueError, match="unknown column"):
        query(run.outdir, "chrA:1-10", columns=["acceptr"])


def test_write_result_formats(run, tmp_path, capsys):
    frame = query(run.outdir, "chrA:200-260", strand="+")
    for fmt, sep in (("csv", ","), ("tsv", "\t")):
        write_result(frame, fmt, tmp_path / f"out.{fmt}")
        back = pd.read_csv(tmp_path / f"out.{fmt}", sep=sep)
        np.testing.assert_allclose(back[frame.columns[3:]].to_numpy(), frame.iloc[:, 3:], rtol=1e-6)
        assert back.pos.tolist() == frame.pos.tolist()
    write_result(frame, "parquet", tmp_path / "out.parquet")
    _assert_same(pd.read_parquet(tmp_path / "out.parquet"), frame)
    write_result(frame, "table", None)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["chrom", "pos", "strand", "no_splice"]
    assert len(lines) == len(frame) + 1
    with pytest.raises(ValueError, match="-o"):
        write_result(frame, "parquet", None)


def test_cli_query(run, tmp_path):
    out = tmp_path / "q.csv"
    args = ["query", str(run.outdir), "chrA:150-420", "--strand", "-", "--format", "csv"]
    assert main([*args, "-o", str(out)]) == 0
    back = pd.read_csv(out)
    assert back.pos.tolist() == list(range(150, 421))
    assert main(["query", str(run.outdir), "chrA:9-1"]) == 1  # clear error, exit status 1


def test_only_the_region_is_read(run, tmp_path):
    """Corrupt other partitions and the data pages of another row group: the query must not
    touch them (partition pruning through the path, row-group pruning on pos statistics)."""
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run.outdir / "scores", copy / "scores")
    for path in (copy / "scores" / "chrom=chrB").rglob("*.parquet"):
        path.write_bytes(b"not parquet")
    path = sorted((copy / "scores" / "chrom=chrA" / "strand=plus").glob("*.parquet"))[0]
    meta = pq.ParquetFile(path).metadata
    first = meta.row_group(0)
    start = min(first.column(j).file_offset for j in range(first.num_columns))
    start = min(start, *(first.column(j).data_page_offset for j in range(first.num_columns)))
    size = sum(first.column(j).total_compressed_size for j in range(first.num_columns))
    data = bytearray(path.read_bytes())
    data[start : start + size] = b"\xff" * size
    path.write_bytes(bytes(data))
    later = meta.row_group(2).column(0).statistics
    region = f"chrA:{later.min}-{later.max}"
    assert len(query(copy, region, strand="+")) == later.max - later.min + 1
    first_pos = first.column(0).statistics.min
    with pytest.raises(Exception):  # noqa: B017 - the corrupted row group is unreadable
        query(copy, f"chrA:{first_pos}-{first_pos + 3}", strand="+")


def test_numeric_contig_names_read_with_pandas(run, everything, tmp_path):
    """chrom=19: pyarrow infers int32 and a string filter fails; read_scores and docs/outputs.md's
    SCORES_PARTITIONING keep chrom as text."""
    scores = tmp_path / "scores"
    shutil.copytree(run.scores / "chrom=chrA", scores / "chrom=19")
    shutil.copytree(run.scores / "chrom=chrB", scores / "chrom=2")
    with pytest.raises(pa.ArrowNotImplementedError):  # the problem, as pandas users meet it
        pd.read_parquet(scores, filters=[("chrom", "=", "19")])
    want = _filter(everything, "chrA", 100, 900, "-").drop(columns=["chrom", "strand"])
    got = read_scores(tmp_path, chrom="19", strand="-", start=100, end=900)
    assert set(got["chrom"]) == {"19"} and set(got["strand"]) == {"minus"}
    _assert_same(got.drop(columns=["chrom", "strand"]).sort_values("pos"), want)
    readme = pd.read_parquet(
        scores,
        partitioning=SCORES_PARTITIONING,
        filters=[("chrom", "=", "19"), ("strand", "=", "minus"), ("pos", ">=", 100),
                 ("pos", "<=", 900)],
    )  # fmt: skip
    _assert_same(readme.drop(columns=["chrom", "strand"]).sort_values("pos"), want)
    two = read_scores(tmp_path, chrom="2", columns=["acceptor"])
    assert list(two.columns) == ["pos", "acceptor", "chrom", "strand"]
    assert len(two) == (everything.chrom == "chrB").sum()


def test_unversioned_par_y_id_names_the_same_gene_as_the_genes_filter(run, everything, tmp_path):
    """GENCODE's PAR copies on chrY are ``<id>.<version>_PAR_Y``: the genes filter takes the
    unversioned id as naming them, and query must too (it used to strip only ``.<version>``)."""
    import shutil

    from sptx_pipeline.annotation import filter_genes

    outdir = tmp_path / "par"
    shutil.copytree(run.scores, outdir / "scores")
    genes = pd.read_parquet(run.outdir / "genes.parquet")
    genes.loc[genes.gene_id == "G6.1", "gene_id"] = "G6.1_PAR_Y"
    genes.to_parquet(outdir / "genes.parquet", index=False)
    assert filter_genes(genes, names=["G6"]).gene_id.tolist() == ["G6.1_PAR_Y"]
    _assert_same(query(outdir, "G6"), _filter(everything, "chrB", 37, 1163, "-"))


def test_export_streams_every_format_and_limits_the_table(run, tmp_path, capfdbinary):
    """CSV/TSV/Parquet are streamed in batches (any size); the table refuses past its limit."""
    frame = query(run.outdir, "chrA")  # both strands, every channel
    assert len(frame) > 600
    for fmt, sep in (("csv", ","), ("tsv", "\t")):
        assert export(run.outdir, "chrA", fmt, tmp_path / f"a.{fmt}") == len(frame)
        back = pd.read_csv(tmp_path / f"a.{fmt}", sep=sep)
        assert back.columns.tolist() == frame.columns.tolist()
        assert back[["chrom", "pos", "strand"]].equals(frame[["chrom", "pos", "strand"]])
        np.testing.assert_allclose(back.iloc[:, 3:], frame.iloc[:, 3:], rtol=1e-6)
    assert export(run.outdir, "chrA", "parquet", tmp_path / "a.parquet") == len(frame)
    _assert_same(pd.read_parquet(tmp_path / "a.parquet"), frame)
    assert export(run.outdir, "chrA:1-50", "csv", strand="+", columns=["donor"]) == 50
    lines = capfdbinary.readouterr().out.decode().splitlines()
    assert lines[0] == "chrom,pos,strand,donor" and len(lines) == 51
    with pytest.raises(InputError, match="--format csv"):
        export(run.outdir, "chrA", "table", max_table_rows=len(frame) - 1)
    assert export(run.outdir, "chrA", "table", max_table_rows=len(frame)) == len(frame)
    assert main(["query", str(run.outdir), "chrA", "--max-rows", "10"]) == 1
