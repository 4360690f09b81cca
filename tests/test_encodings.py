"""scores/ and sites.parquet use the measured encodings and read back the exact values."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from sptx_pipeline.merge import merge

from .results_fixtures import write_inputs


def _encodings(path, column):
    meta = pq.ParquetFile(path).metadata
    index = meta.schema.names.index(column)
    return {
        e for g in range(meta.num_row_groups) for e in meta.row_group(g).column(index).encodings
    }


@pytest.mark.parametrize(
    ("dtype", "float_encoding"), [("float16", "RLE_DICTIONARY"), ("float32", "BYTE_STREAM_SPLIT")]
)
def test_scores_encodings_and_exact_values(tmp_path, dtype, float_encoding):
    run = write_inputs(tmp_path, dtype=dtype)
    merge(
        tmp_path / "windows.parquet",
        tmp_path / "predictions.zarr",
        tmp_path / "regions.parquet",
        tmp_path / "genes.parquet",
        run.scores,
        run.sites,
        row_group_rows=64,
    )
    part = next(run.scores.rglob("*.parquet"))
    assert "DELTA_BINARY_PACKED" in _encodings(part, "pos")
    assert float_encoding in _encodings(part, "acceptor")
    meta = pq.ParquetFile(part).metadata.row_group(1).column(0)
    assert meta.statistics.has_min_max  # row groups are still skipped by pos
    got = pq.read_table(run.scores / "chrom=chrA" / "strand=plus").to_pandas()
    expected = run.expected("chrA", "+")
    np.testing.assert_array_equal(got["pos"].to_numpy(), expected["pos"].to_numpy())
    for column in run.channels:
        np.testing.assert_array_equal(got[column].to_numpy(), expected[column].to_numpy())
    assert "RLE_DICTIONARY" in _encodings(run.sites, "site_type")
    assert pq.read_table(run.sites).num_rows > 0
