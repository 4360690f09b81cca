"""Variants/s of ``sptx variants`` against the official SpliceTransformer tool's algorithm.

Same process, CPU, float32, one torch thread, the same SNVs of the bundled chr19 region
(STK11 on +, CBARP on -, and positions where both overlap, which are scored on both strands):

- ``sptx variants``: the whole stage (``score_variants``: VCF read, windows, Dask task, model,
  arithmetic, Parquet and VCF.gz + tabix), one shard. An SNV's ALT window shares all but one
  position with its REF window: the conv encoders' ALT pass recomputes only the positions whose
  activations can differ from the REF pass's (``forward_substituted``), the transformer runs in
  full;
- the official algorithm (the headline reference): per variant and strand, one REF and one
  ALT window of 8,201 nt cut from the FASTA, each its own forward pass (batch 1), with the
  original network's computation on that window (multimolecule's submodules composed on the
  8,201 nt, ``common.original_forward``: what the official tool costs); and, as a second line,
  with multimolecule's ``SpTransformerModel`` as the forward, what a user of multimolecule
  would run (it pads 4,000 N per side, so its convolutions see 16,201 positions);
- the model alone on the distinct windows of the stage, as the stage scores them
  (``WindowSet.score``: REF windows with their incremental ALTs), for the stage's windows/s
  against the model's; and every distinct window as a plain forward (``score_windows`` without
  substitutions), for what the incremental ALT pass gains.

Weights are random with the published geometry (speed does not depend on the values).

    python benchmarks/bench_variants.py [--variants 6] [--alts 1] [--repeats 3]

``--alts 3`` scores every SNV of each position (a saturation table, or multi-allelic records):
the REF window of a position and strand is then computed once for its three ALTs, where the
official algorithm computes it once per ALT.

A warm-up round, then ``--repeats`` (>= 3) rounds alternating between the methods; the best
time of each is reported.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pyfaidx
import torch
from common import best_of_rounds, machine, original_forward

from sptx_pipeline.annotation import select_genes
from sptx_pipeline.models import load_model
from sptx_pipeline.models.random_checkpoint import write_random_checkpoint
from sptx_pipeline.runtime import score_windows
from sptx_pipeline.variants import Annotation, Settings, WindowSet, plan_records, score_variants
from sptx_pipeline.vcf import read_records

ROOT = Path(__file__).resolve().parents[1]
FASTA = ROOT / "config/example/grch37_chr19_1-1500000.fa"
GTF = ROOT / "config/example/grch37_chr19_1-1500000.gtf"
# (pos, strands): STK11 (+) only, CBARP (-) only, the STK11/CBARP overlap (both)
POSITIONS = [1207202, 1233425, 1228431, 1221948, 1235000, 1228434, 1220000, 1234570]
TOKEN = {"A": 0, "C": 1, "G": 2, "T": 3}
SWAP = {"A": "G", "C": "T", "G": "A", "T": "C"}


def write_vcf(path: Path, fasta: pyfaidx.Fasta, n: int, alts: int) -> list[tuple[int, str, str]]:
    """``n`` positions with ``alts`` ALTs each (1: a transition; 3: every SNV, as saturation
    writes them); returns one (pos, ref, alt) per ALT, the variants the official tool scores."""
    variants, lines = [], []
    for pos in sorted(POSITIONS[:n]):
        ref = fasta["chr19"][pos - 1 : pos].upper()
        chosen = [SWAP[ref]] + [b for b in "ACGT" if b not in (ref, SWAP[ref])][: alts - 1]
        variants += [(pos, ref, alt) for alt in chosen]
        lines.append(f"chr19\t{pos}\t.\t{ref}\t{','.join(chosen)}\t.\t.\t.\n")
    body = "".join(lines)
    path.write_text(
        "##fileformat=VCFv4.2\n##contig=<ID=chr19>\n"
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n" + body
    )
    return variants


def official_windows(fasta, variants, strands_of) -> list[torch.Tensor]:
    """The tool's REF and ALT windows (8,201 nt) per variant and strand, in its order."""
    windows = []
    for pos, _, alt in variants:
        seq = fasta["chr19"][pos - 4101 : pos + 4100].upper()
        for strand in strands_of(pos):
            for window in (seq, seq[:4100] + alt + seq[4101:]):
                if strand == "-":
                    window = window.translate(str.maketrans("ACGTN", "TGCAN"))[::-1]
                windows.append(torch.tensor([[TOKEN.get(b, 4) for b in window]]))
    return windows


def time_official(forward, windows) -> float:
    began = time.perf_counter()
    with torch.inference_mode():
        for window in windows:  # batch 1, one forward per window, as the tool does
            logits = forward(window)
            torch.cat([logits[..., :3].softmax(-1), logits[..., 3:].sigmoid()], -1)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=int, default=6, help=f"1..{len(POSITIONS)}")
    parser.add_argument("--alts", type=int, default=1, choices=(1, 2, 3), help="ALTs per position")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds (>= 3)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(machine())
    from multimolecule import SpTransformerModel

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_random_checkpoint(tmp / "model", seed=0)
        genes, exons = tmp / "genes.parquet", tmp / "exons.parquet"
        select_genes(GTF, FASTA, genes, tmp / "regions.parquet", gene_types=[], out_exons=exons)
        fasta = pyfaidx.Fasta(str(FASTA), as_raw=True)
        vcf = tmp / "in.vcf"
        variants = write_vcf(vcf, fasta, args.variants, args.alts)
        annotation = Annotation.load(str(FASTA), str(genes), str(exons))

        def strands_of(pos: int) -> list[str]:
            return sorted(set(annotation.genes_at("chr19", pos)["strand"]), reverse=True)

        n_strand_variants = sum(len(strands_of(p)) for p, _, _ in variants)
        ours = load_model(str(tmp / "model"))
        windows = WindowSet()
        plan_records(
            read_records(vcf), annotation, Settings("sptransformer", 100, False, 4000), windows
        )
        distinct = np.stack(windows.windows)

        cluster = {"type": "local", "processes": False, "threads_per_worker": 1}
        mm = SpTransformerModel.from_pretrained(tmp / "model").eval()
        tool_windows = official_windows(fasta, variants, strands_of)

        def mm_forward(window: torch.Tensor) -> torch.Tensor:
            return mm(window).logits[:, 4000:-4000]

        composed_forward = original_forward(mm)

        rounds = iter(range(10**6))
        shard_times: list[float] = []

        def run_stage() -> float:
            round_ = next(rounds)
            began = time.perf_counter()
            summary = score_variants(
                vcf, FASTA, genes, str(tmp / "model"), tmp / f"v{round_}.parquet",
                tmp / f"v{round_}.vcf.gz", exons=exons, device="cpu",
                batch_size=args.batch_size, cluster=cluster, progress=False,
            )  # fmt: skip
            torch.set_num_threads(1)
            shard_times.append(summary.shard_seconds)
            return time.perf_counter() - began

        def run_alone() -> None:  # the stage's distinct windows, incremental ALT passes
            windows.score(ours, args.batch_size, "cpu")

        def run_plain() -> None:  # the same windows, every one a plain forward
            score_windows(ours, distinct, args.batch_size, "float32", "cpu")

        best = best_of_rounds(
            {
                "stage": run_stage,
                "alone": run_alone,
                "plain": run_plain,
                "official": lambda: time_official(composed_forward, tool_windows),
                "multimolecule": lambda: time_official(mm_forward, tool_windows),
            },
            args.repeats,
        )
        stage, model_alone = best["stage"], best["alone"]
        official, official_mm = best["official"], best["multimolecule"]
        shard_seconds, plain = min(shard_times[1:]), best["plain"]

    n = len(variants)
    print(
        f"{n} SNVs at {args.variants} positions, {n_strand_variants} variant x strand scorings, "
        f"{len(distinct)} distinct windows"
    )
    print(f"sptx variants (whole stage):       {n / stage:.4f} variants/s ({stage:.1f} s)")
    print(f"official algorithm (original network, 8,201-nt windows): {n / official:.4f} variants/s")
    print(f"official algorithm, SpTransformerModel forward: {n / official_mm:.4f} variants/s")
    print(
        f"HEADLINE speed-up vs the official algorithm (faithful reference): {official / stage:.2f}x"
    )
    print(f"  speed-up vs the official algorithm with multimolecule's forward: "
          f"{official_mm / stage:.2f}x")  # fmt: skip
    alone = len(distinct) / model_alone
    print(
        f"model alone: {alone:.3f} windows/s with incremental ALT passes, "
        f"{len(distinct) / plain:.3f} with plain forwards ({plain / model_alone:.2f}x)"
    )
    for label, seconds in (("whole stage", stage), ("its shard tasks", shard_seconds)):
        rate = len(distinct) / seconds
        print(f"windows/s, {label}: {rate:.3f} vs model alone {alone:.3f} ({rate / alone:.2f})")


if __name__ == "__main__":
    main()
