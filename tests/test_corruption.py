"""A damaged prediction shard, through the real workflow: merge refuses it, naming the shard,
and the same command run again recomputes just that shard and merges scores equal to the
undamaged run's.

Three kinds of damage to one shard's stored object: another shard's valid object copied over
it (decodes fine, wrong values), flipped bytes and a truncated file.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from sptx_pipeline.models.random_checkpoint import TINY_CONFIG, write_random_checkpoint
from tests.genome_fixtures import EXAMPLE_FASTA, EXAMPLE_GTF, REPO

pytestmark = (
    pytest.mark.slow
)  # damage-and-repair runs of the bundled example (~75 s on a fast 2-core machine)

BAD = 1  # the damaged shard


def snakemake(base, out, checkpoint, *extra):
    command = [
        *(sys.executable, "-m", "snakemake", *extra),
        *("--snakefile", str(REPO / "Snakefile"), "--directory", str(base), "--cores", "2"),
        *("--configfile", str(REPO / "config" / "config.yaml")),
        *("--config", f"fasta={EXAMPLE_FASTA}", f"gtf={EXAMPLE_GTF}", f"model={checkpoint}"),
        *(f"outdir={out}", "shard_size=2", "genes=[GPX4,GAMT]"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=base)
    return result.returncode, result.stdout + result.stderr


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("corruption")
    checkpoint = write_random_checkpoint(base / "tiny", seed=3, **TINY_CONFIG)
    out = base / "out"
    code, output = snakemake(base, out, checkpoint)
    assert code == 0, output
    return base, out, checkpoint, pd.read_parquet(out / "scores")


def shard_object(out, shard):
    return out / "predictions.zarr" / "probabilities" / "c" / str(shard) / "0" / "0"


def swap(out):
    shutil.copy(shard_object(out, 0), shard_object(out, BAD))


def flip(out):
    path = shard_object(out, BAD)
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 16):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(out):
    path = shard_object(out, BAD)
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def unmark(out):
    """A shard without its done marker: merge used to say "run predict again", which Snakemake
    never did while predictions.json existed."""
    (out / "predictions.zarr" / "done" / f"{BAD:08d}.json").unlink()


@pytest.mark.parametrize(
    "damage", [swap, flip, truncate, unmark], ids=["swapped", "flipped", "truncated", "unmarked"]
)
def test_merge_refuses_a_damaged_shard_and_the_same_command_repairs_it(run, damage):
    base, out, checkpoint, reference = run
    damage(out)
    shutil.rmtree(out / "scores")  # merge runs again (as after any change upstream of it)

    code, output = snakemake(base, out, checkpoint)
    assert code != 0
    line = next(text for text in output.splitlines() if "ERROR sptx" in text)
    named = f"(no done marker: {BAD})" if damage is unmark else f"shard {BAD} (windows 2-3)"
    assert named in line
    assert "run the same command again" in line
    assert not (out / "scores").exists() and not (out / "predictions.json").exists()

    code, output = snakemake(base, out, checkpoint, "-n")
    assert code == 0 and "rule predict:" in output, output  # not "Nothing to be done"

    code, output = snakemake(base, out, checkpoint)
    assert code == 0, output
    summary = json.loads((out / "predictions.json").read_text())
    assert summary["computed"] == 1 and summary["skipped"] == summary["shards"] - 1
    pd.testing.assert_frame_equal(pd.read_parquet(out / "scores"), reference)
