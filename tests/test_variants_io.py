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
from sptx_pipeline.errors import InputError, VCFFormatError
from sptx_pipeline.query import write_result
from sptx_pipeline.testing import THREADED, StandInFactory, StandInModel
from sptx_pipeline.variants import query_variant, saturation_vcf, score_variants
from sptx_pipeline.vcf import END_INFO, iter_records
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
    with pytest.raises(VCFFormatError, match=r"bad\.vcf, line 6") as caught:
        run(genome, vcf, tmp_path / "out")
    assert not (tmp_path / "out" / "variants.parquet").exists()
    # reported as malformed, with what is wrong; not htslib's "truncated file"
    assert "malformed record: POS 'abc' is not a number" in str(caught.value)
    assert "truncated" not in str(caught.value)


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


@pytest.mark.slow
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
    warning = next(r.getMessage() for r in caplog.records if "tabix index" in r.getMessage())
    assert "not sorted" in warning and str(tmp_path / "variants.vcf.gz") in warning
    assert ".tmp" not in warning  # names the output, not its temporary
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


# ------------------------------------------------ VCFs as users have them (issue 20, 1-4)


def _without_contig_lines(vcf: Path, out: Path) -> Path:
    out.write_text("".join(x for x in vcf.read_text().splitlines(True) if "##contig" not in x))
    return out


def test_vcf_without_contig_lines_gets_them_from_the_fasta(genome, edge, tmp_path, capfd):
    """Before: scored, then ``OSError: Can't write record`` with variants.parquet written."""
    out_first, vcf, frame = edge
    bare = _without_contig_lines(vcf, tmp_path / "bare.vcf")
    run(genome, bare, tmp_path, progress=True)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "variants.parquet"), frame)
    fasta = pysam.FastaFile(str(genome["fasta"]))
    with pysam.VariantFile(str(tmp_path / "variants.vcf.gz")) as result:
        contigs = {name: c.length for name, c in result.header.contigs.items()}
        records = [(r.chrom, r.pos, r.id, r.info.get("SpliceAI")) for r in result]
    # the VCF's 1 and 2 are the FASTA's chr1 and chr2: their lengths
    assert contigs == {"1": fasta.get_reference_length("chr1"), "2": 1000}
    with pysam.VariantFile(str(out_first / "variants.vcf.gz")) as first:
        assert records == [(r.chrom, r.pos, r.id, r.info.get("SpliceAI")) for r in first]
    assert (tmp_path / "variants.vcf.gz.tbi").is_file()
    err = capfd.readouterr().err
    assert "[W::vcf_parse]" not in err and "[E::" not in err
    # the progress bar counts records, not variants
    bar = [line for line in err.replace("\r", "\n").splitlines() if "variants" in line][-1]
    assert "rec/s" in bar or "rec]" in bar or "s/rec" in bar, bar
    assert f"{len(set(frame['record']))}/{len(set(frame['record']))}" in bar


def test_both_outputs_or_neither(genome, edge, tmp_path, monkeypatch):
    """A failure while writing the VCF leaves no variants.parquet either."""
    import sptx_pipeline.variants as variants

    _, vcf, _ = edge

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(variants, "write_annotated", fail)
    with pytest.raises(OSError, match="disk full"):
        run(genome, vcf, tmp_path)
    assert not (tmp_path / "variants.parquet").exists()
    assert not (tmp_path / "variants.vcf.gz").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries


def test_plain_gzip_vcf_is_read(genome, edge, tmp_path):
    """Before: ``NotImplementedError: seek not implemented in files compressed by method 1``."""
    import gzip

    out_first, vcf, frame = edge
    plain = tmp_path / "plain.vcf.gz"
    plain.write_bytes(gzip.compress(vcf.read_bytes()))
    run(genome, plain, tmp_path / "out")
    got = pd.read_parquet(tmp_path / "out" / "variants.parquet")
    pd.testing.assert_frame_equal(got, frame)
    with pysam.VariantFile(str(tmp_path / "out" / "variants.vcf.gz")) as result:
        assert [r.id for r in result] == [r.id for r in pysam.VariantFile(str(vcf))]


def test_records_off_the_fasta_warn_with_counts_or_fail(genome, tmp_path, caplog):
    """Before: every such record came back no_gene, exit 0, without a word."""
    ok = base_at(genome, 1000)
    rows = [
        ("1", 1000, ok),  # on chr1
        ("NC_000001.11", 1000, "A"),  # RefSeq naming: not in the FASTA
        ("NC_000001.11", 1001, "A"),
        ("3", 10, "A"),  # a chromosome the FASTA lacks
        ("2", 1500, "A"),  # chr2 has 1000 bases
    ]
    body = "".join(f"{c}\t{p}\t.\t{r}\t{'C' if r != 'C' else 'G'}\t.\t.\t.\n" for c, p, r in rows)
    vcf = tmp_path / "mixed.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n" + COLUMNS + body)
    run(genome, vcf, tmp_path / "mixed")
    warning = next(r.getMessage() for r in caplog.records if "not on the FASTA" in r.getMessage())
    assert "4 of 5 records" in warning
    assert "3 on contigs the FASTA lacks (NC_000001.11: 2, 3: 1)" in warning
    assert "1 past the end of their contig (2: 1)" in warning
    frame = pd.read_parquet(tmp_path / "mixed" / "variants.parquet")
    assert list(frame["status"]) == ["ok", "no_gene", "no_gene", "no_gene", "no_gene"]

    off = tmp_path / "off.vcf"
    off.write_text("##fileformat=VCFv4.2\n" + COLUMNS + body.split("\n", 1)[1])
    with pytest.raises(InputError, match=r"no record of .*off\.vcf lies on a contig of"):
        run(genome, off, tmp_path / "off")
    assert not (tmp_path / "off" / "variants.parquet").exists()


def test_unindexed_bgzip_input_prints_no_htslib_noise(edge, tmp_path, capfd):
    """Before: ``[E::idx_find_and_load] Could not retrieve index file`` for every input."""
    _, vcf, _ = edge
    packed = tmp_path / "in.vcf.gz"
    pysam.tabix_compress(str(vcf), str(packed))
    capfd.readouterr()
    chunks = list(iter_records(packed, chunk_size=4))
    assert [len(c) for c in chunks] == [4, 4, 4, 3]
    assert list(pd.concat(chunks)["record"]) == list(range(15))
    assert "idx_find_and_load" not in capfd.readouterr().err


def test_query_prints_offsets_as_integers(edge, capsys):
    """Before: ``dp_ag`` printed as ``-45.0000`` (pandas read the nullable ints as floats)."""
    out, _, frame = edge
    rows = query_variant(out, "G1")
    assert rows["dp_ag"].dtype == "Int64" and rows["ds_ag"].dtype == "float32"
    write_result(rows, "table")
    text = capsys.readouterr().out
    ok = frame[(frame["gene_name"] == "G1") & (frame["status"] == "ok")].iloc[0]
    header, *lines = text.splitlines()
    position = header.split().index("dp_ag")
    values = {line.split()[position] for line in lines}
    assert str(int(ok["dp_ag"])) in values and not any(".0000" in v for v in values)


def test_saturate_with_a_vcf_is_refused(genome, edge, tmp_path):
    _, vcf, _ = edge
    args = [
        "variants", "--vcf", str(vcf), "--saturate", "2", "--fasta", str(genome["fasta"]),
        "--genes", str(genome["genes"]), "--exons", str(genome["exons"]), "--model", "x",
        "--out-parquet", str(tmp_path / "v.parquet"), "--out-vcf", str(tmp_path / "v.vcf.gz"),
    ]  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "sptx_pipeline.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode != 0
    assert "ERROR sptx: --saturate scores" in result.stderr.strip().splitlines()[-1]
