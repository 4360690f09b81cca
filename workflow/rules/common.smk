import difflib
import shlex
from pathlib import Path

import jsonschema
import yaml
from snakemake.exceptions import WorkflowError

from sptx_pipeline.models import local_model_files

LIST_KEYS = ("gene_types", "chromosomes", "genes", "tracks_channels")
NULLABLE_KEYS = ("chunk_size", "tracks_bits", "vcf", "variant_distance", "saturate")
BOOLEAN_KEYS = ("keep_predictions", "tune_threads", "variant_mask")
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


def _unknown_keys(prefix, instance, known):
    """One line per key of ``instance`` not in ``known``, with the closest known key."""
    lines = []
    for name in sorted(set(instance) - set(known)):
        close = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        lines.append(f"{prefix}{name}: not a config key{hint}")
    return lines


def _branch_errors(error):
    """The errors of the oneOf branch whose ``type`` matched (cluster: one branch per type)."""
    branches = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    for subs in branches.values():
        if not any(list(sub.path) == ["type"] for sub in subs):
            return subs
    return []


def config_problems(cfg, schema):
    """One line per schema violation, each starting with the key it concerns."""
    lines = []
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(cfg))
    for error in sorted(errors, key=lambda e: [str(p) for p in e.path]):
        path = [str(part) for part in error.path]
        key = ".".join(path)
        prefix = f"{key}." if key else ""
        if error.validator == "additionalProperties":
            lines.extend(_unknown_keys(prefix, error.instance, error.schema["properties"]))
        elif error.validator == "required":
            missing = [name for name in error.validator_value if name not in error.instance]
            lines.extend(f"{prefix}{name}: required key missing" for name in missing)
        elif error.validator == "oneOf":
            deeper = [e for e in errors if len(e.path) > len(path) and e.path[0] == error.path[0]]
            if deeper:  # e.g. an unknown cluster type, reported on its own line
                continue
            for sub in _branch_errors(error):
                if sub.validator == "additionalProperties":
                    lines.extend(_unknown_keys(prefix, sub.instance, sub.schema["properties"]))
                else:
                    lines.append(f"{'.'.join([*path, *map(str, sub.path)])}: {sub.message}")
        else:
            lines.append(f"{key}: {error.message}")
    return lines


def check_config(cfg, schema_path):
    """Stop with one line per bad key (key first) instead of jsonschema's schema dump."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    problems = config_problems(cfg, schema)
    if cfg.get("vcf") is not None and cfg.get("saturate") is not None:
        problems.append(
            "saturate: set together with vcf; saturation scores its own VCF of SNVs around exon "
            "boundaries and would ignore vcf: set one of them (the other to null)"
        )
    if problems:
        raise WorkflowError(
            f"Error validating config file against {schema_path} (keys, their defaults and "
            "meaning: README.md, 'Config keys'):\n  " + "\n  ".join(problems)
        )


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
