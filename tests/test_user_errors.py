"""Failures a user meets, as the terminal shows them: one clear line naming the file or path."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sptx_pipeline.errors import CheckpointError
from sptx_pipeline.models import describe_model
from sptx_pipeline.models.random_checkpoint import TINY_CONFIG, write_random_checkpoint
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


def _snakemake(tmp_path: Path, *config: str, target: Path | None = None) -> str:
    """Run the workflow on the bundled example with ``config`` overrides; it must fail.
    Returns what reached the terminal (stdout and stderr)."""
    result = subprocess.run(
        [
            *(sys.executable, "-m", "snakemake", *([str(target)] if target else [])),
            *("--snakefile", str(REPO / "Snakefile")),
            *("--directory", str(tmp_path), "--cores", "1"),
            *("--configfile", str(REPO / "config" / "config.yaml")),
            *("--config", f"fasta={EXAMPLE_FASTA}", f"gtf={EXAMPLE_GTF}", *config),
        ],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    return result.stdout + result.stderr


def test_a_read_only_outdir_is_named_on_the_terminal(tmp_path, read_only_dir):
    """Through Snakemake: the failed job's log reaches the terminal, and it names the path."""
    output = _snakemake(
        tmp_path, "model=m", f"outdir={read_only_dir}", target=read_only_dir / "genes.parquet"
    )
    assert "Logfile" in output  # show-failed-logs, from the workflow's default profile
    line = next(text for text in output.splitlines() if "ERROR sptx" in text)
    assert "permission denied" in line and f"{read_only_dir}/." in line
    assert "Traceback" not in output


def _bad_checkpoints(tmp_path):
    """A truncated model.safetensors and a config whose hidden size the weights do not have."""
    good = write_random_checkpoint(tmp_path / "good", seed=1, **TINY_CONFIG)
    truncated = Path(shutil.copytree(good, tmp_path / "truncated"))
    weights = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    resized = Path(shutil.copytree(good, tmp_path / "resized"))
    config = json.loads((resized / "config.json").read_text())
    config["hidden_size"] *= 2
    (resized / "config.json").write_text(json.dumps(config))
    return good, truncated, resized


def test_model_info_checks_the_weights_header(tmp_path):
    good, truncated, resized = _bad_checkpoints(tmp_path)
    assert describe_model(str(good))["flank"] == TINY_CONFIG["flank"]
    with pytest.raises(CheckpointError, match="is not a complete safetensors file"):
        describe_model(str(truncated))
    with pytest.raises(CheckpointError, match=r"does not match .*config.json: wrong shapes"):
        describe_model(str(resized))


def test_a_bad_checkpoint_stops_the_workflow_at_the_model_rule(tmp_path):
    _, truncated, _ = _bad_checkpoints(tmp_path)
    out = tmp_path / "out"
    output = _snakemake(tmp_path, f"model={truncated}", f"outdir={out}")
    assert "Error in rule model" in output
    assert f"{truncated}/model.safetensors is not a complete safetensors file" in output
    assert not (out / "windows.parquet").exists() and not (out / "logs" / "tile.log").exists()
