from pathlib import Path

from sptx_pipeline.models import local_model_files

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
