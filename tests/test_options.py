"""The config schema, the CLI and options.py agree on every choice and default; the cluster
mapping is validated per type when the config is read."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from sptx_pipeline import cluster, options
from sptx_pipeline.cli import build_parser

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"
SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())
PROPS = SCHEMA["properties"]

# config key -> (choices, default) in options.py
CHOICES = {
    "device": (options.DEVICES, options.DEFAULT_DEVICE),
    "precision": (options.PRECISIONS, options.DEFAULT_PRECISION),
    "output_dtype": (options.OUTPUT_DTYPES, options.DEFAULT_OUTPUT_DTYPE),
    "missing_contigs": (options.MISSING_CONTIGS, options.DEFAULT_MISSING_CONTIGS),
    "variant_convention": (options.VARIANT_CONVENTIONS, options.DEFAULT_VARIANT_CONVENTION),
}
DEFAULTS = {
    "gene_types": list(options.DEFAULT_GENE_TYPES),
    "shard_size": options.DEFAULT_SHARD_SIZE,
    "batch_size": options.DEFAULT_BATCH_SIZE,
    "max_retries": options.DEFAULT_MAX_RETRIES,
    "sites_min_score": options.DEFAULT_SITES_MIN_SCORE,
    "variant_shard_size": options.DEFAULT_VARIANT_SHARD_SIZE,
    "tracks_bits": options.DEFAULT_TRACKS_BITS,
    "assembly": options.DEFAULT_ASSEMBLY,
    "hub_email": options.DEFAULT_HUB_EMAIL,
}


@pytest.mark.parametrize("key", sorted(CHOICES))
def test_schema_enums_and_defaults_equal_options(key):
    choices, default = CHOICES[key]
    assert PROPS[key]["enum"] == list(choices)
    assert PROPS[key]["default"] == default


@pytest.mark.parametrize("key", sorted(DEFAULTS))
def test_schema_defaults_equal_options(key):
    assert PROPS[key]["default"] == DEFAULTS[key]


def test_cluster_types_and_per_type_keys_equal_cluster_module():
    spec = PROPS["cluster"]
    assert spec["properties"]["type"]["enum"] == list(options.CLUSTER_TYPES)
    assert spec["properties"]["type"]["default"] == options.DEFAULT_CLUSTER_TYPE
    assert tuple(cluster.CLUSTER_TYPES) == options.CLUSTER_TYPES
    per_type = {}
    for branch in spec["oneOf"]:
        assert branch["additionalProperties"] is False
        keys = set(branch["properties"])
        per_type[branch["properties"]["type"]["const"]] = keys - {"type"}
    assert per_type == {kind: set(keys) for kind, keys in cluster._KEYS.items()}


def _config(**cluster_mapping):
    return {"fasta": "g.fa", "gtf": "g.gtf", "cluster": cluster_mapping}


def test_cluster_mapping_is_validated_per_type():
    config = _config(type="local", n_workers=2)
    validate(config, str(SCHEMA_PATH), set_default=True)
    assert config["device"] == options.DEFAULT_DEVICE
    validate(_config(type="slurm", cores=4, memory="8GB", walltime="01:00:00"), str(SCHEMA_PATH))
    defaulted = {"fasta": "g.fa", "gtf": "g.gtf"}
    validate(defaulted, str(SCHEMA_PATH), set_default=True)
    assert defaulted["cluster"] == {"type": "local"}
    for bad in (
        _config(type="local", n_worker=2),  # typo
        _config(type="address", cores=4),  # a SLURM key on another type
        _config(type="kubernetes"),
    ):
        with pytest.raises(Exception, match="cluster|not valid"):
            validate(bad, str(SCHEMA_PATH), set_default=True)


def _choices(command: str) -> dict[str, tuple[object, object]]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return {a.dest: (tuple(a.choices or ()), a.default) for a in sub._actions}


def test_cli_choices_and_defaults_come_from_options():
    predict = _choices("predict")
    assert predict["device"] == (options.DEVICES, options.DEFAULT_DEVICE)
    assert predict["precision"] == (options.PRECISIONS, options.DEFAULT_PRECISION)
    assert predict["output_dtype"] == (options.OUTPUT_DTYPES, options.DEFAULT_OUTPUT_DTYPE)
    genes = _choices("genes")
    assert genes["missing_contigs"] == (options.MISSING_CONTIGS, options.DEFAULT_MISSING_CONTIGS)
    assert genes["gene_types"][1] == list(options.DEFAULT_GENE_TYPES)
    variants = _choices("variants")
    assert variants["convention"] == (
        options.VARIANT_CONVENTIONS,
        options.DEFAULT_VARIANT_CONVENTION,
    )
    assert variants["shard_size"][1] == options.DEFAULT_VARIANT_SHARD_SIZE
    assert variants["device"] == (options.DEVICES, options.DEFAULT_DEVICE)
    query = _choices("query")
    assert query["format"] == (options.QUERY_FORMATS, options.DEFAULT_QUERY_FORMAT)
    assert query["strand"][0] == options.STRANDS
