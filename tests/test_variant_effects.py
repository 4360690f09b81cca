"""The arithmetic of the two conventions on hand-made arrays (the official tools' rules)."""

from __future__ import annotations

import numpy as np
import pytest

from sptx_pipeline.variant_effects import (
    TISSUES,
    align_alt,
    align_padded,
    combine_strands,
    nearest_boundary,
    splice_deltas,
    tissue_effect,
    tissue_flags,
)
from tests.official_sptransformer import official_align_score


def track(n: int, channels: int = 3) -> np.ndarray:
    return np.arange(n * channels, dtype=np.float32).reshape(n, channels) + 1


def test_deletion_inserts_zeros_after_the_anchor():
    distance, ref_len = 3, 3  # 7 positions, ALT track 5 long
    alt = track(5)
    out = align_alt(alt, ref_len, 1, distance)
    assert out.shape == (7, 3)
    np.testing.assert_array_equal(out[:4], alt[:4])  # up to and with the anchor (index D)
    assert (out[4:6] == 0).all()
    np.testing.assert_array_equal(out[6:], alt[4:])


def test_deletion_longer_than_d_zeros_the_end_as_the_tool_does():
    distance, ref_len = 2, 4  # 5 positions, ALT track 2 long: zeros land at the end
    alt = track(2)
    out = align_alt(alt, ref_len, 1, distance)
    np.testing.assert_array_equal(out[:2], alt)
    assert (out[2:] == 0).all() and out.shape == (5, 3)


def test_insertion_collapses_anchor_and_inserted_bases_by_maximum():
    distance, alt_len = 3, 3  # ALT track 9 long
    alt = track(9)
    alt[4] = [100, 0, 0]
    out = align_alt(alt, 1, alt_len, distance)
    assert out.shape == (7, 3)
    np.testing.assert_array_equal(out[3], np.maximum.reduce(alt[3:6]))
    np.testing.assert_array_equal(out[4:], alt[6:])


def test_complex_alleles_align_one_to_one_first():
    alt = track(7 + 1)  # REF 2, ALT 3: one extra position
    out = align_alt(alt, 2, 3, 3)
    np.testing.assert_array_equal(out[:4], alt[:4])
    np.testing.assert_array_equal(out[4], np.maximum(alt[4], alt[5]))
    same = track(7)  # an MNV of equal length maps position by position
    np.testing.assert_array_equal(align_alt(same, 2, 2, 3), same)


def test_splice_deltas_first_maximum_and_mask():
    ref = np.zeros((5, 3), dtype=np.float32)
    alt = ref.copy()
    alt[1, 1] = alt[3, 1] = 0.5  # acceptor gain at offsets -1 and +1: the first wins
    ref[4, 2] = 0.3  # donor loss at +2
    deltas = splice_deltas(ref, alt, nearest_boundary=-1, mask=False)
    assert deltas.ds[0] == 0.5 and deltas.dp[0] == -1
    assert deltas.ds[3] == np.float32(0.3) and deltas.dp[3] == 2
    masked = splice_deltas(ref, alt, nearest_boundary=-1, mask=True)
    assert masked.ds[0] == 0.0  # a gain at the annotated boundary
    assert masked.ds[3] == 0.0  # a loss away from it
    assert masked.dp == deltas.dp  # positions are still reported
    kept = splice_deltas(ref, alt, nearest_boundary=2, mask=True)
    assert kept.ds[0] == 0.5 and kept.ds[3] == np.float32(0.3)


def test_nearest_boundary_ties_go_upstream():
    assert nearest_boundary(np.array([90, 110]), 100) == -10
    assert nearest_boundary(np.array([120, 95]), 100) == -5
    assert nearest_boundary(np.array([], dtype=np.int64), 100) is None


def test_tissue_effect_masks_usage_below_0_09():
    ref = np.zeros((3, 18))
    alt = np.zeros((3, 18))
    ref[1, 1], ref[1, 3:] = 0.5, 0.8  # a site used at 0.8 in every tissue
    alt[1, 1], alt[1, 3:] = 0.08, 0.9  # splice probability falls below 0.09: usage counts 0
    effect = tissue_effect(ref, alt)
    assert abs(effect.splice_score - 0.42) < 1e-12
    np.testing.assert_allclose(effect.deltas, 0.8)
    assert (effect.offsets == 0).all()


def test_flags_quirk_equal_deltas_flag_blood_and_liver():
    flags = tissue_flags(np.zeros(15))
    assert [t for t, f in zip(TISSUES, flags, strict=True) if f] == ["blood", "liver"]
    deltas = np.zeros(15)
    deltas[TISSUES.index("brain")] = 0.5
    assert tissue_flags(deltas)[TISSUES.index("brain")]


def test_combine_strands_takes_maxima_then_flags():
    a = tissue_effect(np.zeros((3, 18)), np.zeros((3, 18)))
    ref, alt = np.zeros((3, 18)), np.zeros((3, 18))
    alt[2, 2], alt[2, 3 + TISSUES.index("brain")] = 0.6, 0.7
    b = tissue_effect(ref, alt)
    splice, deltas, flags = combine_strands([a, b])
    assert splice == b.splice_score and deltas[TISSUES.index("brain")] == 0.7
    assert flags[TISSUES.index("brain")]


ALLELE_PAIRS = [  # (REF, ALT): SNV, deletions (one longer than D), insertions, complex
    ("A", "G"),
    ("TG", "T"),
    ("TCAGG", "T"),
    ("A" * 150, "A"),
    ("C", "CAT"),
    ("C", "C" + "G" * 40),
    ("TGA", "TC"),
    ("TG", "TCAGA"),
]


@pytest.mark.parametrize("strand", ["+", "-"])
@pytest.mark.parametrize(("ref", "alt"), ALLELE_PAIRS)
def test_align_padded_equals_the_library_rule_transcribed_row_by_row(ref, alt, strand):
    """``align_padded`` against the loop transcription of ``SNPInterval.align_score``
    (tests/official_sptransformer.py) on random tracks, D = 100 as in the tool."""
    distance, pos = 100, 5000
    rng = np.random.default_rng(len(ref) * 7 + len(alt))
    n_ref, n_alt = 2 * distance + 1, 2 * distance + 1 - len(ref) + len(alt)
    # model orientation (reversed on -), as the tool's model returns them
    ref_model = rng.random((n_ref, 18)).astype(np.float32)
    alt_model = rng.random((n_alt, 18)).astype(np.float32)
    want_ref, want_alt = official_align_score(
        strand, pos, pos - distance, ref, alt, ref_model, alt_model
    )
    genomic = (lambda x: x[::-1]) if strand == "-" else (lambda x: x)
    got_ref, got_alt, rows = align_padded(
        genomic(ref_model), genomic(alt_model), len(ref), len(alt), distance
    )
    np.testing.assert_array_equal(got_ref, genomic(want_ref))
    np.testing.assert_array_equal(got_alt, genomic(want_alt))
    assert got_ref.shape == got_alt.shape == (n_ref + max(len(alt) - len(ref), 0), 18)
    assert len(rows) == len(got_ref) and rows[distance] == 0


def test_align_padded_offsets_and_no_maximum():
    """An insertion keeps every ALT row (no maximum) against a zero-padded REF track; rows after
    the allele keep their genomic offsets; a deletion's ALT has zeros before the anchor."""
    distance = 3
    ref, alt = track(7), track(9)  # C>CAT: two inserted bases
    got_ref, got_alt, rows = align_padded(ref, alt, 1, 3, distance)
    np.testing.assert_array_equal(got_alt, alt)
    assert (got_ref[3:5] == 0).all()
    np.testing.assert_array_equal(got_ref[5:], ref[3:])
    assert list(rows) == [-3, -2, -1, 0, 0, 0, 1, 2, 3]
    got_ref, got_alt, rows = align_padded(track(7), track(5), 3, 1, distance)  # TCA>T
    np.testing.assert_array_equal(got_alt[:3], track(5)[:3])
    assert (got_alt[3:5] == 0).all()
    np.testing.assert_array_equal(got_alt[5:], track(5)[3:])  # the anchor lands on REF row 5
    assert list(rows) == [-3, -2, -1, 0, 1, 2, 3]


def test_offsets_of_padded_rows_reach_deltas_and_tissue_effect():
    """The largest change after an insertion is reported at its genomic offset."""
    distance = 3
    ref, alt = np.zeros((7, 18), np.float32), np.zeros((9, 18), np.float32)
    alt[7, 2] = 0.8  # ALT row 7 = genomic offset +2 of C>CAT (rows -3..-1, 0, 0, 0, 1, 2, 3)
    alt[7, 3:] = 0.5
    a_ref, a_alt, rows = align_padded(ref, alt, 1, 3, distance)
    deltas = splice_deltas(a_ref, a_alt, None, False, rows)
    assert deltas.dp[2] == 2 and deltas.ds[2] == pytest.approx(0.8)
    effect = tissue_effect(a_ref, a_alt, rows)
    assert effect.splice_score == pytest.approx(0.8) and (effect.offsets == 2).all()
