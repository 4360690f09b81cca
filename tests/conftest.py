"""Shared fixtures for the predict tests: small random windows stores and reference outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.stand_in_model import StandInFactory, make_windows

THREADED = {"type": "local", "processes": False}


def reference(tokens: np.ndarray, seed: int = 0) -> np.ndarray:
    """``postprocess(model(window))`` computed window by window, independently of predict."""
    model = StandInFactory(seed=seed)().eval()
    with torch.inference_mode():
        rows = [
            model.postprocess(model(torch.from_numpy(window[None]).long()))[0].numpy()
            for window in tokens
        ]
    return np.stack(rows)


@pytest.fixture
def windows(tmp_path):
    """30 windows in shards of 8 (the last shard short): path and tokens."""
    path = tmp_path / "windows.zarr"
    return path, make_windows(path, n_windows=30, shard_size=8)
