"""atomic_path: a result appears complete or not at all; stale temporaries of dead writers go."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sptx_pipeline.atomic import atomic_path, remove_stale, temp_path


def test_file_and_directory_replace_the_final_path(tmp_path):
    final = tmp_path / "sub" / "out.txt"
    with atomic_path(final) as tmp:
        assert tmp.name == f".out.txt.tmp-{os.getpid()}" and tmp.parent == final.parent
        tmp.write_text("one")
        assert not final.exists()
    assert final.read_text() == "one" and not tmp.exists()
    directory = tmp_path / "scores"
    (directory / "old").mkdir(parents=True)
    with atomic_path(directory) as tmp:
        (tmp / "new").mkdir(parents=True)
    assert [p.name for p in directory.iterdir()] == ["new"]


@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_failure_leaves_the_final_path_untouched(tmp_path, error):
    final = tmp_path / "out.txt"
    final.write_text("before")
    with pytest.raises(error), atomic_path(final) as tmp:
        tmp.write_text("half")
        raise error()
    assert final.read_text() == "before"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_keep_suffix():
    assert temp_path("a/b.bw", keep_suffix=True).name == f".b.bw.tmp-{os.getpid()}.bw"


def _dead_pid() -> str:
    return subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip


def test_remove_stale_removes_only_dead_writers(tmp_path):
    dead = _dead_pid()
    final = tmp_path / "scores"
    stale = tmp_path / f".scores.tmp-{dead}"
    (stale / "chrom=1").mkdir(parents=True)
    live = temp_path(final)
    live.mkdir()
    other = tmp_path / f".scores2.tmp-{dead}"
    other.touch()
    assert remove_stale(final) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name])


def test_merge_removes_the_temporaries_of_a_killed_merge(tmp_path):
    from tests.results_fixtures import build_run

    dead = _dead_pid()
    stale = [tmp_path / f".scores.tmp-{dead}", tmp_path / f".sites.parquet.tmp-{dead}"]
    (stale[0] / "chrom=chrA").mkdir(parents=True)
    stale[1].write_bytes(b"half a file")
    run = build_run(tmp_path)
    assert not any(p.exists() for p in stale)
    assert run.sites.is_file() and any(run.scores.glob("chrom=*/strand=*/part-*.parquet"))
