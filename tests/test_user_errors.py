"""Failures a user meets, as the terminal shows them: one clear line naming the file or path."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys

import pytest

from tests.genome_fixtures import EXAMPLE_FASTA, EXAMPLE_GTF, REPO

ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def sptx(*args, cwd=None):
    result = subprocess.run(
        [sys.executable, "-m", "sptx_pipeline.cli", *args],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=cwd,
    )
    return result.returncode, result.stdout + result.stderr


def test_a_truncated_gzip_gtf_is_named(tmp_path):
    whole = gzip.compress(EXAMPLE_GTF.read_bytes())
    gtf = tmp_path / "anno.gtf.gz"
    gtf.write_bytes(whole[: len(whole) // 2])
    code, output = sptx(
        *("genes", "--gtf", str(gtf), "--fasta", str(EXAMPLE_FASTA)),
        *("--out-genes", str(tmp_path / "g.parquet"), "--out-regions", str(tmp_path / "r.parquet")),
    )
    assert code == 1
    assert "Traceback" not in output
    assert f"{gtf}: the gzip file is truncated or damaged" in output


@pytest.fixture
def read_only_dir(tmp_path):
    """A directory nobody may write into, root included (``chattr +i``)."""
    path = tmp_path / "out"
    (path / "logs").mkdir(parents=True)
    (path / "benchmarks").mkdir()
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here: cannot make a read-only directory")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_read_only_outdir_is_named_on_the_terminal(tmp_path, read_only_dir):
    """Through Snakemake: the failed job's log reaches the terminal, and it names the path."""
    result = subprocess.run(
        [
            *(sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")),
            *("--directory", str(tmp_path), "--cores", "1"),
            *("--configfile", str(REPO / "config" / "config.yaml")),
            *("--config", f"fasta={EXAMPLE_FASTA}", f"gtf={EXAMPLE_GTF}", "model=m"),
            f"outdir={read_only_dir}",
        ],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Logfile" in output  # show-failed-logs, from the workflow's default profile
    line = next(text for text in output.splitlines() if "ERROR sptx" in text)
    assert "permission denied" in line and f"{read_only_dir}/." in line
    assert "Traceback" not in output
