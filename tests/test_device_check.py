"""benchmarks/device_check.sh in its CPU-only form: it runs, prints its table, says what it
skipped and exits 0 (the GPU parts run on the first machine with a GPU)."""

from __future__ import annotations

import os
import re
import subprocess

import pytest
import torch

from tests.genome_fixtures import REPO


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU-only form; a GPU runs it all")
def test_device_check_cpu_only(tmp_path):
    result = subprocess.run(
        [
            "bash",
            str(REPO / "benchmarks" / "device_check.sh"),
            "--quick",
            "--outdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "DEVICE_CHECK_TIMEOUT": "1800"},  # a loaded CI machine is no GPU
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "device check: GPU none" in out
    rows = re.findall(
        r"^parity vs CPU float32\s+(.+?)\s+bfloat16\s+cpu\s+max \|dp\| ([0-9.]+), finite$",
        out,
        re.M,
    )
    assert {model for model, _ in rows} == {"SpliceAI", "SpTransformer (random)"}, out
    assert all(0 < float(value) < 0.05 for _, value in rows), rows
    for part in ("throughput", "predict of the bundled example", "variants/s"):
        assert re.search(rf"^skipped \(no GPU here\): .*{part}", out, re.M), (part, out)
