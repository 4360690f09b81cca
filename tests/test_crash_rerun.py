"""`kill -9` of Snakemake during predict, then the re-run the docs give: same scores.

The killed Snakemake leaves its `sptx predict` running as an orphan, its directory lock and
predict's output marked incomplete. The workflow's default profile (`profiles/default`) makes
the re-run re-run incomplete jobs, and predict's store lock makes the new predict wait for the
orphan instead of writing beside it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from sptx_pipeline import store
from sptx_pipeline.models.random_checkpoint import TINY_CONFIG, write_random_checkpoint
from tests.genome_fixtures import EXAMPLE_FASTA, EXAMPLE_GTF, REPO

pytestmark = pytest.mark.slow  # kill -9 of Snakemake and the documented rerun (~30 s)

GENES = "genes=[GPX4,GAMT]"  # one gene per strand


def readme_rerun_commands() -> list[list[str]]:
    """The commands of the "After a crash" block of docs/resume.md, without their comments."""
    text = (REPO / "docs" / "resume.md").read_text()
    block = re.search(r"After a crash.*?```bash\n(.*?)```", text, re.S).group(1)
    lines = [line.split("#")[0].split() for line in block.splitlines()]
    return [line for line in lines if line]


def command(base, out, checkpoint, words):
    assert words[0] == "snakemake"
    return [
        *(sys.executable, "-m", "snakemake", *words[1:]),
        *("--snakefile", str(REPO / "Snakefile"), "--directory", str(base)),
        *("--configfile", str(REPO / "config" / "config.yaml")),
        *("--config", f"fasta={EXAMPLE_FASTA}", f"gtf={EXAMPLE_GTF}", f"model={checkpoint}"),
        *(f"outdir={out}", "shard_size=1", GENES),
    ]


def run(cmd, base):
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=base)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_kill_9_of_snakemake_then_the_readme_rerun(tmp_path):
    rerun = readme_rerun_commands()
    assert rerun[-1] == ["snakemake", "--cores", "all"]
    checkpoint = write_random_checkpoint(tmp_path / "tiny", seed=3, **TINY_CONFIG)
    reference = tmp_path / "reference"
    run(command(tmp_path, reference, checkpoint, ["snakemake", "--cores", "2"]), tmp_path)
    n_shards = len(store.done_shards(reference / "predictions.zarr"))
    assert n_shards > 4

    out = tmp_path / "out"
    proc = subprocess.Popen(
        command(tmp_path, out, checkpoint, ["snakemake", "--cores", "2"]),
        cwd=tmp_path,
        start_new_session=True,  # its own process group, to find the orphan at the end
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while not store.done_shards(out / "predictions.zarr"):
            assert proc.poll() is None and time.monotonic() < deadline, "predict never started"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # Snakemake only: its sptx predict keeps running
        proc.wait()
        assert not (out / "predictions.json").exists()
        assert len(store.done_shards(out / "predictions.zarr")) < n_shards

        for words in rerun:
            output = run(command(tmp_path, out, checkpoint, words), tmp_path)
        assert "(Rule: predict)" in output and "(Rule: genes)" not in output
        pd.testing.assert_frame_equal(
            pd.read_parquet(out / "scores"), pd.read_parquet(reference / "scores")
        )
    finally:
        deadline = time.monotonic() + 120
        try:  # the orphan, if still there, finishes on its own; then nothing of the run is left
            while time.monotonic() < deadline:
                os.killpg(proc.pid, 0)
                time.sleep(0.2)
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
