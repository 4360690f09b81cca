"""``variants``: score the splicing effect of every VCF record, ALT and overlapping gene.

The driver streams the VCF once (``vcf.iter_records``) into ``<out>.work/records.parquet``
and runs one Dask task per shard of ``shard_size`` records through ``runner.run_shards``. A
task cuts the REF and ALT windows of its records, scores each *distinct* window once (windows
grouped by length into batches, ``runtime.score_windows``; an SNV or MNV ALT window from its REF
window's pass where the model supports it), computes the scores of the chosen
convention (``variant_effects``), writes ``parts/part-<shard>.parquet`` and then a done marker
with the part's SHA-256 (``store.mark_done``). A rerun skips shards whose part matches its
marker, so a killed run resumes and gives the same bytes. Once every shard is done the parts
become ``variants.parquet`` and the annotated ``variants.vcf.gz`` (+ ``.tbi``).

Conventions (docs/variants.md): ``spliceai`` reproduces the official ``spliceai``
CLI; ``sptransformer`` the official SpliceTransformer tool, extended to every ALT, gene,
indel and MNV.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import store
from .annotation import strip_version
from .atomic import atomic_path, remove_path, remove_stale, write_text
from .channels import SPLICE_CHANNELS
from .errors import IncompleteVariantsError, InputError, MissingInputError
from .genome import COMPLEMENT, contig_lengths, encode, open_fasta, reconcile_contigs
from .lock import holds_store_lock
from .options import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_DEVICE,
    DEFAULT_GENE_TYPES,
    DEFAULT_MAX_RETRIES,
    DEFAULT_PRECISION,
    DEFAULT_VARIANT_CONVENTION,
    DEFAULT_VARIANT_SHARD_SIZE,
    VARIANT_CONVENTIONS,
    Device,
    Precision,
    VariantConvention,
    check_choice,
)
from .provenance import package_provenance, sha256_file
from .results import provenance_metadata, read_provenance
from .runner import RunSummary, ShardResult, resume_order, run_stage
from .runtime import (
    ModelSpec,
    identify,
    local_thread_cap,
    model_key,
    resolve_device,
    score_windows,
    worker_model,
)
from .store import Shard, shard_grid
from .variant_effects import (
    DELTA_KEYS,
    TISSUES,
    align_alt,
    align_padded,
    nearest_boundary,
    splice_deltas,
    tissue_effect,
    tissue_flags,
)
from .vcf import (
    RECORD_COLUMNS,
    info_header_lines,
    iter_records,
    provenance_line,
    readable_copy,
    write_annotated,
)

log = logging.getLogger(__name__)

DEFAULT_DISTANCE = {"spliceai": 50, "sptransformer": 100}
RECORD_CHUNK = 100_000  # VCF records the driver holds at once while reading
RECORD_GROUP = 10_000  # rows per row group of records.parquet (a shard reads its groups)
ID_COLUMNS = ["chrom", "pos", "id", "ref", "alt", "gene_id", "gene_name", "strand", "status"]
SKIPPED_ALTS = (".", "-", "*")  # the official tool skips ALTs containing these ...
SYMBOLIC_MARKS = ("<", ">", "[", "]")  # ... and symbolic ones (breakends: ours too)


def result_schema(convention: str) -> pa.Schema:
    """Columns of ``variants.parquet`` for a convention (``record`` = input record number)."""
    fields = [pa.field(name, pa.int64() if name == "pos" else pa.string()) for name in ID_COLUMNS]
    fields += [pa.field(f"ds_{key}", pa.float32()) for key in DELTA_KEYS]
    fields += [pa.field(f"dp_{key}", pa.int32()) for key in DELTA_KEYS]
    if convention == "sptransformer":
        fields.append(pa.field("splice_score", pa.float32()))
        fields += [pa.field(f"delta_{t}", pa.float32()) for t in TISSUES]
        fields += [pa.field(f"flag_{t}", pa.bool_()) for t in TISSUES]
        fields += [pa.field(f"dp_{t}", pa.int32()) for t in TISSUES]
    fields.append(pa.field("record", pa.int64()))
    return pa.schema(fields)


# ---------------------------------------------------------------- annotation of one process


@dataclass
class Annotation:
    """Genes by FASTA contig, canonical exon boundaries by gene, the FASTA and contig names."""

    fasta: Any
    lengths: dict[str, int]
    genes: dict[str, pd.DataFrame]
    boundaries: dict[str, np.ndarray]
    contigs: dict[str, str | None] = field(default_factory=dict)  # VCF name -> FASTA name

    @classmethod
    def load(cls, fasta: str, genes: str, exons: str | None) -> Annotation:
        handle = open_fasta(fasta)
        table = pd.read_parquet(genes)
        boundaries: dict[str, np.ndarray] = {}
        table["tx_start"], table["tx_end"] = table["start"], table["end"]
        if exons:
            frame = pd.read_parquet(exons)
            for gene, group in frame.groupby("gene_id", sort=False):
                boundaries[str(gene)] = np.union1d(group["start"], group["end"]).astype(np.int64)
            span = frame.groupby("gene_id").agg(lo=("start", "min"), hi=("end", "max"))
            known = table["gene_id"].isin(span.index)
            table.loc[known, "tx_start"] = table.loc[known, "gene_id"].map(span["lo"])
            table.loc[known, "tx_end"] = table.loc[known, "gene_id"].map(span["hi"])
        by_chrom = {
            str(chrom): group.reset_index(drop=True)
            for chrom, group in table.groupby("chrom", sort=False)
        }
        return cls(handle, contig_lengths(handle), by_chrom, boundaries)

    def fasta_contig(self, chrom: str) -> str | None:
        if chrom not in self.contigs:
            self.contigs.update(reconcile_contigs([chrom], self.lengths))
        return self.contigs[chrom]

    def genes_at(self, chrom: str | None, pos: int, transcript: bool = False) -> pd.DataFrame:
        """Genes whose body ``[start, end]`` (1-based) contains ``pos``, in genes.parquet order;
        with ``transcript``, whose canonical transcript span ``[tx_start, tx_end]`` does (the
        official SpliceAI annotation lists canonical transcripts; gene body without exons)."""
        table = self.genes.get(chrom) if chrom is not None else None
        if table is None:
            return pd.DataFrame()
        lo, hi = ("tx_start", "tx_end") if transcript else ("start", "end")
        return table[(table[lo].to_numpy() <= pos) & (pos <= table[hi].to_numpy())]


# -------------------------------------------------------------------------- windows


_SPLICEAI_CODES = {"A": 0, "C": 1, "G": 2, "T": 3, "N": 4}


def _spliceai_table() -> np.ndarray:
    """The official tool's one-hot of a character, as a token: A, C, G, T, N by name; any other
    (upper-cased) letter by ``ord % 5`` (0 = N, 1..4 = A, C, G, T), e.g. R -> C, Y -> T."""
    table = np.full(256, 4, dtype=np.uint8)
    for code in range(256):
        upper = chr(code).upper()
        if upper in _SPLICEAI_CODES:
            table[code] = _SPLICEAI_CODES[upper]
        elif len(upper) == 1 and ord(upper) < 128:
            table[code] = (4, 0, 1, 2, 3)[ord(upper) % 5]
    return table


SPLICEAI_TABLE = _spliceai_table()


def encode_spliceai(sequence: str) -> np.ndarray:
    return SPLICEAI_TABLE[np.frombuffer(sequence.encode("latin-1", "replace"), dtype=np.uint8)]


class WindowSet:
    """Distinct model inputs: identical token windows share one slot (one forward pass).

    An ALT window of the same length as its REF window (SNV, MNV) also records the REF slot and
    the span where the two differ (``substitutions``): a model that can reuse the REF pass for
    the ALT (``runtime.score_windows``) then does.
    """

    def __init__(self) -> None:
        self.slots: dict[bytes, int] = {}
        self.windows: list[np.ndarray] = []
        self.substitutions: dict[int, tuple[int, int, int]] = {}  # slot -> (REF, start, stop)

    def add(self, tokens: np.ndarray, reference: int | None = None) -> int:
        """The slot of ``tokens``; ``reference``: the slot of the REF window it is an ALT of."""
        key = tokens.tobytes()
        slot = self.slots.get(key)
        if slot is None:
            slot = self.slots[key] = len(self.windows)
            self.windows.append(tokens)
            if reference is not None and len(self.windows[reference]) == len(tokens):
                changed = np.flatnonzero(self.windows[reference] != tokens)
                if changed.size:
                    self.substitutions[slot] = (reference, int(changed[0]), int(changed[-1]) + 1)
        elif reference is None:
            self.substitutions.pop(slot, None)  # a REF window too: scored in full
        return slot

    def score(self, model: Any, batch_size: int, device: Any) -> list[np.ndarray]:
        """Outputs ``[T, C]`` per slot; windows of one length go through the model together."""
        outputs: list[np.ndarray | None] = [None] * len(self.windows)
        by_length: dict[int, list[int]] = defaultdict(list)
        for slot, window in enumerate(self.windows):
            by_length[len(window)].append(slot)
        for _, slots in sorted(by_length.items()):
            batch = np.stack([self.windows[s] for s in slots])
            row = {slot: i for i, slot in enumerate(slots)}
            substitutions = {
                row[alt]: (row[ref], start, stop)
                for alt, (ref, start, stop) in self.substitutions.items()
                if alt in row
            }
            probs = score_windows(model, batch, batch_size, "float32", device, substitutions)
            for slot, values in zip(slots, probs, strict=True):
                outputs[slot] = values
        return outputs  # type: ignore[return-value]


@dataclass(frozen=True)
class Settings:
    """What the arithmetic needs: convention, distance ``D``, mask, model flank and channels."""

    convention: str
    distance: int
    mask: bool
    flank: int


# --------------------------------------------------------------------- one shard of records


@dataclass
class Pending:
    """A row waiting for model outputs: its REF/ALT slots and what aligns and masks them."""

    row: dict[str, Any]
    ref_slot: int
    alt_slot: int
    ref_len: int
    alt_len: int
    strand: str
    boundary: int | None
    strand_key: tuple[int, str, str]  # (record, alt, strand): shares the tissue effect


def _row(rec: Any, alt: str, gene: Any | None, status: str) -> dict[str, Any]:
    return {
        "chrom": rec.chrom,
        "pos": int(rec.pos),
        "id": rec.id,
        "ref": rec.ref,
        "alt": alt,
        "gene_id": None if gene is None else str(gene.gene_id),
        "gene_name": None if gene is None else str(gene.gene_name),
        "strand": None if gene is None else str(gene.strand),
        "status": status,
        "record": int(rec.record),
    }


def _alt_status(alt: str, ref: str, convention: str) -> str:
    if any(mark in alt for mark in SYMBOLIC_MARKS):
        return "symbolic_alt"
    if any(mark in alt for mark in SKIPPED_ALTS):
        return "skipped_alt"
    if convention == "spliceai" and len(ref) > 1 and len(alt) > 1:
        return "mnv"
    return "ok"


def _record_status(rec: Any, sequence: str | None, half: int, settings: Settings) -> str | None:
    """Why a record with genes is not scored (None: scored); the official tool's skip rules."""
    if sequence is None:
        return "near_contig_end"
    written = rec.ref if settings.convention == "spliceai" else rec.ref.upper()
    if sequence[half : half + len(rec.ref)].upper() != written:  # the tool: REF as written
        return "ref_mismatch"
    if len(rec.ref) > 2 * settings.distance:
        return "ref_too_long"
    return None


def _needs_exons(settings: Settings, annotation: Annotation, gene: Any) -> bool:
    """A gene without canonical exons where they are needed: the ``spliceai`` convention (the
    official tool's table lists transcripts, which have exons) and the mask (no boundaries)."""
    needed = settings.convention == "spliceai" or settings.mask
    return needed and str(gene.gene_id) not in annotation.boundaries


def _window_sequence(annotation: Annotation, chrom: str, pos: int, half: int) -> str | None:
    """The genome around 1-based ``pos``, ``half`` bases each side; None off the contig."""
    begin, end = pos - 1 - half, pos + half
    if begin < 0 or end > annotation.lengths[chrom]:
        return None
    return str(annotation.fasta[chrom][begin:end])


def _oriented(tokens: np.ndarray, strand: str) -> np.ndarray:
    return COMPLEMENT[tokens[::-1]] if strand == "-" else tokens


def plan_records(
    records: pd.DataFrame, annotation: Annotation, settings: Settings, windows: WindowSet
) -> list[dict[str, Any] | Pending]:
    """Rows in output order; scored ones as ``Pending`` with their windows added to ``windows``."""
    half = settings.flank + settings.distance
    out: list[dict[str, Any] | Pending] = []
    for rec in records.itertuples(index=False):
        alts = rec.alts.split(",") if rec.alts else []
        if not alts:
            out.append(_row(rec, ".", None, "no_alt"))
            continue
        chrom = annotation.fasta_contig(rec.chrom)
        genes = annotation.genes_at(chrom, int(rec.pos), settings.convention == "spliceai")
        if chrom is None or genes.empty:
            out.extend(_row(rec, alt, None, "no_gene") for alt in alts)
            continue
        sequence = _window_sequence(annotation, chrom, int(rec.pos), half)
        status = _record_status(rec, sequence, half, settings)
        if sequence is None or status is not None:
            reason = status or "near_contig_end"
            out.extend(_row(rec, a, g, reason) for a in alts for g in genes.itertuples())
            continue
        ref_tokens: dict[Any, np.ndarray] = {}
        for alt in alts:
            for gene in genes.itertuples():
                row = _row(rec, alt, gene, _alt_status(alt, rec.ref, settings.convention))
                if row["status"] == "ok" and _needs_exons(settings, annotation, gene):
                    row["status"] = "no_exons"
                if row["status"] != "ok":
                    out.append(row)
                    continue
                if settings.convention == "spliceai":
                    key: Any = (gene.tx_start, gene.tx_end)
                    if key not in ref_tokens:  # N outside the transcript span
                        lo = max(gene.tx_start - (rec.pos - half), 0)
                        hi = max((rec.pos + half) - gene.tx_end, 0)
                        masked = "N" * lo + sequence[lo : len(sequence) - hi] + "N" * hi
                        ref_tokens[key] = encode_spliceai(masked)
                    ref = ref_tokens[key]
                    alt_tokens = np.concatenate(
                        [ref[:half], encode_spliceai(alt.upper()), ref[half + len(rec.ref) :]]
                    )
                else:
                    key = "genome"
                    if key not in ref_tokens:
                        ref_tokens[key] = encode(sequence)
                    ref = ref_tokens[key]
                    alt_tokens = np.concatenate(
                        [ref[:half], encode(alt.upper()), ref[half + len(rec.ref) :]]
                    )
                boundaries = annotation.boundaries.get(str(gene.gene_id), np.empty(0, np.int64))
                ref_slot = windows.add(_oriented(ref, gene.strand))
                out.append(
                    Pending(
                        row=row,
                        ref_slot=ref_slot,
                        alt_slot=windows.add(_oriented(alt_tokens, gene.strand), ref_slot),
                        ref_len=len(rec.ref),
                        alt_len=len(alt),
                        strand=str(gene.strand),
                        boundary=nearest_boundary(boundaries, int(rec.pos)),
                        strand_key=(int(rec.record), alt, str(gene.strand)),
                    )
                )
    return out


def aligned_tracks(
    item: Pending, outputs: list[np.ndarray], settings: Settings
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """REF and ALT scores of a pending row in genomic order, aligned by its convention's rule
    (SpliceTransformer's ``align_score``, else SpliceAI's), and each row's offset from the
    variant (None: the centre row is 0). ``sptx plot-variant`` draws these same tracks."""
    ref, alt = outputs[item.ref_slot], outputs[item.alt_slot]
    if item.strand == "-":
        ref, alt = ref[::-1], alt[::-1]
    if settings.convention == "sptransformer":
        return align_padded(ref, alt, item.ref_len, item.alt_len, settings.distance)
    return ref, align_alt(alt, item.ref_len, item.alt_len, settings.distance), None


def finish_rows(
    planned: list[dict[str, Any] | Pending], outputs: list[np.ndarray], settings: Settings
) -> list[dict[str, Any]]:
    """Scores of every pending row from the model outputs of its windows."""
    effects: dict[tuple[int, str, str], Any] = {}
    rows = []
    for item in planned:
        if isinstance(item, dict):
            rows.append(item)
            continue
        ref, alt, rows_at = aligned_tracks(item, outputs, settings)
        deltas = splice_deltas(ref, alt, item.boundary, settings.mask, rows_at)
        row = dict(item.row)
        for key, value, offset in zip(DELTA_KEYS, deltas.ds, deltas.dp, strict=True):
            row[f"ds_{key}"] = value
            row[f"dp_{key}"] = offset
        if settings.convention == "sptransformer":
            if item.strand_key not in effects:
                effects[item.strand_key] = tissue_effect(ref, alt, rows_at)
            effect = effects[item.strand_key]
            row["splice_score"] = effect.splice_score
            flags = tissue_flags(effect.deltas)
            for i, tissue in enumerate(TISSUES):
                row[f"delta_{tissue}"] = effect.deltas[i]
                row[f"flag_{tissue}"] = bool(flags[i])
                row[f"dp_{tissue}"] = int(effect.offsets[i])
        rows.append(row)
    return rows


def score_records(
    records: pd.DataFrame,
    annotation: Annotation,
    settings: Settings,
    model: Any,
    batch_size: int = 8,
    device: Any = "cpu",
) -> pa.Table:
    """The result rows of ``records`` (one per record x ALT x gene) as an Arrow table."""
    windows = WindowSet()
    planned = plan_records(records, annotation, settings, windows)
    outputs = windows.score(model, batch_size, device) if windows.windows else []
    rows = finish_rows(planned, outputs, settings)
    schema = result_schema(settings.convention)
    columns = {name: [row.get(name) for row in rows] for name in schema.names}
    return pa.Table.from_pydict(columns, schema=schema)


# ------------------------------------------------------------------------ the shard task


@dataclass(frozen=True)
class VariantJob:
    """What every shard task needs; small and picklable (model and FASTA open on the worker)."""

    work: str
    fasta: str
    genes: str
    exons: str | None
    settings: Settings
    model: ModelSpec
    model_key: str
    device: str
    precision: str
    batch_size: int
    run_id: str
    max_threads: int | None = None  # torch threads per worker at most (CPU)


def part_path(work: str | os.PathLike, shard: int) -> Path:
    return Path(work) / "parts" / f"part-{shard:08d}.parquet"


_ANNOTATIONS: dict[str, Annotation] = {}
_ANNOTATIONS_LOCK = threading.Lock()


def _annotation(job: VariantJob) -> Annotation:
    with _ANNOTATIONS_LOCK:
        if job.run_id not in _ANNOTATIONS:
            _ANNOTATIONS.clear()
            _ANNOTATIONS[job.run_id] = Annotation.load(job.fasta, job.genes, job.exons)
        return _ANNOTATIONS[job.run_id]


def _part_is_done(job: VariantJob, shard: Shard) -> bool | None:
    """True when the shard's part matches its marker; None without a marker; False if stale."""
    marker = store.read_marker(job.work, shard.index)
    if marker is None:
        return None
    part = part_path(job.work, shard.index)
    ok = (
        bool(marker)
        and (marker.get("start"), marker.get("stop")) == (shard.start, shard.stop)
        and part.is_file()
        and sha256_file(part) == marker.get("sha256")
    )
    if not ok:
        log.warning("%s: part missing or not matching its marker; recomputing", shard.describe())
        store.clear_done(job.work, shard.index)
    return ok


def process_variant_shard(job: VariantJob, shard: Shard) -> ShardResult:
    """Verify or compute one shard of records; returns a small record, never the rows."""
    done = _part_is_done(job, shard)
    if done:
        return ShardResult(shard.index, shard.size, "skipped")
    records = pd.read_parquet(
        Path(job.work) / "records.parquet",
        filters=[("record", ">=", shard.start), ("record", "<", shard.stop)],
    )
    device = resolve_device(job.device)
    model = worker_model(job.model, job.model_key, device, job.precision, job.max_threads)
    table = score_records(records, _annotation(job), job.settings, model, job.batch_size, device)
    part = part_path(job.work, shard.index)
    with atomic_path(part) as tmp:
        pq.write_table(table, tmp)
    store.mark_done(
        job.work,
        shard.index,
        {"start": shard.start, "stop": shard.stop, "sha256": sha256_file(part)},
    )
    return ShardResult(shard.index, shard.size, "computed" if done is None else "recomputed")


# ------------------------------------------------------------------------------ the driver


def resolve_convention(convention: VariantConvention, channels: Sequence[str]) -> str:
    """``auto``: ``sptransformer`` for a model with the 15 tissue channels, else ``spliceai``."""
    check_choice("variant_convention", convention, VARIANT_CONVENTIONS)
    if tuple(channels[:3]) != SPLICE_CHANNELS:
        raise InputError(
            "variant scoring needs a model whose first channels are no_splice, acceptor, donor "
            f"(SpliceAI, SpTransformer); this model has {list(channels)} (Pangolin's variant "
            "convention is not implemented yet)"
        )
    has_tissues = tuple(channels[3:]) == TISSUES
    if convention == "auto":
        return "sptransformer" if has_tissues else "spliceai"
    if convention == "sptransformer" and not has_tissues:
        raise InputError(
            "variant_convention sptransformer needs a model with the 15 SpTransformer tissue "
            f"channels; this model has {list(channels)}"
        )
    return convention


def _prepare_work(work: Path, fingerprint: dict[str, Any]) -> bool:
    """Keep a compatible work directory (True: resuming), else start it afresh."""
    marker = work / "fingerprint.json"
    try:
        existing = json.loads(marker.read_text()) if marker.is_file() else None
    except ValueError:
        existing = None
    if store.resumable(work, fingerprint, existing):
        return True
    remove_path(work)
    (work / "parts").mkdir(parents=True)
    (work / store.DONE_DIR).mkdir()
    return False


@holds_store_lock("out_parquet", purpose="variants")  # one run per output and work dir
def score_variants(
    vcf: str | os.PathLike,
    fasta: str | os.PathLike,
    genes: str | os.PathLike | None,
    model: ModelSpec,
    out_parquet: str | os.PathLike,
    out_vcf: str | os.PathLike,
    exons: str | os.PathLike | None = None,
    convention: VariantConvention = DEFAULT_VARIANT_CONVENTION,
    distance: int | None = None,
    mask: bool = False,
    shard_size: int = DEFAULT_VARIANT_SHARD_SIZE,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: Device = DEFAULT_DEVICE,
    precision: Precision = DEFAULT_PRECISION,
    cluster: dict[str, Any] | None = None,
    max_retries: int = DEFAULT_MAX_RETRIES,
    progress: bool = True,
    work_dir: str | os.PathLike | None = None,
    threads: int | None = None,
    gtf: str | os.PathLike | None = None,
    gene_types: Sequence[str] = DEFAULT_GENE_TYPES,
) -> RunSummary:
    """Score every record x ALT x overlapping gene of ``vcf``; write Parquet and VCF.gz.

    ``genes``/``exons``: the genes stage's ``genes.parquet`` and ``exons.parquet`` (exons are
    needed for ``mask``). ``distance``: ``D`` (default 50 for ``spliceai``, 100 for
    ``sptransformer``). Sharded over Dask like ``predict``, resumable through the work
    directory (default: ``<out_parquet>.work``). Returns the run summary in records.
    ``threads``: the cores granted to this job, which a local cluster's workers share for
    their torch threads, as in ``predict``. ``gtf`` instead of ``genes``/``exons``: the genes
    stage's selection (``gene_types``, contig names reconciled with the FASTA) is made from it
    into the work directory.
    """
    began = time.perf_counter()
    if shard_size < 1 or batch_size < 1 or max_retries < 0:
        raise InputError("shard_size and batch_size must be >= 1, max_retries >= 0")
    if (genes is None) == (gtf is None):
        raise InputError(
            "give the annotation once: genes (genes.parquet of the genes stage, with exons) or gtf"
        )
    if mask and exons is None and gtf is None:
        raise InputError("variant_mask needs the canonical exons (exons.parquet from genes)")
    annotation_file = (genes, "genes.parquet") if genes is not None else (gtf, "GTF")
    for path, what in ((vcf, "VCF"), (fasta, "FASTA"), annotation_file):
        if not Path(str(path)).is_file():
            raise MissingInputError(f"{what} file not found: {path}")
    remove_stale(out_parquet, out_vcf, f"{out_vcf}.tbi")
    identity = identify(model, precision)
    chosen = resolve_convention(convention, identity["channels"])
    distance = DEFAULT_DISTANCE[chosen] if distance is None else int(distance)
    if not 0 <= distance < 5000:
        raise InputError(f"variant_distance must be in 0..4999, got {distance}")
    if chosen == "spliceai" and exons is None and gtf is None:
        raise InputError(
            "the spliceai convention needs each gene's canonical transcript (its span and exons): "
            "pass --exons with the exons.parquet of `sptx genes --out-exons`, or --gtf"
        )
    settings = Settings(chosen, distance, bool(mask), identity["flank"])
    if chosen == "sptransformer":
        selection = read_provenance(genes) if genes is not None else {"gene_types": gene_types}
        warn_gene_selection(selection)

    out_parquet, out_vcf = Path(out_parquet), Path(out_vcf)
    work = Path(work_dir) if work_dir else out_parquet.with_name(out_parquet.name + ".work")
    inputs = {
        "vcf": str(Path(vcf).resolve()),
        "vcf_sha256": sha256_file(vcf),
        "fasta": str(Path(fasta).resolve()),
        "fasta_sha256": sha256_file(fasta),
        **annotation_inputs(genes, exons, gtf, gene_types),
    }
    model_record = {
        "source": model if isinstance(model, str) else repr(model),
        **{key: identity[key] for key in ("class", "flank", "channels", "weights_sha256")},
    }
    settings_record = {
        "convention": chosen,
        "distance": distance,
        "mask": bool(mask),
        "precision": precision,
    }
    fingerprint = {
        "inputs": {k: v for k, v in inputs.items() if k.endswith("sha256") or k == "gene_types"},
        "model": {k: v for k, v in model_record.items() if k != "source"},
        "settings": settings_record,
        "shard_size": shard_size,
        "layout": 2,  # records.parquet + contigs.json, streamed
    }
    resuming = _prepare_work(work, fingerprint)
    if gtf is not None:
        genes, exons = annotation_from_gtf(gtf, fasta, gene_types, work / "annotation")
    assert genes is not None
    records_path, contigs_path = work / "records.parquet", work / "contigs.json"
    source = readable_copy(vcf, work)  # a plain-gzip VCF: through a bgzip copy
    if not resuming or not records_path.is_file() or not contigs_path.is_file():
        lengths = contig_lengths(open_fasta(fasta))
        contigs = write_records(source, records_path, lengths)
        write_text(contigs_path, json.dumps(contigs))
        write_text(work / "fingerprint.json", json.dumps(fingerprint, sort_keys=True))
    contigs = json.loads(contigs_path.read_text())
    check_contigs(contigs, vcf, fasta)
    n_records = pq.read_metadata(records_path).num_rows
    log.info("%s: %d records, convention %s, D=%d", vcf, n_records, chosen, distance)

    shards = shard_grid(n_records, shard_size)
    job = VariantJob(
        work=str(work),
        fasta=str(Path(fasta).resolve()),
        genes=str(Path(genes).resolve()),
        exons=str(Path(exons).resolve()) if exons else None,
        settings=settings,
        model=model,
        model_key=model_key(identity, model),
        device=device,
        precision=precision,
        batch_size=batch_size,
        run_id=uuid.uuid4().hex[:12],
    )
    summary = run_stage(
        lambda client: functools.partial(
            process_variant_shard,
            dataclasses.replace(
                job, max_threads=local_thread_cap(cluster or {}, len(client.nthreads()), threads)
            ),
        ),
        resume_order(shards, store.done_shards(work)),
        cluster=cluster,
        device=device,
        run_id=job.run_id,
        began=began,
        desc="variants",
        unit="rec",  # VCF records (each with all its ALTs and genes), not variants
        noun="records",
        max_retries=max_retries,
        log_directory=out_parquet.parent / "logs" / "slurm",  # SLURM worker job logs
        progress=progress,
    )
    provenance = {
        "inputs": inputs,
        "model": model_record,
        "settings": settings_record,
        "software": package_provenance(),
    }
    write_outputs(work, shards, source, out_parquet, out_vcf, provenance, chosen, contigs)
    warn_genes_without_exons(out_parquet, exons)
    log.info(
        "variants: %d records in %d shards (%d skipped); %.1f records/s",
        n_records,
        summary.shards,
        summary.skipped,
        summary.items_per_s,
    )
    return summary


def annotation_inputs(
    genes: str | os.PathLike | None,
    exons: str | os.PathLike | None,
    gtf: str | os.PathLike | None,
    gene_types: Sequence[str],
) -> dict[str, Any]:
    """The provenance (and, by its ``*sha256`` keys, the fingerprint) of the annotation given."""
    if gtf is not None:
        return {
            "gtf": str(Path(gtf).resolve()),
            "gtf_sha256": sha256_file(gtf),
            "gene_types": list(gene_types),
        }
    assert genes is not None
    return {
        "genes_sha256": sha256_file(genes),
        "exons_sha256": sha256_file(exons) if exons else None,
        "annotation": read_provenance(genes),
    }


def annotation_from_gtf(
    gtf: str | os.PathLike, fasta: str | os.PathLike, gene_types: Sequence[str], directory: Path
) -> tuple[Path, Path]:
    """``genes.parquet`` and ``exons.parquet`` made from ``gtf`` as the genes stage makes them
    (``annotation.select_genes``: gene types, FASTA contig names), kept for a resumed run."""
    from .annotation import select_genes

    genes, exons = directory / "genes.parquet", directory / "exons.parquet"
    if not (genes.is_file() and exons.is_file()):
        directory.mkdir(parents=True, exist_ok=True)
        select_genes(
            gtf, fasta, genes, directory / "regions.parquet", gene_types=gene_types, out_exons=exons
        )
    return genes, exons


def write_records(
    vcf: str | os.PathLike, out: Path, lengths: dict[str, int]
) -> dict[str, dict[str, Any]]:
    """Stream the VCF's records into ``out`` (Parquet, row groups of ``RECORD_GROUP`` rows) and
    return, per VCF contig in order of appearance, its FASTA contig (``1`` is ``chr1`` there,
    as in the genes stage: ``genome.reconcile_contigs``), length, records, and records past
    its end. Memory: one chunk of records at a time."""
    schema = pa.schema(
        [
            pa.field(name, pa.int64() if name in ("record", "line", "pos") else pa.string())
            for name in RECORD_COLUMNS
        ]
    )
    contigs: dict[str, dict[str, Any]] = {}
    with atomic_path(out) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for chunk in iter_records(vcf, chunk_size=RECORD_CHUNK):
            writer.write_table(
                pa.Table.from_pandas(chunk, schema=schema, preserve_index=False),
                row_group_size=RECORD_GROUP,
            )
            counts = chunk.groupby("chrom", sort=False)["pos"].agg(["size", "max"])
            new = [str(c) for c in counts.index if str(c) not in contigs]
            for name, match in reconcile_contigs(new, lengths).items():
                length = None if match is None else lengths[match]
                contigs[name] = {"fasta": match, "length": length, "records": 0, "past_end": 0}
            for name, size in counts["size"].items():
                contigs[str(name)]["records"] += int(size)
            for name, group in chunk.groupby("chrom", sort=False)["pos"]:
                length = contigs[str(name)]["length"]
                if length is not None and int(counts.loc[name, "max"]) > length:
                    contigs[str(name)]["past_end"] += int((group.to_numpy() > length).sum())
    return contigs


def check_contigs(
    contigs: dict[str, dict[str, Any]], vcf: str | os.PathLike, fasta: str | os.PathLike
) -> None:
    """Warn with counts when records lie on contigs the FASTA lacks or past a contig's end
    (they can only be ``no_gene``); an error when no record lies on the FASTA at all."""
    total = sum(c["records"] for c in contigs.values())
    missing = {n: c["records"] for n, c in contigs.items() if c["fasta"] is None}
    past = {n: c["past_end"] for n, c in contigs.items() if c["past_end"]}
    off = sum(missing.values()) + sum(past.values())
    if not off:
        return

    def listed(counts: dict[str, int]) -> str:
        shown = ", ".join(f"{name}: {n}" for name, n in list(counts.items())[:5])
        return shown + (f", ... ({len(counts)} contigs)" if len(counts) > 5 else "")

    reasons = []
    if missing:
        reasons.append(f"{sum(missing.values())} on contigs the FASTA lacks ({listed(missing)})")
    if past:
        reasons.append(f"{sum(past.values())} past the end of their contig ({listed(past)})")
    if total and off == total:
        names = ", ".join(list(open_fasta(fasta).keys())[:5])
        raise InputError(
            f"no record of {vcf} lies on a contig of {fasta}: {'; '.join(reasons)}. "
            f"The FASTA's contigs are {names}...: is the VCF for another reference or naming "
            "(RefSeq NC_ names are not translated)?"
        )
    log.warning(
        "%s: %d of %d records are not on the FASTA and come out as no_gene: %s",
        vcf,
        off,
        total,
        "; ".join(reasons),
    )


def write_outputs(
    work: Path,
    shards: Sequence[Shard],
    vcf: str | os.PathLike,
    out_parquet: Path,
    out_vcf: Path,
    provenance: dict[str, Any],
    convention: str,
    contigs: dict[str, dict[str, Any]],
) -> None:
    """``variants.parquet`` and ``variants.vcf.gz``: both or neither. The Parquet file is written
    under a temporary name and renamed only once the VCF (written the same way) is in place."""
    with atomic_path(out_parquet) as tmp:
        symbolic = write_results(work, shards, tmp, provenance, convention)
        lengths = {name: c["length"] for name, c in contigs.items()}
        write_vcf(vcf, out_vcf, work, shards, convention, provenance, symbolic, lengths)


def warn_gene_selection(annotation: dict[str, Any]) -> None:
    """Warn when the genes stage kept only some gene types: the official SpliceTransformer tool
    scores the strand of every GENCODE gene at the locus (pyensembl ``genes_at_locus``)."""
    kept = annotation.get("gene_types") or []
    if kept:
        log.warning(
            "genes.parquet holds only gene_types %s; the official SpliceTransformer tool scores "
            "every gene at the locus (all types), so strands of other genes are not scored: "
            "for its selection run `sptx genes --gene-types=` (or config gene_types: [])",
            ", ".join(kept),
        )


def warn_genes_without_exons(results: str | os.PathLike, exons: str | os.PathLike | None) -> None:
    """Name the genes whose rows have status ``no_exons`` (no canonical exons in ``exons``),
    read from the written ``variants.parquet`` a row group at a time (only those rows)."""
    rows = pq.read_table(
        results, columns=["gene_id", "gene_name"], filters=[("status", "=", "no_exons")]
    )
    missing = rows.to_pandas().drop_duplicates("gene_id")
    if missing.empty:
        return
    names = [f"{n} ({g})" for g, n in zip(missing["gene_id"], missing["gene_name"], strict=True)]
    shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    log.warning(
        "%d genes have no canonical exons in %s, so their rows are not scored (status "
        "no_exons; the spliceai convention and the mask need the transcript): %s",
        len(names),
        exons,
        shown,
    )


def write_results(
    work: Path,
    shards: Sequence[Shard],
    out: Path,
    provenance: dict[str, Any],
    convention: str,
) -> bool:
    """Append the shard parts, in record order, to ``out``, one part in memory at a time.
    Returns whether any ALT is symbolic (the VCF then needs an ``END`` definition)."""
    missing = [s.index for s in shards if s.index not in store.done_shards(work)]
    if missing:
        raise IncompleteVariantsError(
            f"{work}: {len(missing)} variant shards are not done (e.g. {missing[:5]}); "
            "run `sptx variants` again with the same arguments to finish them"
        )
    schema = result_schema(convention)
    schema = schema.with_metadata(provenance_metadata(provenance))
    symbolic = False
    with pq.ParquetWriter(out, schema, compression="zstd") as writer:
        for shard in shards:
            part = pq.read_table(part_path(work, shard.index), schema=result_schema(convention))
            symbolic = symbolic or any("<" in alt for alt in part.column("alt").to_pylist() if alt)
            writer.write_table(part.replace_schema_metadata(schema.metadata))
    return symbolic


class PartEntries:
    """INFO entries of record ``n`` for the VCF writer, read from the shard parts in record
    order, one part in memory at a time (records are asked for in increasing order)."""

    def __init__(
        self, work: Path, shards: Sequence[Shard], builders: dict[str, Any], convention: str
    ) -> None:
        self.work, self.shards, self.builders = work, list(shards), builders
        self.schema = result_schema(convention)
        self.index = 0
        self.current: Shard | None = None
        self.entries: dict[str, dict[int, list[str]]] = {}

    def _load(self, record: int) -> None:
        while self.shards[self.index].stop <= record:
            self.index += 1
        self.current = self.shards[self.index]
        table = pq.read_table(part_path(self.work, self.current.index), schema=self.schema)
        self.entries = {key: defaultdict(list) for key in self.builders}
        for row in table.to_pylist():
            for key, build in self.builders.items():
                entry = build(row)
                if entry is not None:
                    self.entries[key][row["record"]].append(entry)

    def of(self, key: str, record: int) -> list[str]:
        """The ``key`` entries of record number ``record``."""
        if self.current is None or not self.current.start <= record < self.current.stop:
            self._load(record)
        return self.entries[key].get(record, [])


def _spliceai_entry(row: dict[str, Any]) -> str | None:
    """The official tool's INFO entry of a row (None: the tool writes none)."""
    if row["status"] == "mnv":
        return f"{row['alt']}|{row['gene_name']}|" + "|".join(["."] * 8)
    if row["status"] != "ok":
        return None
    values = [f"{row[f'ds_{k}']:.2f}" for k in DELTA_KEYS]
    offsets = [str(row[f"dp_{k}"]) for k in DELTA_KEYS]
    return "|".join([row["alt"], row["gene_name"], *values, *offsets])


def _sptransformer_entry(row: dict[str, Any]) -> str | None:
    if row["status"] != "ok":
        return None
    deltas = [row[f"delta_{t}"] for t in TISSUES]
    top = int(np.argmax(deltas))
    flagged = "&".join(t for t in TISSUES if row[f"flag_{t}"]) or "."
    return "|".join(
        [
            row["alt"],
            row["gene_name"],
            row["strand"],
            f"{row['splice_score']:.4f}",
            f"{deltas[top]:.4f}",
            TISSUES[top],
            flagged,
        ]
    )


def write_vcf(
    vcf: str | os.PathLike,
    out: Path,
    work: Path,
    shards: Sequence[Shard],
    convention: str,
    provenance: dict[str, Any],
    symbolic: bool = False,
    contigs: dict[str, int | None] | None = None,
) -> None:
    """Every input record in order with the INFO entries of its scored rows (from the parts,
    streamed) and a ``##contig`` line for each contig the input header lacks."""
    builders: dict[str, Any] = {"SpliceAI": _spliceai_entry}
    if convention == "sptransformer":
        builders["SpTransformer"] = _sptransformer_entry
    parts = PartEntries(work, shards, builders, convention)
    info = {key: functools.partial(parts.of, key) for key in builders}
    header = [*info_header_lines(list(builders)), provenance_line(provenance)]
    write_annotated(vcf, out, info, header, symbolic=symbolic, contigs=contigs)


# -------------------------------------------------------------- saturation and queries


def saturation_positions(exons: pd.DataFrame, genes: pd.DataFrame, n: int) -> pd.DataFrame:
    """``chrom, pos`` (1-based) within ``n`` nt of an internal exon boundary of each gene's
    canonical transcript (the transcript's outer ends are not splice sites), sorted, unique."""
    chrom_of = dict(zip(genes["gene_id"].astype(str), genes["chrom"].astype(str), strict=True))
    spans = []
    for gene, group in exons.groupby("gene_id", sort=False):
        if str(gene) not in chrom_of:
            continue
        starts, ends = np.sort(group["start"].to_numpy()), np.sort(group["end"].to_numpy())
        for site in np.concatenate([starts[1:], ends[:-1]]):
            spans.append((chrom_of[str(gene)], np.arange(site - n, site + n + 1)))
    if not spans:
        return pd.DataFrame({"chrom": [], "pos": []})
    frame = pd.DataFrame(
        {
            "chrom": np.concatenate([np.full(len(p), c, dtype=object) for c, p in spans]),
            "pos": np.concatenate([p for _, p in spans]),
        }
    )
    return frame[frame["pos"] >= 1].drop_duplicates().reset_index(drop=True)


def saturation_vcf(
    fasta: str | os.PathLike,
    genes: str | os.PathLike,
    exons: str | os.PathLike,
    n: int,
    out: str | os.PathLike,
) -> int:
    """Write every SNV within ``n`` nt of the selected genes' exon boundaries as a bgzip VCF
    (one record per position, its three ALTs together so they share the REF window)."""
    import pysam

    if n < 0:
        raise InputError(f"saturate must be 0 or more, got {n}")
    handle = open_fasta(fasta)
    lengths = contig_lengths(handle)
    positions = saturation_positions(pd.read_parquet(exons), pd.read_parquet(genes), n)
    rank = {name: i for i, name in enumerate(lengths)}
    positions = positions.assign(_rank=positions["chrom"].map(rank))
    positions = positions.sort_values(["_rank", "pos"]).drop(columns="_rank")
    header = pysam.VariantHeader()
    for name, length in lengths.items():
        header.contigs.add(name, length=length)
    header.add_line(f"##source=sptx saturation within {n} nt of canonical exon boundaries")
    written = 0
    remove_stale(out)
    with atomic_path(out) as tmp:
        with pysam.VariantFile(str(tmp), "wz", header=header) as vcf:
            for chrom, group in positions.groupby("chrom", sort=False):
                for pos in group["pos"]:
                    if pos > lengths[chrom]:
                        continue
                    ref = str(handle[chrom][pos - 1 : pos]).upper()
                    if ref not in ("A", "C", "G", "T"):
                        continue
                    alts = tuple(base for base in "ACGT" if base != ref)
                    vcf.write(vcf.new_record(contig=chrom, start=pos - 1, alleles=(ref, *alts)))
                    written += 1
    log.info("saturation: %d positions (%d SNVs) written to %s", written, 3 * written, out)
    return written


def query_variant(results: str | os.PathLike, text: str) -> pd.DataFrame:
    """Rows of ``variants.parquet`` for ``chrom:pos[:REF>ALT]`` (either contig naming) or a gene
    name or id (with or without version)."""
    from .genome import contig_aliases

    path = Path(results)
    path = path / "variants.parquet" if path.is_dir() else path
    if not path.is_file():
        raise MissingInputError(f"{path} not found: run the variants stage first")
    text = text.strip().replace(",", "")
    parts = text.split(":")
    if len(parts) in (2, 3) and parts[1].isdigit():
        chrom, pos = parts[0], int(parts[1])
        names = [chrom, *contig_aliases(chrom)]
        frame = pd.read_parquet(path, filters=[("pos", "=", pos), ("chrom", "in", names)])
        if len(parts) == 3:
            ref, sep, alt = parts[2].partition(">")
            if not sep:
                raise InputError(f"{text!r}: the allele part must be REF>ALT, e.g. G>A")
            keep = (frame["ref"].str.upper() == ref.upper()) & (
                frame["alt"].str.upper() == alt.upper()
            )
            frame = frame[keep]
        return _integers(frame, path).reset_index(drop=True)
    if len(parts) > 1:
        raise InputError(f"{text!r} is not chrom:pos[:REF>ALT] nor a gene name or id")
    frame = pd.read_parquet(path)
    unversioned = strip_version(frame["gene_id"])
    hit = frame[(frame["gene_id"] == text) | (unversioned == text) | (frame["gene_name"] == text)]
    if hit.empty:
        raise InputError(f"no variants of a gene {text!r} in {path}")
    return _integers(hit, path).reset_index(drop=True)


def _integers(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Integer columns (``dp_*``) that pandas read as floats because of nulls, back as nullable
    integers: ``-45``, not ``-45.0000``, in a printed table."""
    schema = pq.read_schema(path)
    columns = [
        name
        for name in frame.columns
        if name in schema.names
        and pa.types.is_integer(schema.field(name).type)
        and frame[name].dtype.kind == "f"
    ]
    return frame.astype({name: "Int64" for name in columns}) if columns else frame
