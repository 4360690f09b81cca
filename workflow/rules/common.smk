from pathlib import Path

from sptx_pipeline.models import local_model_files

LIST_KEYS = ("gene_types", "chromosomes", "genes", "tracks_channels")
NULLABLE_KEYS = ("chunk_size", "tracks_bits")
BOOLEAN_KEYS = ("keep_predictions", "tune_threads")
ENV = "../envs/sptx.yaml"


def normalise_config(cfg):
    """Accept `--config genes=A,B`, `chunk_size=null` and `keep_predictions=false` from the
    command line (Snakemake passes them as strings)."""
    for key in LIST_KEYS:
        if isinstance(cfg.get(key), str):
            cfg[key] = [item for item in cfg[key].split(",") if item]
    for key in NULLABLE_KEYS:
        if key in cfg and str(cfg[key]).lower() in ("null", "none", ""):
            cfg[key] = None
    for key in BOOLEAN_KEYS:
        if isinstance(cfg.get(key), str) and cfg[key].lower() in ("true", "false"):
            cfg[key] = cfg[key].lower() == "true"


def csv(values):
    return ",".join(values)
