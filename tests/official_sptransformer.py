"""The SpliceTransformer library's indel alignment, transcribed row by row for the tests.

``SNPInterval.align_score`` in ``tasks_annotate_mutations.py`` of
ShenLab-Genomics/SpliceTransformer (commit b67a51d, 2024-11-22), written out
as plain loops over rows with no numpy slicing and none of the package's code, so that
``variant_effects.align_padded`` (vectorised) is checked against an independent statement of
the same rule:

1. on ``-`` both score tracks (model orientation, 5' to 3' of the transcript) are reversed into
   genomic order;
2. ``offset = snp_pos - center_posL`` (``D`` for the tool's ``center_posL = POS - D``);
3. ``k = |len(REF) - len(ALT)|`` zero rows go in before row ``offset``: into the ALT track when
   REF is longer, into the REF track when ALT is longer; nothing else changes (no maximum);
4. on ``-`` both tracks are reversed back.
"""

from __future__ import annotations

import numpy as np


def _padded(rows: list[list[float]], offset: int, count: int, width: int) -> list[list[float]]:
    """``rows[:offset] + count zero rows + rows[offset:]``, one row at a time."""
    out: list[list[float]] = []
    for i in range(len(rows)):
        if i == offset:
            break
        out.append(rows[i])
    for _ in range(count):
        out.append([0.0] * width)
    i = offset
    while i < len(rows):
        out.append(rows[i])
        i += 1
    return out


def official_align_score(
    strand: str,
    snp_pos: int,
    center_pos_left: int,
    ref: str,
    alt: str,
    ref_score: np.ndarray,
    alt_score: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The tool's aligned REF and ALT tracks, in the orientation they came in."""
    ref_rows = [[float(v) for v in row] for row in ref_score]
    alt_rows = [[float(v) for v in row] for row in alt_score]
    width = len(ref_rows[0])
    if strand == "-":
        ref_rows = ref_rows[::-1]
        alt_rows = alt_rows[::-1]
    offset = snp_pos - center_pos_left
    count = abs(len(ref) - len(alt))
    if len(ref) > len(alt):
        alt_rows = _padded(alt_rows, offset, count, width)
    elif len(ref) < len(alt):
        ref_rows = _padded(ref_rows, offset, count, width)
    if strand == "-":
        ref_rows = ref_rows[::-1]
        alt_rows = alt_rows[::-1]
    return np.array(ref_rows), np.array(alt_rows)
