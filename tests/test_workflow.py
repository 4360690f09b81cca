"""The Snakemake workflow: lint, dry-run plan, schema validation, and re-running only what is stale.

The re-run test executes genes and tile for real; the stages built elsewhere (model-info,
predict, merge, tracks) are replaced by a small stand-in `sptx` that only writes their output
paths, because the test is about which jobs Snakemake schedules, not about their results.
"""

import json
import os
import re
import subprocess
import sys
import time

import pytest
import yaml

from sptx_pipeline.workflow_config import config_problems, normalise_config
from tests.genome_fixtures import EXAMPLE_FASTA, EXAMPLE_GTF, REPO

SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]
STAGES = ["genes", "model", "tile", "predict", "merge", "tracks", "all"]


def snakemake(workdir, *args, env=None):
    return subprocess.run(
        [*SNAKEMAKE, "--directory", str(workdir), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=workdir,
    )


def write_config(path, **overrides):
    config = {"fasta": str(EXAMPLE_FASTA), "gtf": str(EXAMPLE_GTF), **overrides}
    path.write_text(yaml.safe_dump(config))
    return path


def job_counts(output):
    """The 'job count' table Snakemake prints, as a dict."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split() == ["job", "count"])
    counts = {}
    for line in lines[start + 2 :]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


def test_lint_passes():
    result = subprocess.run([*SNAKEMAKE, "--lint"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "workflow is in a good condition" in result.stdout + result.stderr


def test_dry_run_plans_every_stage_with_config_defaults(tmp_path):
    config = write_config(tmp_path / "c.yaml", outdir=str(tmp_path / "out"), genes=["GPX4"])
    result = snakemake(tmp_path, "-n", "-p", "--cores", "1", "--configfile", str(config))
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    assert job_counts(out) == {stage: 1 for stage in STAGES}
    predict = next(line for line in out.splitlines() if "sptx predict" in line)
    for expected in [
        f"--windows {tmp_path}/out/windows.zarr",
        "--model multimolecule/sptransformer --device auto --precision float32",
        "--batch-size 8 --output-dtype float16",
        """--cluster '{"type": "local"}'""",
        f"> {tmp_path}/out/logs/predict.log 2>&1",
    ]:
        assert expected in predict
    assert "--shard-size 64" in out and "--gene-types=protein_coding,lncRNA" in out
    assert "--genes=GPX4" in out and "--sites-min-score 0.1" in out
    assert not (tmp_path / "out").exists()


def test_the_bundled_config_plans_the_example(tmp_path):
    result = snakemake(
        tmp_path,
        "-n",
        "--cores",
        "1",
        "--configfile",
        str(REPO / "config" / "config.yaml"),
        "--config",
        f"outdir={tmp_path}/res",
        f"fasta={EXAMPLE_FASTA}",
        f"gtf={EXAMPLE_GTF}",
    )
    assert result.returncode == 0, result.stderr
    assert job_counts(result.stdout + result.stderr) == {stage: 1 for stage in STAGES}


SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())


@pytest.mark.parametrize(
    "override, line",
    [
        ("device=gpu", "device: 'gpu' is not one of ['auto', 'cpu', 'cuda']"),
        ("shard_size=0", "shard_size: 0 is less than the minimum of 1"),
        ("missing_contigs=ignore", "missing_contigs: 'ignore' is not one of ['error', 'skip']"),
        ("chunk_sise=500", "chunk_sise: not a config key; did you mean 'chunk_size'?"),
        ("sites_min_score=2", "sites_min_score: 2 is greater than the maximum of 1"),
        ("genes=5", "genes: 5 is not of type 'array'"),
        ('cluster={"type": "slurmm"}', "cluster.type: 'slurmm' is not one of"),
        (
            'cluster={"type": "local", "n_worker": 2}',
            "cluster.n_worker: not a config key; did you mean 'n_workers'?",
        ),
    ],
)
def test_schema_violation_names_the_key_first(override, line):
    """One line per bad key, key first (the lines common.smk prints; in-process, the value
    parsed as Snakemake parses ``--config key=value``: YAML)."""
    key, _, value = override.partition("=")
    config = {"fasta": str(EXAMPLE_FASTA), "gtf": str(EXAMPLE_GTF), key: yaml.safe_load(value)}
    normalise_config(config)
    problems = config_problems(config, SCHEMA)
    assert len(problems) == 1 and problems[0].startswith(line), problems


def test_a_bad_key_stops_snakemake_with_its_line_right_after_the_headline(tmp_path):
    """What the terminal shows: the headline, then one line per bad key, no dump of the schema."""
    config = write_config(tmp_path / "c.yaml", outdir=str(tmp_path / "out"))
    result = snakemake(
        tmp_path, "-n", "--cores", "1", "--configfile", str(config), "--config", "device=gpu"
    )
    output = (result.stdout + result.stderr).splitlines()
    assert result.returncode != 0
    headline = next(i for i, text in enumerate(output) if "Error validating config file" in text)
    assert output[headline + 1].strip() == "device: 'gpu' is not one of ['auto', 'cpu', 'cuda']"
    assert len(output) < 15


def test_missing_required_key():
    problems = config_problems({"gtf": str(EXAMPLE_GTF)}, SCHEMA)
    assert "fasta: required key missing" in problems


STAND_IN = """#!{python}
# Stand-in for the stages this test does not exercise; genes and tile are the real ones.
import json, os, sys
from pathlib import Path
cmd, args = sys.argv[1], sys.argv[2:]
if cmd in ("genes", "tile"):
    os.execv(sys.executable, [sys.executable, "-m", "sptx_pipeline.cli", *sys.argv[1:]])
opt = dict(zip(args[::2], args[1::2]))
if cmd == "model-info":
    flank = 5000 if opt["--model"].startswith("wide") else 4000
    info = {{"source": opt["--model"], "flank": flank, "default_chunk_size": 1000}}
    Path(opt["--out"]).write_text(json.dumps(info))
elif cmd == "predict":
    Path(opt["--out"]).mkdir(exist_ok=True)
    Path(opt["--summary"]).write_text("{{}}")
elif cmd == "merge":
    Path(opt["--out-scores"]).mkdir()
    Path(opt["--out-sites"]).touch()
elif cmd == "tracks":
    Path(opt["--out"]).mkdir()
"""


@pytest.mark.slow
def test_rerun_only_what_is_stale(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sptx").write_text(STAND_IN.format(python=sys.executable))
    (bin_dir / "sptx").chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    out = tmp_path / "out"
    config = write_config(tmp_path / "c.yaml", outdir=str(out), genes=["GPX4", "CBARP"])

    def run(*overrides):
        result = snakemake(
            tmp_path, "--cores", "1", "--configfile", str(config), "--config", *overrides, env=env
        )
        assert result.returncode == 0, result.stdout + result.stderr
        text = result.stdout + result.stderr
        time.sleep(1.1)  # distinct mtimes for the next round
        return set(re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", text))

    assert run("model=m1") == set(STAGES)
    info = json.loads((out / "model.json").read_text())
    assert info["flank"] == 4000 and (out / "logs" / "tile.log").exists()
    assert (out / "benchmarks" / "tile.tsv").exists()
    tiled = (out / "windows.parquet").stat().st_mtime
    assert run("model=m1") == set()
    # a new model with the same geometry: predict and after, not genes or tile
    assert run("model=m2") == {"model", "predict", "merge", "tracks", "all"}
    assert (out / "windows.parquet").stat().st_mtime == tiled
    # a model with another flank re-tiles; so does another chunk size
    assert run("model=wide") == {"model", "tile", "predict", "merge", "tracks", "all"}
    assert run("model=wide", "chunk_size=500") == {"tile", "predict", "merge", "tracks", "all"}
    assert run("model=wide", "chunk_size=500") == set()
    assert run("model=wide", "chunk_size=500", "sites_min_score=0.2") == {"merge", "tracks", "all"}
    # a new gene selection redoes everything downstream of genes, but not the model
    assert run("model=wide", "chunk_size=500", "sites_min_score=0.2", "genes=[GPX4]") == set(
        STAGES
    ) - {"model"}


def test_a_snakemake_parse_imports_no_torch():
    """common.smk's imports (every parse of the Snakefile runs them) leave torch unimported:
    torch costs seconds on every `snakemake` call, dry runs included."""
    common = (REPO / "workflow" / "rules" / "common.smk").read_text()
    imports = [line for line in common.splitlines() if line.startswith(("import ", "from "))]
    assert any("sptx_pipeline" in line for line in imports)
    code = "\n".join([*imports, "import sys", "assert 'torch' not in sys.modules, 'torch'"])
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
