from pathlib import Path

from snakemake.exceptions import WorkflowError

LIST_KEYS = ("gene_types", "chromosomes", "genes", "tracks_channels")
ENV = "../envs/sptx.yaml"


def normalise_config(cfg):
    """Accept `--config genes=A,B` and `--config chunk_size=null` from the command line."""
    for key in LIST_KEYS:
        if isinstance(cfg.get(key), str):
            cfg[key] = [item for item in cfg[key].split(",") if item]
    if str(cfg.get("chunk_size")).lower() in ("null", "none", ""):
        cfg["chunk_size"] = None


def csv(values):
    return ",".join(values)


def local_model_files(source):
    """The model's file or directory when ``source`` is a local path (``spliceai:DIR`` too)."""
    path = source.partition(":")[2] if source.startswith("spliceai:") else source
    return [path] if path and Path(path).exists() else []


def predict_threads(wildcards):
    """Every core of a local run (``--cores``), as predict is the one rule that wants them all.

    Under a cluster executor there is no ``--cores`` (``workflow.cores`` raises); there the
    profile's ``set-threads`` gives predict its CPUs, and without one it asks for 1.
    """
    try:
        return workflow.cores
    except WorkflowError:
        return 1
