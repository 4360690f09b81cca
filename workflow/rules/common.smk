import shlex
from pathlib import Path

from snakemake.exceptions import WorkflowError

# torch-free imports: every Snakemake parse pays for what is imported here
from sptx_pipeline import workflow_config
from sptx_pipeline.model_source import local_model_files
from sptx_pipeline.workflow_config import normalise_config

ENV = "../envs/sptx.yaml"


def check_config(cfg, schema_path):
    """Schema violations as Snakemake's own error: one line per bad key, key first."""
    try:
        workflow_config.check_config(cfg, schema_path)
    except workflow_config.ConfigError as error:
        raise WorkflowError(str(error)) from None


def csv(values):
    return ",".join(values)


def all_cores(wildcards):
    """Every core of a local run (``--cores``): for predict and variants (torch threads), merge
    and tracks (one process per partition or file).

    Under a cluster executor there is no ``--cores`` (``workflow.cores`` raises); there the
    profile's ``set-threads`` gives each rule its CPUs, and without one it asks for 1.
    """
    try:
        return workflow.cores
    except WorkflowError:
        return 1


def variants_wanted():
    return config["vcf"] is not None or config["saturate"] is not None


def variant_outputs():
    """The variant outputs the default target asks for: none unless `vcf` or `saturate` is set."""
    if not variants_wanted():
        return []
    return [f"{OUT}/variants.parquet", f"{OUT}/variants.vcf.gz"]


def variant_source():
    """The CLI's input option: the configured VCF, or saturation around exon boundaries."""
    if config["saturate"] is not None:
        return f"--saturate {int(config['saturate'])}"
    return f"--vcf {shlex.quote(str(config['vcf']))}"
