"""bigWig tracks: round trip to the Parquet values on both strands and browser-ready format."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pybigtools
import pytest

from sptx_pipeline.tracks import runs, write_tracks
from tests.results_fixtures import CHROM_SIZES, build_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return build_run(tmp_path_factory.mktemp("run"), row_group_rows=64, rows_per_file=300)


@pytest.fixture(scope="module")
def tracks(run):
    paths = write_tracks(run.scores, run.outdir / "genome.fa", run.outdir / "tracks")
    return {p.name: p for p in paths}


@pytest.fixture(scope="module")
def exact_tracks(run):
    paths = write_tracks(run.scores, run.outdir / "genome.fa", run.outdir / "exact", bits=None)
    return {p.name: p for p in paths}


def _scores(run):
    frame = pd.read_parquet(run.scores)
    frame["chrom"] = frame["chrom"].astype(str)
    frame["strand"] = frame["strand"].astype(str)
    return frame


def test_one_track_per_channel_and_strand(run, tracks):
    want = {f"{c}.{s}.bw" for c in run.channels for s in ("plus", "minus")}
    assert set(tracks) == want
    assert not [p for p in (run.outdir / "tracks").iterdir() if p.name.startswith(".")]


def _on_grid(values: np.ndarray, bits: int) -> np.ndarray:
    """Nearest multiple of 2^-bits, derived here with Python's round (half to even, as numpy)."""
    return np.array([round(float(v) * 2**bits) / 2**bits for v in values], dtype=np.float32)


@pytest.mark.parametrize("channel", ["acceptor", "donor", "no_splice", "brain", "stomach"])
@pytest.mark.parametrize("exact", [True, False])
def test_round_trip_equals_parquet_on_both_strands(run, tracks, exact_tracks, channel, exact):
    """Exact tracks hold the Parquet values; default ones those values on the 2^-10 grid."""
    tracks = exact_tracks if exact else tracks
    scores = _scores(run)
    for strand in ("plus", "minus"):
        reader = pybigtools.open(str(tracks[f"{channel}.{strand}.bw"]))
        for chrom, size in CHROM_SIZES.items():
            part = scores[(scores.chrom == chrom) & (scores.strand == strand)]
            if chrom not in reader.chroms():  # bigWig lists only contigs with data
                assert part.empty
                continue
            values = reader.values(chrom, 0, size, fillna=None)  # NaN where nothing is stored
            covered = np.zeros(size, dtype=bool)
            covered[part.pos.to_numpy() - 1] = True
            got = values[part.pos.to_numpy() - 1].astype(np.float32)
            stored = part[channel].to_numpy(np.float32)
            np.testing.assert_array_equal(got, stored if exact else _on_grid(stored, 10))
            assert np.abs(got - stored).max() <= (0 if exact else 2.0**-11)
            assert np.isnan(values[~covered]).all()  # nothing outside the scored positions


def test_format_chrom_sizes_sorted_non_overlapping(run, tracks):
    scores = _scores(run)
    for name, path in tracks.items():
        reader = pybigtools.open(str(path))
        strand = name.split(".")[1]
        with_data = sorted(set(scores.chrom[scores.strand == strand]))
        # the FASTA index's length for every contig with data on that strand
        assert reader.chroms() == {c: CHROM_SIZES[c] for c in with_data}
        for chrom, size in reader.chroms().items():
            records = list(reader.records(chrom))
            starts = np.array([r[0] for r in records], dtype=np.int64)
            ends = np.array([r[1] for r in records], dtype=np.int64)
            if not len(records):
                continue
            assert np.all(ends > starts)
            assert np.all(starts[1:] >= ends[:-1])  # sorted, no overlaps
            assert starts[0] >= 0 and ends[-1] <= size


def test_selected_channels_and_errors(run, tmp_path):
    paths = write_tracks(run.scores, run.outdir / "genome.fa", tmp_path, channels=["acceptor"])
    assert sorted(p.name for p in paths) == ["acceptor.minus.bw", "acceptor.plus.bw"]
    with pytest.raises(ValueError, match="unknown channel"):
        write_tracks(run.scores, run.outdir / "genome.fa", tmp_path, channels=["acceptr"])
    fasta = tmp_path / "other.fa"
    fasta.write_text(">chrA\n" + "A" * 2300 + "\n")
    with pytest.raises(ValueError, match=r"\['chrB'\]"):
        write_tracks(run.scores, fasta, tmp_path / "x")


def test_runs_merge_equal_adjacent_values():
    pos = np.array([1, 2, 3, 5, 6, 7, 8])
    vals = np.array([0.5, 0.5, 0.25, 0.25, 0.25, 1.0, 1.0], dtype=np.float32)
    starts, ends, values = runs(pos, vals)
    assert starts.tolist() == [0, 2, 4, 6]
    assert ends.tolist() == [2, 3, 6, 8]
    assert values.tolist() == [0.5, 0.25, 0.25, 1.0]


def test_cli_tracks(run, tmp_path):
    from sptx_pipeline.cli import main

    args = ["tracks", "--scores", str(run.scores), "--fasta", str(run.outdir / "genome.fa")]
    assert main([*args, "--out", str(tmp_path), "--channels", "donor,brain", "--workers", "2"]) == 0
    names = sorted(p.name for p in tmp_path.glob("*.bw"))
    assert names == ["brain.minus.bw", "brain.plus.bw", "donor.minus.bw", "donor.plus.bw"]
    for name in names:  # files written by worker processes hold the same values
        a = pybigtools.open(str(tmp_path / name)).values("chrA", 0, 2300, fillna=0)
        run_dir = tmp_path / "serial"
        write_tracks(run.scores, run.outdir / "genome.fa", run_dir, channels=[name.split(".")[0]])
        b = pybigtools.open(str(run_dir / name)).values("chrA", 0, 2300, fillna=0)
        np.testing.assert_array_equal(a, b)


def test_an_error_while_writing_fails_and_leaves_no_file(run, tmp_path, monkeypatch):
    """pybigtools prints an error raised by the entries it iterates, then returns normally with
    a truncated file; write_tracks must raise it and keep no file (a SIGTERM raises there)."""
    import sptx_pipeline.tracks as tracks_module

    entries = tracks_module._entries

    def failing(*args, **kwargs):
        for n, entry in enumerate(entries(*args, **kwargs)):
            if n == 50:
                raise KeyboardInterrupt  # what SIGINT raises in the middle of the writing
            yield entry

    monkeypatch.setattr(tracks_module, "_entries", failing)
    with pytest.raises(KeyboardInterrupt):
        write_tracks(run.scores, run.outdir / "genome.fa", tmp_path / "tracks", ["acceptor"])
    assert not list((tmp_path / "tracks").glob("*"))  # neither the track nor its temporary
