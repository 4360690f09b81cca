"""SIGTERM and SIGINT at random points of tile, merge and tracks: no temporaries are left, at
once nor after the re-run, and the re-run's output equals an uninterrupted run's.

The stages run as ``sptx`` subprocesses (merge and tracks with two worker processes) on a random
genome large enough that most of a run is spent writing; the kill points are seeded.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import zarr

from sptx_pipeline.annotation import select_genes
from sptx_pipeline.inference import predict
from sptx_pipeline.merge import merge
from sptx_pipeline.testing import StandInFactory
from sptx_pipeline.tiling import tile
from sptx_pipeline.tracks import write_tracks

pytestmark = pytest.mark.slow  # SIGINT/SIGTERM mid-stage and reruns (~60 s)

REPO = Path(__file__).resolve().parents[1]
CONTIGS = {"chr1": 240_000, "chr2": 160_000}
FLANK, CHUNK, SHARD = 50, 100, 64
TRACK_CHANNELS = "acceptor,donor,tissue_a"


def _write_genome(directory: Path) -> None:
    rng = np.random.default_rng(7)
    with open(directory / "genome.fa", "w") as fasta:
        for name, size in CONTIGS.items():
            seq = np.frombuffer(b"ACGT", np.uint8)[rng.integers(0, 4, size)].tobytes().decode()
            fasta.write(f">{name}\n" + "\n".join(seq[i : i + 60] for i in range(0, size, 60)))
            fasta.write("\n")
    with open(directory / "genes.gtf", "w") as gtf:
        for name, size in CONTIGS.items():
            for i, start in enumerate(range(1, size - 30_000, 25_000)):
                strand = "+-"[i % 2]
                attrs = f'gene_id "{name}.{i}"; gene_name "G{name}{i}"; gene_type "protein_coding";'
                gtf.write(f"{name}\tt\tgene\t{start}\t{start + 20_000}\t.\t{strand}\t.\t{attrs}\n")


def _merge_paths(d: Path, out: Path) -> list[str]:
    return [
        *("--windows", str(d / "windows.parquet"), "--predictions", str(d / "predictions.zarr")),
        *("--regions", str(d / "regions.parquet"), "--genes", str(d / "genes.parquet")),
        *("--out-scores", str(out / "scores"), "--out-sites", str(out / "sites.parquet")),
        *("--sites-min-score", "0.9", "--workers", "2"),
    ]


def _command(stage: str, d: Path, out: Path) -> list[str]:
    base = [sys.executable, "-m", "sptx_pipeline.cli", stage]
    if stage == "tile":
        return [
            *base,
            *("--fasta", str(d / "genome.fa"), "--regions", str(d / "regions.parquet")),
            *("--flank", str(FLANK), "--chunk-size", str(CHUNK), "--shard-size", str(SHARD)),
            *("--out-zarr", str(out / "windows.zarr")),
            *("--out-parquet", str(out / "windows.parquet")),
        ]
    if stage == "merge":
        return [*base, *_merge_paths(d, out)]
    return [
        *base,
        *("--scores", str(d / "scores"), "--fasta", str(d / "genome.fa")),
        *("--out", str(out / "tracks"), f"--channels={TRACK_CHANNELS}", "--workers", "2"),
    ]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Every stage run once, uninterrupted, in this process."""
    d = tmp_path_factory.mktemp("reference")
    _write_genome(d)
    select_genes(d / "genes.gtf", d / "genome.fa", d / "genes.parquet", d / "regions.parquet")
    tile(d / "genome.fa", d / "regions.parquet", d / "windows.zarr", d / "windows.parquet",
         FLANK, CHUNK, SHARD)  # fmt: skip
    predict(d / "windows.zarr", d / "predictions.zarr", StandInFactory(), device="cpu",
            batch_size=64, cluster={"type": "local"}, progress=False)  # fmt: skip
    merge(d / "windows.parquet", d / "predictions.zarr", d / "regions.parquet",
          d / "genes.parquet", d / "scores", d / "sites.parquet", sites_min_score=0.9)  # fmt: skip
    write_tracks(d / "scores", d / "genome.fa", d / "tracks", TRACK_CHANNELS.split(","))
    return d


def _temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".tmp-" in p.name]


def _same_output(stage: str, ref: Path, out: Path) -> None:
    if stage == "tile":
        assert pq.read_table(out / "windows.parquet").equals(pq.read_table(ref / "windows.parquet"))
        got = zarr.open_group(str(out / "windows.zarr"), mode="r")["tokens"][:]
        np.testing.assert_array_equal(got, zarr.open_group(str(ref / "windows.zarr"))["tokens"][:])
    elif stage == "merge":
        files = sorted(p.relative_to(ref) for p in (ref / "scores").rglob("*.parquet"))
        assert files == sorted(p.relative_to(out) for p in (out / "scores").rglob("*.parquet"))
        for name in files:
            assert pq.read_table(out / name).equals(pq.read_table(ref / name))
        assert pq.read_table(out / "sites.parquet").equals(pq.read_table(ref / "sites.parquet"))
    else:
        names = sorted(p.name for p in (ref / "tracks").iterdir())
        assert names == sorted(p.name for p in (out / "tracks").iterdir()) and len(names) == 6
        for name in names:
            assert (out / "tracks" / name).read_bytes() == (ref / "tracks" / name).read_bytes()


@pytest.mark.parametrize("stage", ["tile", "merge", "tracks"])
def test_interrupted_stage_cleans_up_and_reruns_to_the_same_output(reference, tmp_path, stage):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    out = tmp_path / "out"
    out.mkdir()
    began = time.perf_counter()
    subprocess.run(_command(stage, reference, out), env=env, check=True, capture_output=True)
    full = time.perf_counter() - began  # an uninterrupted run, imports included
    rng = random.Random(f"{stage}-13")
    killed = 0
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGTERM, signal.SIGINT):
        shutil.rmtree(out)
        out.mkdir()
        process = subprocess.Popen(_command(stage, reference, out), env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
        time.sleep(rng.uniform(0.4, 0.95) * full)
        process.send_signal(signum)
        log = process.communicate(timeout=120)[0].decode()
        # 0: finished first; -signum: stopped before main() set up (nothing written yet)
        assert process.returncode in (0, 128 + signum, -signum), log
        killed += process.returncode == 128 + signum
        assert not _temporaries(out), (signum, log)  # removed by the stopped stage itself
        subprocess.run(_command(stage, reference, out), env=env, check=True, capture_output=True)
        assert not _temporaries(out)
        _same_output(stage, reference, out)
    assert killed >= 2  # most signals arrived while the stage was writing
