"""The `variants` rule: planned only when `vcf` or `saturate` is set; a real run with a tiny
random SpTransformer writes both outputs with the SpTransformer convention."""

from __future__ import annotations

import subprocess

import pandas as pd
import pysam
import pytest

from sptx_pipeline.models.random_checkpoint import TINY_CONFIG, write_random_checkpoint
from tests.genome_fixtures import EXAMPLE_FASTA, EXAMPLE_GTF, REPO
from tests.test_variants_spliceai import DATA
from tests.test_workflow import SNAKEMAKE, job_counts

CONFIG = ["--configfile", str(REPO / "config" / "config.yaml")]
BASE = [f"fasta={EXAMPLE_FASTA}", f"gtf={EXAMPLE_GTF}", "gene_types=[]", "genes=[STK11,CBARP]"]


def snakemake(tmp_path, *args, target=()):
    result = subprocess.run(
        [*SNAKEMAKE, "--directory", str(tmp_path), "--cores", "2", *target, *CONFIG, *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_dry_run_plans_variants_only_when_asked(tmp_path):
    out = tmp_path / "out"
    plain = snakemake(tmp_path, "-n", "--config", *BASE, f"outdir={out}")
    assert "variants" not in job_counts(plain)
    vcf = DATA / "spliceai_chr19_variants.vcf"
    planned = snakemake(
        tmp_path, "-n", "-p", "--config", *BASE, f"outdir={out}", f"vcf={vcf}",
        "variant_mask=true", "variant_distance=500", "model=spliceai",
    )  # fmt: skip
    assert job_counts(planned)["variants"] == 1
    line = next(x for x in planned.splitlines() if "sptx variants" in x)
    for expected in (f"--vcf {vcf}", "--distance 500", "--mask", "--convention auto",
                     "--shard-size 1000", f"--exons {out}/exons.parquet"):  # fmt: skip
        assert expected in line
    saturated = snakemake(tmp_path, "-n", "-p", "--config", *BASE, f"outdir={out}", "saturate=5")
    assert "--saturate 5" in saturated


@pytest.mark.slow
def test_variants_rule_runs(tmp_path):
    model = write_random_checkpoint(tmp_path / "tiny", seed=1, **TINY_CONFIG)
    out = tmp_path / "out"
    vcf = DATA / "spliceai_chr19_variants.vcf"
    snakemake(
        tmp_path, "--config", *BASE, f"outdir={out}", f"vcf={vcf}", f"model={model}",
        "variant_shard_size=5", target=[f"{out}/variants.vcf.gz"],
    )  # fmt: skip
    frame = pd.read_parquet(out / "variants.parquet")
    assert {"splice_score", "delta_brain", "flag_liver", "dp_lung"} <= set(frame.columns)
    ok = frame[frame["status"] == "ok"]
    assert set(ok["gene_name"]) == {"STK11", "CBARP"} and ok["splice_score"].notna().all()
    with pysam.VariantFile(str(out / "variants.vcf.gz")) as result:
        records = list(result)
    assert len(records) == 18
    assert (
        sum("SpTransformer" in r.info for r in records)
        == sum("SpliceAI" in r.info for r in records)
        > 0
    )
    assert (out / "logs" / "variants.log").is_file()
