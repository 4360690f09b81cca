"""``sptx variants`` input handling, statuses, contig names, formats, resume and kills.

A synthetic genome (``chr1`` with a ``+`` and a ``-`` gene, ``chr2`` without genes) and the
stand-in model (flank 50, SpliceAI convention, D = 50: windows of 201 nt) keep these fast.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pysam
import pytest
import torch

from sptx_pipeline.annotation import select_genes
from sptx_pipeline.testing import THREADED, StandInFactory, StandInModel
from sptx_pipeline.variants import query_variant, saturation_vcf, score_variants
from sptx_pipeline.vcf import END_INFO, VCFFormatError
from tests.genome_fixtures import REPO, write_fasta

HEADER = "##fileformat=VCFv4.2\n##contig=<ID=1>\n##contig=<ID=2>\n"
COLUMNS = "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"


@pytest.fixture(scope="module")
def genome(tmp_path_factory):
    base = tmp_path_factory.mktemp("genome")
    rng = np.random.default_rng(3)
    chr1 = "".join(rng.choice(list("ACGT"), 4000))
    fasta = write_fasta(
        base / "g.fa", {"chr1": chr1, "chr2": "".join(rng.choice(list("ACGT"), 1000))}
    )
    gtf = base / "g.gtf"
    lines = []
    for gene, strand, start, end, exons in (
        ("G1", "+", 200, 3000, [(200, 900), (1200, 1500), (2000, 3000)]),
        ("G2", "-", 1500, 3990, [(1500, 1800), (2500, 3990)]),
    ):
        attrs = f'gene_id "{gene}"; gene_name "{gene}"; gene_type "protein_coding";'
        lines.append(f"chr1\tT\tgene\t{start}\t{end}\t.\t{strand}\t.\t{attrs}\n")
        tx = attrs + f' transcript_id "{gene}.1";'
        lines.append(f"chr1\tT\ttranscript\t{start}\t{end}\t.\t{strand}\t.\t{tx}\n")
        lines += [f"chr1\tT\texon\t{s}\t{e}\t.\t{strand}\t.\t{tx}\n" for s, e in exons]
    gtf.write_text("".join(lines))
    genes, exons = base / "genes.parquet", base / "exons.parquet"
    select_genes(gtf, fasta, genes, base / "regions.parquet", gene_types=[], out_exons=exons)
    return {"fasta": fasta, "genes": genes, "exons": exons, "chr1": chr1}


def base_at(genome, pos: int, n: int = 1) -> str:
    return genome["chr1"][pos - 1 : pos - 1 + n]


def edge_vcf(genome, path: Path) -> Path:
    """Every status once, in position order (VCF contig ``1`` for the FASTA's ``chr1``)."""
    b = base_at
    other = {"A": "C", "C": "G", "G": "T", "T": "A"}
    rows = [
        ("1", 100, "n1", b(genome, 100), "G" if b(genome, 100) != "G" else "T"),  # no gene
        ("1", 1000, "ok", b(genome, 1000), other[b(genome, 1000)]),
        ("1", 1000, "lower", b(genome, 1000).lower(), other[b(genome, 1000)].lower()),
        ("1", 1000, "lowalt", b(genome, 1000), other[b(genome, 1000)].lower()),
        ("1", 1100, "mismatch", other[b(genome, 1100)], "A"),
        ("1", 1200, "iupac", "R", "A"),
        ("1", 1300, "symbolic", b(genome, 1300), "<DEL>"),
        ("1", 1400, "star", b(genome, 1400), f"{other[b(genome, 1400)]},*"),
        ("1", 1600, "long", b(genome, 1600, 101), b(genome, 1600)),
        ("1", 1700, "mnv", b(genome, 1700, 2), "".join(other[x] for x in b(genome, 1700, 2))),
        ("1", 1750, "del", b(genome, 1750, 3), b(genome, 1750)),
        ("1", 1800, "ins", b(genome, 1800), b(genome, 1800) + "GT"),
        ("1", 1900, "noalt", b(genome, 1900), "."),
        ("1", 3950, "end", b(genome, 3950), other[b(genome, 3950)]),
        ("2", 500, "nogene", "A", "C"),
    ]
    body = "".join(f"{c}\t{p}\t{i}\t{r}\t{a}\t.\t.\t.\n" for c, p, i, r, a in rows)
    path.write_text(HEADER + COLUMNS + body)
    return path


def run(genome, vcf, out: Path, model=None, **kwargs):
    kwargs = {"device": "cpu", "cluster": THREADED, "progress": False, "shard_size": 3, **kwargs}
    return score_variants(
        vcf,
        genome["fasta"],
        genome["genes"],
        model or StandInFactory(),
        out / "variants.parquet",
        out / "variants.vcf.gz",
        exons=genome["exons"],
        **kwargs,
    )


@pytest.fixture(scope="module")
def edge(genome, tmp_path_factory):
    out = tmp_path_factory.mktemp("edge")
    vcf = edge_vcf(genome, out / "in.vcf")
    run(genome, vcf, out)
    return out, vcf, pd.read_parquet(out / "variants.parquet")


def test_every_status(edge):
    _, _, frame = edge
    status = frame.groupby("id")["status"].agg(lambda s: sorted(set(s)))
    assert status.to_dict() == {
        "n1": ["no_gene"],
        "ok": ["ok"],
        "lower": ["ref_mismatch"],  # the official tool compares REF as written
        "lowalt": ["ok"],
        "mismatch": ["ref_mismatch"],
        "iupac": ["ref_mismatch"],
        "symbolic": ["symbolic_alt"],
        "star": ["ok", "skipped_alt"],
        "long": ["ref_too_long"],
        "mnv": ["mnv"],
        "del": ["ok"],
        "ins": ["ok"],
        "noalt": ["no_alt"],
        "end": ["near_contig_end"],
        "nogene": ["no_gene"],
    }
    # genes and strands: 1000 lies in G1 only, 1700 in both
    assert list(frame.loc[frame["id"] == "ok", "gene_name"]) == ["G1"]
    assert list(frame.loc[frame["id"] == "mnv", "strand"]) == ["+", "-"]
    assert frame.loc[frame["status"] != "ok", "ds_ag"].isna().all()


def test_lower_case_alt_scores_like_upper_case(edge):
    """A lower-case REF: test_variants_sptransformer (accepted there, not in this convention)."""
    _, _, frame = edge
    score_columns = [c for c in frame.columns if c.startswith(("ds_", "dp_"))]
    upper = frame[frame["id"] == "ok"][score_columns].reset_index(drop=True)
    lower = frame[frame["id"] == "lowalt"][score_columns].reset_index(drop=True)
    pd.testing.assert_frame_equal(upper, lower)


def test_output_vcf_keeps_every_record_in_order(edge):
    out, vcf, frame = edge
    with (
        pysam.VariantFile(str(vcf)) as source,
        pysam.VariantFile(str(out / "variants.vcf.gz")) as result,
    ):
        ins, outs = list(source), list(result)
    assert [(r.chrom, r.pos, r.id) for r in ins] == [(r.chrom, r.pos, r.id) for r in outs]
    entries = {r.id: r.info.get("SpliceAI") for r in outs}
    assert entries["mismatch"] is None and entries["end"] is None and entries["nogene"] is None
    assert entries["mnv"] == tuple(
        f"{'|'.join([a, g])}|.|.|.|.|.|.|.|."
        for a, g in [
            (frame.loc[frame["id"] == "mnv", "alt"].iloc[0], "G1"),
            (frame.loc[frame["id"] == "mnv", "alt"].iloc[0], "G2"),
        ]
    )
    assert len(entries["star"]) == 1  # the * ALT gets no entry
    assert Path(str(out / "variants.vcf.gz") + ".tbi").is_file()


def test_contig_names_and_formats_give_the_same_rows(genome, edge, tmp_path):
    """``chr1`` in the VCF instead of ``1``; bgzip VCF and BCF inputs: the same table."""
    _, vcf, frame = edge
    text = vcf.read_text().replace("ID=1>", "ID=chr1>").replace("\n1\t", "\nchr1\t")
    renamed = tmp_path / "chr.vcf"
    renamed.write_text(text)
    columns = [c for c in frame.columns if c != "chrom"]
    for kind in ("chr", "vcf.gz", "bcf"):
        source = renamed
        if kind != "chr":
            source = tmp_path / f"in.{kind}"
            src = pysam.VariantFile(str(vcf))
            src.header.add_line(END_INFO)  # htslib's implicit END of <DEL> needs a definition
            mode = "wz" if kind == "vcf.gz" else "wb"
            with src, pysam.VariantFile(str(source), mode, header=src.header) as dst:
                for rec in src:
                    dst.write(rec)
        out = tmp_path / kind
        run(genome, source, out)
        got = pd.read_parquet(out / "variants.parquet")
        pd.testing.assert_frame_equal(got[columns], frame[columns])


def test_malformed_record_names_file_and_line(genome, tmp_path):
    vcf = tmp_path / "bad.vcf"
    vcf.write_text(HEADER + COLUMNS + "1\t1000\t.\tA\tG\t.\t.\t.\n1\tabc\t.\tA\tG\t.\t.\t.\n")
    with pytest.raises(VCFFormatError, match=r"bad\.vcf, line 6"):
        run(genome, vcf, tmp_path / "out")
    assert not (tmp_path / "out" / "variants.parquet").exists()


def test_resume_skips_verified_shards_and_redoes_damaged_ones(genome, edge, tmp_path):
    out_first, vcf, _ = edge
    out = tmp_path / "again"
    first = run(genome, vcf, out)
    work = out / "variants.parquet.work"
    reference = {name: (out_first / name).read_bytes() for name in ("variants.parquet",)}
    (work / "parts" / "part-00000001.parquet").unlink()  # lost
    damaged = work / "parts" / "part-00000002.parquet"
    damaged.write_bytes(damaged.read_bytes()[:-10])  # truncated
    (work / "done" / "00000003.json").unlink()  # marker lost
    again = run(genome, vcf, out)
    assert first.computed == first.shards and again.skipped == first.shards - 3
    assert again.recomputed == 2 and again.computed == 3
    assert (out / "variants.parquet").read_bytes() == reference["variants.parquet"]


KILL_SCRIPT = """
import sys
from pathlib import Path
from sptx_pipeline.testing import THREADED, StandInFactory
from sptx_pipeline.variants import score_variants
vcf, fasta, genes, exons, out = sys.argv[1:6]
score_variants(vcf, fasta, genes, StandInFactory(sleep=0.4), Path(out) / "variants.parquet",
               Path(out) / "variants.vcf.gz", exons=exons, device="cpu", shard_size=2,
               cluster={"type": "local", "processes": False}, progress=False)
"""


def test_sigkill_then_resume_gives_identical_bytes(genome, edge, tmp_path):
    _, vcf, _ = edge
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    args = [str(vcf), str(genome["fasta"]), str(genome["genes"]), str(genome["exons"])]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, *args, str(killed)], cwd=REPO, env=env
    )
    done = killed / "variants.parquet.work" / "done"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(done.glob("*.json"))) < 2:
        time.sleep(0.1)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert 2 <= len(list(done.glob("*.json"))) < 7
    assert not (killed / "variants.parquet").exists() and not (killed / "variants.vcf.gz").exists()
    factory = StandInFactory(sleep=0.4)
    kwargs = {"shard_size": 2}
    resumed = run(genome, vcf, killed, model=factory, **kwargs)
    run(genome, vcf, clean, model=factory, **kwargs)
    assert resumed.skipped >= 2
    for name in ("variants.parquet", "variants.vcf.gz", "variants.vcf.gz.tbi"):
        assert (killed / name).read_bytes() == (clean / name).read_bytes(), name


def test_saturation_and_query(genome, tmp_path):
    vcf = tmp_path / "sat.vcf.gz"
    n = saturation_vcf(genome["fasta"], genome["genes"], genome["exons"], 2, vcf)
    # internal boundaries: G1 900, 1200, 1500, 2000; G2 1800, 2500 -> 6 x 5 positions
    assert n == 30
    with pysam.VariantFile(str(vcf)) as records:
        rows = [(r.pos, r.ref, r.alts) for r in records]
    assert [p for p, _, _ in rows][:5] == [898, 899, 900, 901, 902]
    assert all(
        ref == base_at(genome, p) and len(alts) == 3 and ref not in alts for p, ref, alts in rows
    )
    run(genome, vcf, tmp_path)
    frame = query_variant(
        tmp_path,
        f"1:1200:{base_at(genome, 1200)}>A" if base_at(genome, 1200) != "A" else "1:1200:A>C",
    )
    assert len(frame) == 1 and frame["status"].iloc[0] == "ok"
    assert frame["chrom"].iloc[0] == "chr1"
    assert set(query_variant(tmp_path, "G2")["gene_name"]) == {"G2"}
    assert len(query_variant(tmp_path, "chr1:1800")) == 3 * 2  # three ALTs x two genes
    with pytest.raises(ValueError, match="no variants of a gene"):
        query_variant(tmp_path, "NOPE")
    with pysam.VariantFile(str(tmp_path / "variants.vcf.gz")) as result:
        line = next(r for r in result.header.records if r.key == "sptx_provenance")
    assert json.loads(line.value)["settings"]["distance"] == 50


def test_unsorted_input_is_written_in_its_order_without_index(genome, tmp_path, caplog):
    b = base_at
    rows = [(1800, b(genome, 1800)), (1000, b(genome, 1000))]
    body = "".join(f"1\t{p}\t.\t{r}\t{'A' if r != 'A' else 'C'}\t.\t.\t.\n" for p, r in rows)
    vcf = tmp_path / "unsorted.vcf"
    vcf.write_text(HEADER + COLUMNS + body)
    run(genome, vcf, tmp_path)
    with pysam.VariantFile(str(tmp_path / "variants.vcf.gz")) as result:
        assert [r.pos for r in result] == [1800, 1000]
    assert not (tmp_path / "variants.vcf.gz.tbi").exists()
    assert "no tabix index" in caplog.text
    assert not list(tmp_path.glob(".*tmp*"))  # no temporaries left


class _ThreadRecorder(StandInModel):
    """Records torch's thread count at every forward pass."""

    seen: ClassVar[set[int]] = set()

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        self.seen.add(torch.get_num_threads())
        return super().logits(tokens)


@dataclass(frozen=True)
class _ThreadRecorderFactory:
    def __call__(self) -> _ThreadRecorder:
        return _ThreadRecorder()


def test_torch_threads_follow_the_cores_granted(genome, edge, tmp_path):
    """As in predict: a local worker's torch threads are capped by the job's ``threads``."""
    _, vcf, _ = edge
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # more than granted below
    try:
        run(genome, vcf, tmp_path, model=_ThreadRecorderFactory(), threads=1)
    finally:
        torch.set_num_threads(before)
    assert _ThreadRecorder.seen == {1}
