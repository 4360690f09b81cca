from pathlib import Path

from sptx_pipeline.models import local_model_files

LIST_KEYS = ("gene_types", "chromosomes", "genes", "tracks_channels")
ENV = "../envs/sptx.yaml"


def normalise_config(cfg):
    """Accept `--config genes=A,B` and `--config chunk_size=null` from the command line."""
    for key in LIST_KEYS:
        if isinstance(cfg.get(key), str):
            cfg[key] = [item for item in cfg[key].split(",") if item]
    for key in ("chunk_size", "vcf", "variant_distance", "saturate"):
        if str(cfg.get(key)).lower() in ("null", "none", ""):
            cfg[key] = None
    if isinstance(cfg.get("variant_mask"), str):  # --config variant_mask=true
        flag = cfg["variant_mask"].lower()
        cfg["variant_mask"] = {"true": True, "false": False}.get(flag, cfg["variant_mask"])


def csv(values):
    return ",".join(values)
