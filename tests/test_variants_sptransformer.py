"""The SpliceTransformer convention of ``sptx variants`` against an independent re-implementation.

The reference below follows the official tool's arithmetic (VARIANTS.md) with none of the
package's code: windows cut with pyfaidx (1-based ``POS-4100 .. POS+4100``), ALT spliced in,
reverse-complemented by string translation on ``-``; indels aligned by the SpliceTransformer
library's ``align_score`` (tests/official_sptransformer.py); the forward is multimolecule's own
SpTransformer submodules on the whole window (what the original model does with real flanks);
softmax/sigmoid; splice score, 0.09 usage mask, tissue deltas, the maximum over strands and the
z-score flags with the tool's constants copied here. The model is a small random geometry with
the tool's flank of 4,000, so the window is exactly the tool's 8,201 nt.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyfaidx
import pytest
import torch

from sptx_pipeline.annotation import select_genes
from sptx_pipeline.variant_effects import TISSUES, tissue_flags
from sptx_pipeline.variants import score_variants
from tests.genome_fixtures import EXAMPLE_FASTA, EXAMPLE_GTF
from tests.model_fixtures import TINY, mm_model, mm_real_flank_logits
from tests.official_sptransformer import official_align_score

# tissue, MEAN, STD, Q95 as published with the SpliceTransformer tool (VARIANTS.md)
CONSTANTS = """
adipose_tissue 0.016170055925538048 0.015315100552740593 1.8050256807163338
blood -0.1466492029720345 0.07765363341706003 1.2976271940160122
blood_vessel -0.004814086515620099 0.02180354730921543 1.7301640366913926
brain 0.017831358519558433 0.03280497132872753 1.5711727792118446
colon 0.03297392759250731 0.018426896200775304 1.6529818774325018
heart -0.0238562463866956 0.02340998308282473 1.5579432960092778
kidney 0.03762999484050797 0.022809397819461737 1.9147687989032427
liver -0.057356272980532315 0.037399009450944404 1.4824945358487465
lung 0.04777555561381407 0.02457642947897365 1.7212837086526112
muscle -0.04901297259546376 0.03512151853661846 1.4469248306980924
nerve 0.03865417911254773 0.025045859953448327 1.5899046195758109
small_intestine 0.05855564392852844 0.03187442362925183 1.8459915073972142
skin 0.008105610846240991 0.015884291924608274 1.8389222688204020
spleen 0.001179770193512726 0.022923747771506405 1.709814212823414
stomach 0.022812684877590292 0.01608487821592824 1.8189643807065778
"""
TABLE = [line.split() for line in CONSTANTS.strip().splitlines()]
MEAN, STD, Q95 = (np.array([float(row[i]) for row in TABLE]) for i in (1, 2, 3))
GEOMETRY = dict(TINY, context=4000, max_seq_len=8192, bucket_size=64)
VARIANTS = [  # (pos, ref, alt): + only (STK11), - only (CBARP), both strands, indels
    (1207202, "A", "G"),
    (1207203, "G", "T"),
    (1228431, "C", "A"),
    (1228433, "TG", "T"),
    (1228434, "G", "A"),
    (1228437, "C", "CAT"),
    (1233425, "C", "T"),
]
LOWER_CASE = [(1228434, "g", "a")]  # accepted here; scored like G>A
TOKEN = {"A": 0, "C": 1, "G": 2, "T": 3}


def reference_strand(mm, fasta, pos: int, ref: str, alt: str, strand: str):
    """(splice score, tissue deltas) of one strand, the official way."""
    seq = fasta["chr19"][pos - 4101 : pos + 4100].upper()
    assert seq[4100 : 4100 + len(ref)] == ref
    seq_alt = seq[:4100] + alt + seq[4100 + len(ref) :]
    outputs = []
    for window in (seq, seq_alt):
        if strand == "-":
            window = window.translate(str.maketrans("ACGTN", "TGCAN"))[::-1]
        tokens = torch.tensor([[TOKEN.get(base, 4) for base in window]])
        with torch.inference_mode():
            logits = mm_real_flank_logits(mm, tokens)[0]
        probs = torch.cat([logits[:, :3].softmax(-1), logits[:, 3:].sigmoid()], -1).numpy()
        outputs.append(probs)  # model orientation: 5' to 3' of the strand
    # the library's align_score (zeros before the anchor: ALT track for a deletion, REF track
    # for an insertion), transcribed row by row, on the tracks in model orientation
    y_ref, y_alt = official_align_score(strand, pos, pos - 100, ref, alt, *outputs)
    assert y_ref.shape == y_alt.shape == (201 + max(len(alt) - len(ref), 0), 18)
    s_ref, s_alt = np.maximum(y_ref[:, 1], y_ref[:, 2]), np.maximum(y_alt[:, 1], y_alt[:, 2])
    u_ref, u_alt = y_ref[:, 3:].copy(), y_alt[:, 3:].copy()
    u_ref[s_ref < 0.09] = 0
    u_alt[s_alt < 0.09] = 0
    return float(np.abs(s_alt - s_ref).max()), np.abs(u_alt - u_ref).max(axis=0)


def official_flags(deltas: np.ndarray) -> np.ndarray:
    z = ((deltas - deltas.mean()) - MEAN) / STD
    return z > Q95


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("sptx-variants")
    mm = mm_model(GEOMETRY, seed=5)
    mm.save_pretrained(base / "model")
    genes, exons = base / "genes.parquet", base / "exons.parquet"
    select_genes(
        EXAMPLE_GTF, EXAMPLE_FASTA, genes, base / "regions.parquet", gene_types=[], out_exons=exons
    )
    vcf = base / "in.vcf"
    body = "".join(f"19\t{p}\t.\t{r}\t{a}\t.\t.\t.\n" for p, r, a in sorted(VARIANTS + LOWER_CASE))
    vcf.write_text(
        "##fileformat=VCFv4.2\n##contig=<ID=19>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
        + body
    )
    score_variants(
        vcf,
        EXAMPLE_FASTA,
        genes,
        str(base / "model"),
        base / "variants.parquet",
        base / "variants.vcf.gz",
        exons=exons,
        device="cpu",
        shard_size=3,
        batch_size=4,
        progress=False,
    )
    return mm, pd.read_parquet(base / "variants.parquet"), base


def test_strands_and_genes(run):
    _, frame, _ = run
    assert (frame["status"] == "ok").all()
    both = frame[frame["pos"] == 1228431]
    assert sorted(zip(both["gene_name"], both["strand"], strict=True)) == [
        ("CBARP", "-"),
        ("STK11", "+"),
    ]
    assert set(frame.loc[frame["pos"] == 1207202, "strand"]) == {"+"}
    assert set(frame.loc[frame["pos"] == 1233425, "strand"]) == {"-"}


def test_scores_match_the_independent_reference(run):
    mm, frame, _ = run
    fasta = pyfaidx.Fasta(str(EXAMPLE_FASTA), as_raw=True)
    delta_columns = [f"delta_{t}" for t in TISSUES]
    flag_columns = [f"flag_{t}" for t in TISSUES]
    largest = 0.0
    for pos, ref, alt in VARIANTS:
        rows = frame[(frame["pos"] == pos) & (frame["alt"] == alt)]
        per_strand = {}
        for strand in sorted(set(rows["strand"])):
            splice, deltas = reference_strand(mm, fasta, pos, ref, alt, strand)
            per_strand[strand] = (splice, deltas)
            for _, row in rows[rows["strand"] == strand].iterrows():
                assert abs(row["splice_score"] - splice) <= 1e-4, (pos, strand)
                ours = row[delta_columns].to_numpy(dtype=float)
                assert np.abs(ours - deltas).max() <= 1e-4, (pos, strand)
                assert list(row[flag_columns]) == list(official_flags(deltas)), (pos, strand)
            largest = max(largest, splice, deltas.max())
        # the tool's variant-level result: the maximum over strands, then the flags
        splice = max(s for s, _ in per_strand.values())
        deltas = np.max([d for _, d in per_strand.values()], axis=0)
        ours = rows.groupby("strand")[delta_columns].first().max().to_numpy(dtype=float)
        assert abs(rows["splice_score"].max() - splice) <= 1e-4
        assert np.abs(ours - deltas).max() <= 1e-4
        assert list(tissue_flags(ours)) == list(official_flags(deltas))
    assert largest > 0.01  # the comparison is not between all-zero deltas


def test_vcf_entries(run):
    import pysam

    _, frame, base = run
    with pysam.VariantFile(str(base / "variants.vcf.gz")) as vcf:
        assert "SpTransformer" in vcf.header.info and "SpliceAI" in vcf.header.info
        records = list(vcf)
    assert len(records) == len(VARIANTS) + len(LOWER_CASE)
    both = next(r for r in records if r.pos == 1228431)
    entries = both.info["SpTransformer"]
    assert [e.split("|")[:3] for e in entries] == [["A", "STK11", "+"], ["A", "CBARP", "-"]]
    row = frame[(frame["pos"] == 1228431) & (frame["gene_name"] == "CBARP")].iloc[0]
    assert entries[1].split("|")[3] == f"{row['splice_score']:.4f}"
    assert len(both.info["SpliceAI"]) == 2


def test_lower_case_alleles_score_like_upper_case(run):
    _, frame, _ = run
    scores = [c for c in frame.columns if c.startswith(("ds_", "dp_", "delta_", "flag_", "splice"))]
    upper = frame[(frame["pos"] == 1228434) & (frame["ref"] == "G")]
    lower = frame[(frame["pos"] == 1228434) & (frame["ref"] == "g")]
    assert len(upper) == len(lower) == 2 and (lower["status"] == "ok").all()
    pd.testing.assert_frame_equal(
        upper[scores].reset_index(drop=True), lower[scores].reset_index(drop=True)
    )
