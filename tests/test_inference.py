"""predict: values, store layout, determinism, store compatibility and errors."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import zarr

from sptx_pipeline import store
from sptx_pipeline.inference import predict
from sptx_pipeline.testing import CHANNELS, THREADED, StandInFactory, make_windows, reference


def _read(path):
    return store.open_predictions(path)[:]


def test_predictions_equal_model_output(windows, tmp_path):
    path, tokens = windows
    out = tmp_path / "predictions.zarr"
    summary = predict(
        path,
        out,
        StandInFactory(),
        device="cpu",
        batch_size=3,
        output_dtype="float32",
        cluster=THREADED,
        progress=False,
    )
    assert summary.shards == 4 and summary.computed == 4 and summary.skipped == 0
    assert summary.items_computed == 30
    values = _read(out)
    assert values.shape == (30, 100, len(CHANNELS)) and values.dtype == np.float32
    np.testing.assert_allclose(values, reference(tokens), rtol=0, atol=1e-6)
    attrs = zarr.open_group(str(out), mode="r").attrs
    assert attrs["channels"] == list(CHANNELS)
    assert (attrs["chunk_size"], attrs["shard_size"]) == (100, 8)
    assert attrs["model"]["provenance"] == {"source": "stand-in", "seed": 0}
    assert store.done_shards(out) == {0, 1, 2, 3} and store.missing_shards(out) == []
    assert store.read_done(out, 3)["start"] == 24 and store.read_done(out, 3)["stop"] == 30


def test_float16_default_and_one_file_per_shard(windows, tmp_path):
    path, tokens = windows
    out = tmp_path / "predictions.zarr"
    predict(path, out, StandInFactory(), device="cpu", cluster=THREADED, progress=False)
    values = _read(out)
    assert values.dtype == np.float16 and not np.isnan(values).any()
    # float16 rounding of float32 probabilities (batching moves float32 by a few ulp)
    np.testing.assert_allclose(
        values.astype(np.float32), reference(tokens), rtol=2**-10, atol=2**-24
    )
    chunk_files = [p for p in (out / store.PROBABILITIES).rglob("*") if p.is_file()]
    assert len([p for p in chunk_files if p.name != "zarr.json"]) == 4  # one file per shard


def test_two_cpu_runs_bit_identical(windows, tmp_path):
    path, _ = windows
    runs = []
    for name in ("a.zarr", "b.zarr"):
        predict(
            path,
            tmp_path / name,
            StandInFactory(),
            device="cpu",
            batch_size=4,
            cluster={"type": "local", "n_workers": 1, "processes": True},
            progress=False,
        )
        runs.append(_read(tmp_path / name))
    assert runs[0].tobytes() == runs[1].tobytes()


def test_same_inputs_resume_and_other_model_starts_afresh(windows, tmp_path, caplog):
    path, tokens = windows
    out = tmp_path / "predictions.zarr"
    kwargs = {"device": "cpu", "cluster": THREADED, "progress": False}
    predict(path, out, StandInFactory(seed=0), **kwargs)
    again = predict(path, out, StandInFactory(seed=0), **kwargs)
    assert (again.skipped, again.computed) == (4, 0)

    with caplog.at_level(logging.WARNING, logger="sptx_pipeline.inference"):
        other = predict(path, out, StandInFactory(seed=1), **kwargs)
    assert (other.skipped, other.computed) == (0, 4)
    assert "starting afresh" in caplog.text and "model" in caplog.text
    np.testing.assert_allclose(_read(out), reference(tokens, seed=1), rtol=2**-10, atol=2**-24)

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sptx_pipeline.inference"):
        wider = predict(path, out, StandInFactory(seed=1), output_dtype="float32", **kwargs)
    assert wider.computed == 4 and "output_dtype" in caplog.text
    assert _read(out).dtype == np.float32


def test_changed_windows_are_recomputed(windows, tmp_path):
    path, tokens = windows
    out = tmp_path / "predictions.zarr"
    kwargs = {"device": "cpu", "cluster": THREADED, "progress": False}
    predict(path, out, StandInFactory(), **kwargs)
    tokens[9] = (tokens[9] + 1) % 5  # same attrs and shape, different bases in shard 1
    zarr.open_group(str(path), mode="r+")[store.TOKENS][9] = tokens[9]
    summary = predict(path, out, StandInFactory(), **kwargs)
    assert (summary.recomputed, summary.skipped) == (1, 3)
    np.testing.assert_allclose(_read(out), reference(tokens), rtol=2**-10, atol=2**-24)


def test_failing_shard_stops_the_run_naming_it(tmp_path):
    path = tmp_path / "windows.zarr"
    make_windows(path, n_windows=20, shard_size=8)
    zarr.open_group(str(path), mode="r+")[store.TOKENS][13] = 4  # all N: the model refuses
    with pytest.raises(RuntimeError, match=r"shard 1 \(windows 8-15\) failed after 1 retries"):
        predict(
            path,
            tmp_path / "p.zarr",
            StandInFactory(fail_on_all_n=True),
            device="cpu",
            cluster=THREADED,
            max_retries=1,
            progress=False,
        )
    assert 1 not in store.done_shards(tmp_path / "p.zarr")


def test_flank_mismatch_and_bad_arguments(tmp_path):
    path = tmp_path / "windows.zarr"
    make_windows(path, n_windows=4, shard_size=2, flank=40)
    with pytest.raises(ValueError, match="flank 40.*flank 50"):
        predict(path, tmp_path / "p.zarr", StandInFactory(), device="cpu", progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        predict(path, tmp_path / "p.zarr", StandInFactory(flank=40), batch_size=0)
    with pytest.raises(ValueError, match="output_dtype"):
        predict(path, tmp_path / "p.zarr", StandInFactory(flank=40), output_dtype="int8")
    with pytest.raises(FileNotFoundError, match="run the tile stage"):
        predict(tmp_path / "absent.zarr", tmp_path / "p.zarr", StandInFactory())


def test_no_windows(tmp_path):
    path = tmp_path / "windows.zarr"
    make_windows(path, n_windows=0, shard_size=8)
    summary = predict(path, tmp_path / "p.zarr", StandInFactory(), device="cpu", progress=False)
    assert summary.shards == 0 and _read(tmp_path / "p.zarr").shape == (0, 100, 5)
