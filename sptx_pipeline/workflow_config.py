"""The workflow's config: command-line values normalised, and schema violations reported one
line per key, key first (``shard_size: 0 is less than the minimum of 1``; a misspelt key with
the closest valid one). Imported by ``workflow/rules/common.smk`` on every Snakemake parse, so it
imports only jsonschema and yaml (no torch).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .errors import InputError


class ConfigError(InputError):
    """The config violates the schema: one line per bad key."""


LIST_KEYS = ("gene_types", "chromosomes", "genes", "tracks_channels")
NULLABLE_KEYS = (
    "chunk_size",
    "tracks_bits",
    "vcf",
    "variant_distance",
    "saturate",
    "assembly",
    "hub_email",
)
BOOLEAN_KEYS = ("keep_predictions", "tune_threads", "variant_mask")


def normalise_config(cfg: dict[str, Any]) -> None:
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


def _unknown_keys(prefix: str, instance: Any, known: Any) -> list[str]:
    """One line per key of ``instance`` not in ``known``, with the closest known key."""
    lines = []
    for name in sorted(set(instance) - set(known)):
        close = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        lines.append(f"{prefix}{name}: not a config key{hint}")
    return lines


def _branch_errors(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    """The errors of the oneOf branch whose ``type`` matched (cluster: one branch per type)."""
    branches: dict[Any, list[jsonschema.ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    for subs in branches.values():
        if not any(list(sub.path) == ["type"] for sub in subs):
            return subs
    return []


def config_problems(cfg: dict[str, Any], schema: dict[str, Any]) -> list[str]:
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


def check_config(cfg: dict[str, Any], schema_path: str | os.PathLike[str]) -> None:
    """Stop with one line per bad key (key first) instead of jsonschema's schema dump."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    problems = config_problems(cfg, schema)
    if cfg.get("vcf") is not None and cfg.get("saturate") is not None:
        problems.append(
            "saturate: set together with vcf; saturation scores its own VCF of SNVs around exon "
            "boundaries and would ignore vcf: set one of them (the other to null)"
        )
    if problems:
        raise ConfigError(
            f"Error validating config file against {schema_path} (keys, their defaults and "
            "meaning: docs/configuration.md):\n  " + "\n  ".join(problems)
        )
