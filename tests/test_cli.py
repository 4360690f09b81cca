"""The CLI's one way to fail: expected errors as one line and status 1, bugs with a traceback."""

from __future__ import annotations

import logging

import pytest

from sptx_pipeline import errors
from sptx_pipeline.cli import main


def test_expected_error_is_one_line_and_status_1(tmp_path, caplog):
    with caplog.at_level(logging.ERROR, logger="sptx"):
        assert main(["query", str(tmp_path), "chr1:1-10"]) == 1
    (record,) = caplog.records
    assert "scores not found" in record.getMessage() and not record.exc_info


def test_verbose_adds_the_traceback(tmp_path, caplog):
    with caplog.at_level(logging.ERROR, logger="sptx"):
        assert main(["-v", "query", str(tmp_path), "chr1:1-10"]) == 1
    (record,) = caplog.records
    assert record.exc_info is not None and record.exc_info[0] is errors.MissingInputError


@pytest.mark.parametrize("bug", [KeyError("channels"), ValueError("bad"), RuntimeError("x")])
def test_other_exceptions_keep_their_traceback(tmp_path, monkeypatch, bug):
    def broken(*args, **kwargs):
        raise bug

    monkeypatch.setattr("sptx_pipeline.query.export", broken)  # what `sptx query` calls
    with pytest.raises(type(bug)):
        main(["query", str(tmp_path), "chr1:1-10"])


def test_error_classes_keep_the_builtin_bases():
    assert issubclass(errors.GTFFormatError, ValueError)
    assert issubclass(errors.CheckpointError, ValueError)
    assert issubclass(errors.MissingInputError, FileNotFoundError)
    assert issubclass(errors.IncompletePredictionsError, RuntimeError)
    assert issubclass(errors.StoreInUseError, RuntimeError)
    for name in ("InputError", "CheckpointError", "ClusterError", "ShardFailedError"):
        assert issubclass(getattr(errors, name), errors.SptxError)
