"""Shared fixtures for the predict tests, and CI's rule on skips.

Under ``CI=true`` a skipped test fails unless its reason matches an entry of
:data:`SKIPS_ALLOWED_IN_CI`: a skip that nobody reads is a test that never runs. The list is
short and says why each entry cannot run on CI's machine.
"""

from __future__ import annotations

import os

import pytest

# reason (a substring of the skip's reason) -> why CI cannot run it
SKIPS_ALLOWED_IN_CI: dict[str, str] = {
    "needs a machine without a GPU": "GPU machines only skip it; CI has no GPU, so it runs there",
    "dask-cuda present": "runs only where dask-cuda is absent, as on CI",
    "needs a CUDA GPU": "CI's machine has no GPU (benchmarks/device_check.sh covers GPUs)",
}


@pytest.fixture
def windows(tmp_path):
    """30 windows in shards of 8 (the last shard short): path and tokens."""
    from sptx_pipeline.testing import make_windows  # here: importing torch costs seconds

    path = tmp_path / "windows.zarr"
    return path, make_windows(path, n_windows=30, shard_size=8)


def skip_allowed(reason: str) -> bool:
    return any(allowed in reason for allowed in SKIPS_ALLOWED_IN_CI)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true, a skip outside the allow-list is reported as a failure, with its reason."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") != "true" or not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if not skip_allowed(reason):
        report.outcome = "failed"
        report.longrepr = (
            f"skipped under CI=true, and not in tests/conftest.py SKIPS_ALLOWED_IN_CI: {reason}"
        )
