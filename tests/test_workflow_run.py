"""The real Snakemake workflow, every stage for real, with a tiny random SpTransformer.

The fast tier's one end-to-end run: the bundled config (six genes of GRCh37 chr19 on both
strands) with a random-weight tiny checkpoint and the chr19 test VCF (so the variants rule runs
too), shared by every test here. It checks every output of the on-disk contract, the logs and
benchmarks, that ``scores/`` covers exactly the union of the selected gene bodies, and that a
second run has nothing to do.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pyranges as pr
import pysam
import pytest

from sptx_pipeline import store
from sptx_pipeline.channels import SPLICE_CHANNELS
from sptx_pipeline.models.random_checkpoint import TINY_CONFIG, write_random_checkpoint
from tests.genome_fixtures import EXAMPLE_FASTA, EXAMPLE_GTF, REPO

RULES = ["genes", "model", "tile", "predict", "merge", "tracks", "variants"]
VCF = REPO / "tests" / "data" / "variants" / "spliceai_chr19_variants.vcf"
TISSUES = [
    "adipose_tissue", "blood", "blood_vessel", "brain", "colon", "heart", "kidney", "liver",
    "lung", "muscle", "nerve", "small_intestine", "skin", "spleen", "stomach",
]  # fmt: skip
CHANNELS = [*SPLICE_CHANNELS, *TISSUES]
BUNDLED_GENES = {"GPX4", "ATP5D", "RPS15", "C2CD4C", "CBARP", "GAMT"}


def snakemake(workdir, *config):
    """The bundled config/config.yaml, run in ``workdir`` with ``--config`` overrides."""
    command = [
        *(sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")),
        *("--directory", str(workdir), "--cores", "2"),
        *("--configfile", str(REPO / "config" / "config.yaml")),
        *("--config", f"fasta={EXAMPLE_FASTA}", f"gtf={EXAMPLE_GTF}", *config),
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=workdir)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One full run, and the output of a second run of the same command."""
    base = tmp_path_factory.mktemp("workflow")
    checkpoint = write_random_checkpoint(base / "tiny", seed=3, **TINY_CONFIG)
    out = base / "out"
    config = (f"model={checkpoint}", f"outdir={out}", f"vcf={VCF}")
    first = snakemake(base, *config)
    second = snakemake(base, *config)
    return out, first, second


def test_every_rule_ran_with_log_and_benchmark(run):
    out, first, _ = run
    for rule in RULES:
        assert f"(Rule: {rule})" in first, rule
        assert (out / "logs" / f"{rule}.log").is_file(), rule
        bench = pd.read_csv(out / "benchmarks" / f"{rule}.tsv", sep="\t")
        assert len(bench) == 1 and bench["s"].iloc[0] > 0, rule
    predict_log = (out / "logs" / "predict.log").read_text()
    assert "sptx_pipeline.cluster: local cluster" in predict_log
    assert "INFO distributed." not in predict_log  # Dask's own chatter stays out


def test_the_variants_rule_scored_the_vcf(run):
    """Every record of the VCF in variants.vcf.gz, in order; CBARP's records scored in the
    SpTransformer convention (the tiny checkpoint has the 15 tissues)."""
    out, _, _ = run
    frame = pd.read_parquet(out / "variants.parquet")
    ok = frame[frame["status"] == "ok"]
    assert "CBARP" in set(ok["gene_name"]) and ok["splice_score"].notna().all()
    with pysam.VariantFile(str(out / "variants.vcf.gz")) as result:
        positions = [record.pos for record in result]
    with pysam.VariantFile(str(VCF)) as source:
        assert positions == [record.pos for record in source]


def test_geometry_comes_from_the_checkpoint(run):
    out, _, _ = run
    info = json.loads((out / "model.json").read_text())
    assert info["flank"] == TINY_CONFIG["flank"] and info["channels"] == CHANNELS
    windows = pd.read_parquet(out / "windows.parquet")
    meta = pq.read_schema(out / "windows.parquet").metadata
    chunk = int(meta[b"chunk_size"])
    assert int(meta[b"flank"]) == TINY_CONFIG["flank"] and chunk == info["default_chunk_size"]
    assert ((windows["target_end"] - windows["target_start"]) == chunk).all()
    assert set(windows["strand"]) == {"+", "-"}


def test_predictions_are_complete(run):
    out, _, _ = run
    windows = pd.read_parquet(out / "windows.parquet")
    predictions = out / "predictions.zarr"
    assert store.missing_shards(predictions) == []
    assert store.done_shards(predictions) == set(windows["shard"])
    assert store.open_predictions(predictions).shape[0] == len(windows)


def test_scores_cover_exactly_the_union_of_gene_bodies(run):
    out, _, _ = run
    genes = pd.read_parquet(out / "genes.parquet")
    assert set(genes["gene_name"]) == BUNDLED_GENES
    bodies = pr.PyRanges(
        genes.rename(columns={"chrom": "Chromosome", "strand": "Strand", "end": "End"}).assign(
            Start=genes["start"] - 1
        )
    ).merge(strand=True)
    expected = bodies.df.assign(n=lambda d: d.End - d.Start).groupby("Strand", observed=True)["n"]
    scores = pd.read_parquet(out / "scores")
    assert list(scores.columns[:1]) == ["pos"] and set(CHANNELS) <= set(scores.columns)
    assert len(scores.columns) == 1 + len(CHANNELS) + 2  # + the chrom/strand partition columns
    strand = scores["strand"].astype(str).map({"plus": "+", "minus": "-"})
    assert strand.value_counts().to_dict() == expected.sum().to_dict()
    assert not scores.duplicated(["chrom", "strand", "pos"]).any()
    assert scores[CHANNELS].notna().all().all()
    total = scores[list(SPLICE_CHANNELS)].sum(axis=1)
    assert (total - 1).abs().max() < 1e-2  # softmax over the splice channels, float16 storage


def test_sites_and_tracks(run):
    out, _, _ = run
    sites = pd.read_parquet(out / "sites.parquet")
    assert list(sites.columns) == [
        "chrom",
        "pos",
        "strand",
        "site_type",
        "score",
        *TISSUES,
        "gene_ids",
    ]
    tracks = {path.name for path in (out / "tracks").glob("*.bw")}
    assert tracks == {f"{c}.{s}.bw" for c in CHANNELS for s in ("plus", "minus")}


def test_a_second_run_has_nothing_to_do(run):
    _, _, second = run
    assert "Nothing to be done" in second
    assert "Rule:" not in second


def output_examples() -> list[tuple[str, str]]:
    """``(language, code)`` of every block of the README's "A five-minute tour of the outputs"
    and of the docs page "Outputs and querying" (docs/outputs.md)."""
    readme = (REPO / "README.md").read_text()
    tour = readme.split("## A five-minute tour of the outputs", 1)[1].split("\n## ", 1)[0]
    text = tour + (REPO / "docs" / "outputs.md").read_text()
    return re.findall(r"```(\w+)\n(.*?)```", text, re.S)


def test_readme_query_and_plot_examples_run_on_the_example(run, tmp_path, monkeypatch):
    """Every query/plot command and Python/SQL block of the README's tour of the outputs and of
    docs/outputs.md, as typed, on the bundled example."""
    out, _, _ = run
    (tmp_path / "results").symlink_to(out)  # the docs' outdir
    monkeypatch.chdir(tmp_path)
    blocks = output_examples()
    commands = [
        line.split(" #")[0].split()
        for language, code in blocks
        if language == "bash"
        for line in code.splitlines()
        if line.startswith(("sptx query results ", "sptx plot results "))
    ]
    assert len(commands) >= 9  # 3 in the README's tour, 6 in docs/outputs.md
    for words in commands:
        result = subprocess.run(
            [sys.executable, "-m", "sptx_pipeline.cli", *words[1:]],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, (words, result.stderr)
        assert "no rows" not in result.stdout + result.stderr, words
        target = words[words.index("-o") + 1] if "-o" in words else None
        if words[1] == "plot":
            assert (tmp_path / target).stat().st_size > 10_000, words
        elif target and target.endswith(".parquet"):
            assert len(pd.read_parquet(target)) > 0, words
        elif target:
            assert len(pd.read_csv(target)) > 0, words
        else:
            assert len(result.stdout.splitlines()) > 1, words
    for language, code in blocks:
        if language == "python":
            namespace: dict = {}
            exec(compile(code, "docs", "exec"), namespace)  # noqa: S102 - the docs' own
            for name in ("frame", "df"):
                assert name not in namespace or len(namespace[name]) > 0, code
        elif language == "sql":
            assert len(duckdb.sql(code).fetchall()) > 0, code


def test_a_query_with_no_rows_says_so(run, tmp_path):
    out, _, _ = run
    target = tmp_path / "empty.csv"
    result = subprocess.run(
        [sys.executable, "-m", "sptx_pipeline.cli", "query", str(out), "chr19:1-1000"]
        + ["--format", "csv", "-o", str(target)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "no rows" in result.stderr
    assert len(target.read_text().splitlines()) == 1  # the header


@pytest.mark.slow
def test_rerun_after_a_crash_resumes_predict(run):
    """A crashed predict leaves shards done and no predictions.json: the next run resumes.

    Runs last in this module: it recomputes one shard of the module's run and leaves the same
    outputs behind.
    """
    out, _, _ = run
    before = pd.read_parquet(out / "scores")
    n_shards = len(store.done_shards(out / "predictions.zarr"))
    # a first run killed during predict: shard 0 in flight, nothing after predict written yet
    (out / "predictions.json").unlink()
    store.done_marker(out / "predictions.zarr", 0).unlink()
    shutil.rmtree(out / "scores")
    shutil.rmtree(out / "tracks")
    (out / "sites.parquet").unlink()
    checkpoint = json.loads((out / "model.json").read_text())["source"]
    output = snakemake(out.parent, f"model={checkpoint}", f"outdir={out}")
    assert "(Rule: predict)" in output and "(Rule: genes)" not in output
    summary = json.loads((out / "predictions.json").read_text())
    assert (summary["computed"], summary["skipped"]) == (1, n_shards - 1)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "scores"), before)


@pytest.mark.slow
def test_keep_predictions_false(run, tmp_path):
    """merge deletes predictions.zarr; a later change that re-runs merge re-runs predict first."""
    out, _, _ = run
    checkpoint = json.loads((out / "model.json").read_text())["source"]
    lean = tmp_path / "lean"
    config = (f"model={checkpoint}", f"outdir={lean}", "keep_predictions=false")
    snakemake(tmp_path, *config)
    assert not (lean / "predictions.zarr").exists()
    assert not (lean / "predictions.json").exists()  # temp(): gone once merge consumed it
    pd.testing.assert_frame_equal(pd.read_parquet(lean / "scores"), pd.read_parquet(out / "scores"))
    assert "Nothing to be done" in snakemake(tmp_path, *config)  # the deletions are not staleness
    output = snakemake(tmp_path, *config, "sites_min_score=0.5")
    assert "(Rule: predict)" in output and "(Rule: merge)" in output
    sites = pd.read_parquet(lean / "sites.parquet")
    assert len(sites) and (sites["score"] >= 0.5).all()
    assert not (lean / "predictions.zarr").exists()
