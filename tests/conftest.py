"""Shared fixtures for the predict tests: small random windows stores (sptx_pipeline.testing)."""

from __future__ import annotations

import pytest

from sptx_pipeline.testing import make_windows


@pytest.fixture
def windows(tmp_path):
    """30 windows in shards of 8 (the last shard short): path and tokens."""
    path = tmp_path / "windows.zarr"
    return path, make_windows(path, n_windows=30, shard_size=8)
