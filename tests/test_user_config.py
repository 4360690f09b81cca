"""A user's own config, run the way a user runs it: `snakemake` inside a clone of the repository.

The clone holds the bundled example config (config/config.yaml) next to the Snakefile, as every
clone does; a user's `--configfile` must replace it, not be laid over it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pandas as pd
import yaml

from tests.genome_fixtures import EXAMPLE_FASTA, EXAMPLE_GTF, REPO


def clone(tmp_path):
    """The workflow files of a fresh clone (the example data is referenced, not copied)."""
    root = tmp_path / "clone"
    root.mkdir()
    shutil.copy(REPO / "Snakefile", root)
    shutil.copytree(REPO / "workflow", root / "workflow")
    if (REPO / "profiles").exists():
        shutil.copytree(REPO / "profiles", root / "profiles")
    (root / "config").mkdir()
    shutil.copy(REPO / "config" / "config.yaml", root / "config")
    return root


def run_in(root, *args):
    """`snakemake ARGS` with the clone as the working directory, as a user types it."""
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", *args], capture_output=True, text=True, cwd=root
    )
    return result.returncode, result.stdout + result.stderr


def gtf_genes(gene_types=("protein_coding", "lncRNA")) -> set[str]:
    """Gene names of the example GTF of the given types, read here with plain string splitting."""
    names = set()
    for line in EXAMPLE_GTF.read_text().splitlines():
        fields = line.split("\t")
        if len(fields) == 9 and fields[2] == "gene":
            attrs = dict(
                part.strip().split(" ", 1) for part in fields[8].split(";") if part.strip()
            )
            if attrs.get("gene_type", "").strip('"') in gene_types:
                names.add(attrs["gene_name"].strip('"'))
    return names


def test_a_user_config_does_not_inherit_the_example(tmp_path):
    root = clone(tmp_path)
    mine = tmp_path / "my.yaml"
    mine.write_text(
        yaml.safe_dump(
            {"fasta": str(EXAMPLE_FASTA), "gtf": str(EXAMPLE_GTF), "model": "m", "outdir": "out"}
        )
    )
    code, output = run_in(root, "-n", "-p", "--cores", "1", "--configfile", str(mine))
    assert code == 0, output
    # the schema's defaults, not the example's values (genes: six names, shard_size: 8, ...)
    assert "--genes= " in output and "GPX4" not in output
    assert "--shard-size 64" in output

    code, output = run_in(root, "out/genes.parquet", "--cores", "1", "--configfile", str(mine))
    assert code == 0, output
    selected = set(pd.read_parquet(root / "out" / "genes.parquet")["gene_name"])
    expected = gtf_genes()
    assert len(expected) > 50 and selected == expected


def test_without_a_configfile_the_example_is_the_config(tmp_path):
    root = clone(tmp_path)
    code, output = run_in(
        root, "-n", "-p", "--cores", "1", "--config", f"fasta={EXAMPLE_FASTA}", f"gtf={EXAMPLE_GTF}"
    )
    assert code == 0, output
    assert "--genes=GPX4,ATP5D,RPS15,C2CD4C,CBARP,GAMT" in output and "--shard-size 8" in output
