import shlex
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
