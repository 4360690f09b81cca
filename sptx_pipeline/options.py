"""The choices of every option, once: ``Literal`` types for signatures, tuples (derived with
``typing.get_args``) for checks and argparse ``choices``, and the defaults.

The config schema (``workflow/schemas/config.schema.yaml``) restates them for Snakemake's
validation; ``tests/test_options.py`` checks that the two agree.
"""

from __future__ import annotations

from typing import Literal, get_args

from .errors import InputError

Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["float32", "tf32", "bfloat16", "float16"]
OutputDtype = Literal["float16", "float32"]
ClusterType = Literal["local", "local_cuda", "slurm", "address"]
MissingContigs = Literal["error", "skip"]
QueryFormat = Literal["table", "csv", "tsv", "parquet"]
Strand = Literal["+", "-"]
VariantConvention = Literal["auto", "spliceai", "sptransformer"]

DEVICES: tuple[Device, ...] = get_args(Device)
PRECISIONS: tuple[Precision, ...] = get_args(Precision)
OUTPUT_DTYPES: tuple[OutputDtype, ...] = get_args(OutputDtype)
CLUSTER_TYPES: tuple[ClusterType, ...] = get_args(ClusterType)
MISSING_CONTIGS: tuple[MissingContigs, ...] = get_args(MissingContigs)
QUERY_FORMATS: tuple[QueryFormat, ...] = get_args(QueryFormat)
STRANDS: tuple[Strand, ...] = get_args(Strand)
VARIANT_CONVENTIONS: tuple[VariantConvention, ...] = get_args(VariantConvention)

# Defaults shared by the library functions, the CLI and the config schema.
DEFAULT_DEVICE: Device = "auto"
DEFAULT_PRECISION: Precision = "float32"
DEFAULT_OUTPUT_DTYPE: OutputDtype = "float16"
DEFAULT_CLUSTER_TYPE: ClusterType = "local"
DEFAULT_MISSING_CONTIGS: MissingContigs = "error"
DEFAULT_QUERY_FORMAT: QueryFormat = "table"
DEFAULT_GENE_TYPES = ("protein_coding", "lncRNA")
DEFAULT_SHARD_SIZE = 64
DEFAULT_BATCH_SIZE = 8
DEFAULT_MAX_RETRIES = 2
DEFAULT_SITES_MIN_SCORE = 0.1
DEFAULT_VARIANT_CONVENTION: VariantConvention = "auto"
DEFAULT_VARIANT_SHARD_SIZE = 1000
DEFAULT_QUERY_TABLE_MAX_ROWS = 100_000  # rows the aligned table format prints at most
DEFAULT_TRACKS_BITS = 10  # bigWig values rounded to multiples of 2^-10 (about 0.001)
DEFAULT_ASSEMBLY: str | None = None  # UCSC assembly of the track hub (None: no hub)
DEFAULT_HUB_EMAIL: str | None = None  # the hub's contact (None: hub.DEFAULT_EMAIL)


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    """Raise :class:`InputError` naming ``name`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise InputError(f"{name} must be one of {list(choices)}, got {value!r}")
