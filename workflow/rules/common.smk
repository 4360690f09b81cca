import difflib
from pathlib import Path

import jsonschema
import yaml
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


def config_problems(cfg, schema):
    """One line per schema violation, each starting with the key it concerns."""
    keys = sorted(schema["properties"])
    lines = []
    validator = jsonschema.Draft202012Validator(schema)
    for error in sorted(validator.iter_errors(cfg), key=lambda e: [str(p) for p in e.path]):
        key = ".".join(str(part) for part in error.path)
        if error.validator == "additionalProperties" and not error.path:
            for name in sorted(set(cfg) - set(keys)):
                close = difflib.get_close_matches(name, keys, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                lines.append(f"{name}: not a config key{hint}")
        elif error.validator == "required":
            missing = [name for name in error.validator_value if name not in error.instance]
            lines.extend(f"{name}: required key missing" for name in missing)
        else:
            lines.append(f"{key}: {error.message}")
    return lines


def check_config(cfg, schema_path):
    """Stop with one line per bad key (key first) instead of jsonschema's schema dump."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    problems = config_problems(cfg, schema)
    if problems:
        raise WorkflowError(
            f"Error validating config file against {schema_path} (keys, their defaults and "
            "meaning: README.md, 'Config keys'):\n  " + "\n  ".join(problems)
        )


def csv(values):
    return ",".join(values)


def local_model_files(source):
    """The model's file or directory when ``source`` is a local path (``spliceai:DIR`` too)."""
    path = source.partition(":")[2] if source.startswith("spliceai:") else source
    return [path] if path and Path(path).exists() else []
