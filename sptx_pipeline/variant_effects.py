"""The arithmetic of variant effect scores in the two official conventions (no I/O, no model).

Both conventions compare the model's output for a REF window and an ALT window over the
``2D + 1`` positions centred on the variant (``D`` = ``variant_distance``):

- ``spliceai`` (the official ``spliceai`` 1.3.1 CLI): acceptor/donor gain and loss (``DS``) and
  their offsets (``DP``), optionally masked against the gene's nearest annotated exon boundary;
- ``sptransformer`` (the official SpliceTransformer tool): a splice score over
  ``max(acceptor, donor)``, per-tissue usage deltas with a 0.09 usage mask, and z-score flags
  against published per-tissue constants.

For an indel the two outputs differ in length and are first aligned: the SpliceAI tool's way
(``align_alt``: zeros after the anchor for a deletion, the inserted positions collapsed by their
maximum) or the SpliceTransformer library's way (``align_padded``: zeros before the anchor, in
the ALT track for a deletion and in the REF track for an insertion, so an insertion compares
``2D + 1 + k`` positions). Every function takes arrays in genomic orientation with channels
``no_splice, acceptor, donor[, 15 tissues]``, and optionally each row's offset from the variant.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .models.sptransformer import OFFICIAL_TISSUES

ACCEPTOR, DONOR = 1, 2
DELTA_KEYS = ("ag", "al", "dg", "dl")

TISSUES = OFFICIAL_TISSUES  # the tool's order, as the model's tissue channels
# Per-tissue MEAN, STD and Q95 of the SpliceTransformer tool's z-score flag (tool order).
TISSUE_MEAN = np.array(
    [
        0.016170055925538048,
        -0.1466492029720345,
        -0.004814086515620099,
        0.017831358519558433,
        0.03297392759250731,
        -0.0238562463866956,
        0.03762999484050797,
        -0.057356272980532315,
        0.04777555561381407,
        -0.04901297259546376,
        0.03865417911254773,
        0.05855564392852844,
        0.008105610846240991,
        0.001179770193512726,
        0.022812684877590292,
    ]
)
TISSUE_STD = np.array(
    [
        0.015315100552740593,
        0.07765363341706003,
        0.02180354730921543,
        0.03280497132872753,
        0.018426896200775304,
        0.02340998308282473,
        0.022809397819461737,
        0.037399009450944404,
        0.02457642947897365,
        0.03512151853661846,
        0.025045859953448327,
        0.03187442362925183,
        0.015884291924608274,
        0.022923747771506405,
        0.01608487821592824,
    ]
)
TISSUE_Q95 = np.array(
    [
        1.8050256807163338,
        1.2976271940160122,
        1.7301640366913926,
        1.5711727792118446,
        1.6529818774325018,
        1.5579432960092778,
        1.9147687989032427,
        1.4824945358487465,
        1.7212837086526112,
        1.4469248306980924,
        1.5899046195758109,
        1.8459915073972142,
        1.8389222688204020,
        1.709814212823414,
        1.8189643807065778,
    ]
)
USAGE_MIN_SPLICE = 0.09  # tissue usage counts only where max(acceptor, donor) reaches this


def align_alt(alt: np.ndarray, ref_len: int, alt_len: int, distance: int) -> np.ndarray:
    """ALT scores ``[2D + 1 - ref_len + alt_len, C]`` aligned to the REF positions ``[2D + 1, C]``.

    SpliceAI's rules, generalised to REF and ALT both longer than one base: the first
    ``min(ref_len, alt_len)`` allele positions map one to one; a deletion gets zeros for its
    missing ``ref_len - alt_len`` positions right after them; an insertion collapses its allele's
    remaining positions (from the last one-to-one position on) into one, by their maximum.
    """
    centre = distance
    common = min(ref_len, alt_len)
    if ref_len > alt_len:
        zeros = np.zeros((ref_len - alt_len, alt.shape[1]), dtype=alt.dtype)
        return np.concatenate([alt[: centre + common], zeros, alt[centre + common :]])
    if alt_len > ref_len:
        begin, end = centre + common - 1, centre + alt_len
        collapsed = alt[begin:end].max(axis=0, keepdims=True)
        return np.concatenate([alt[:begin], collapsed, alt[end:]])
    return alt


def align_padded(
    ref: np.ndarray, alt: np.ndarray, ref_len: int, alt_len: int, distance: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """REF and ALT scores aligned as the SpliceTransformer library's ``align_score`` does.

    ``ref``: ``[2D + 1, C]``; ``alt``: ``[2D + 1 - ref_len + alt_len, C]``, both in genomic
    order. ``k = |ref_len - alt_len|`` zero rows go in at row ``D`` (just before the variant's
    first base): into the ALT track for a deletion, into the REF track for an insertion. No
    maximum is taken. Returns the two tracks and each row's offset from the variant: rows before
    ``D`` are ``-D..-1``, the inserted block and the anchor are 0, rows after are offset by the
    length change (an insertion) or are the REF positions themselves (a deletion).
    """
    change = abs(ref_len - alt_len)
    zeros = np.zeros((change, ref.shape[1]), dtype=ref.dtype)
    if ref_len > alt_len:
        alt = np.concatenate([alt[:distance], zeros, alt[distance:]])
    elif alt_len > ref_len:
        ref = np.concatenate([ref[:distance], zeros, ref[distance:]])
    rows = np.arange(ref.shape[0]) - distance
    if alt_len > ref_len:
        rows = np.where(rows < 0, rows, np.maximum(rows - change, 0))
    return ref, alt, rows


@dataclass(frozen=True)
class SpliceDeltas:
    """``ds_ag, ds_al, ds_dg, ds_dl`` (after masking) and ``dp_*`` offsets from the variant."""

    ds: tuple[float, float, float, float]
    dp: tuple[int, int, int, int]


def _offsets(ref: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
    """Each row's offset from the variant (default: the centre row is 0)."""
    return np.arange(ref.shape[0]) - ref.shape[0] // 2 if rows is None else rows


def splice_deltas(
    ref: np.ndarray,
    alt: np.ndarray,
    nearest_boundary: int | None,
    mask: bool,
    rows: np.ndarray | None = None,
) -> SpliceDeltas:
    """Acceptor/donor gain and loss as the official SpliceAI tool computes them.

    Each is the largest ``alt - ref`` (gain) or ``ref - alt`` (loss) of its channel, at the
    first position reaching it. With ``mask``, a gain at the gene's nearest annotated exon
    boundary (``nearest_boundary``, offset from the variant) and a loss anywhere else are 0.
    ``rows``: each row's offset from the variant (default: the centre row is 0).
    """
    row_offsets = _offsets(ref, rows)
    values, offsets = [], []
    for channel, gain in ((ACCEPTOR, True), (ACCEPTOR, False), (DONOR, True), (DONOR, False)):
        diff = alt[:, channel] - ref[:, channel] if gain else ref[:, channel] - alt[:, channel]
        index = int(diff.argmax())
        offset = int(row_offsets[index])
        at_boundary = nearest_boundary is not None and offset == nearest_boundary
        masked = mask and (at_boundary if gain else not at_boundary)
        values.append(float(diff[index]) * (0.0 if masked else 1.0))
        offsets.append(offset)
    return SpliceDeltas(tuple(values), tuple(offsets))  # type: ignore[arg-type]


def nearest_boundary(boundaries: np.ndarray, pos: int) -> int | None:
    """Offset of the exon boundary nearest ``pos``: SpliceAI's ``min(b - pos, key=abs)`` over the
    sorted boundaries, so a tie goes to the upstream (smaller) one. None without boundaries."""
    if len(boundaries) == 0:
        return None
    offsets = np.unique(boundaries) - pos
    return int(offsets[np.abs(offsets).argmin()])


@dataclass(frozen=True)
class TissueEffect:
    """One strand's SpliceTransformer scores: splice score, tissue deltas and their offsets."""

    splice_score: float
    deltas: np.ndarray  # [15]
    offsets: np.ndarray  # [15] int, offset from the variant of each tissue's largest change


def tissue_effect(ref: np.ndarray, alt: np.ndarray, rows: np.ndarray | None = None) -> TissueEffect:
    """The SpliceTransformer tool's scores on one strand (aligned arrays ``[n, 18]``).

    Splice score: largest ``|max(acc, donor)_alt - max(acc, donor)_ref|``. Tissue usage is set
    to 0 where that allele's ``max(acc, donor) < 0.09``, then ``d_t = max |alt - ref|``.
    ``rows``: each row's offset from the variant (default: the centre row is 0).
    """
    splice_ref = ref[:, [ACCEPTOR, DONOR]].max(axis=1)
    splice_alt = alt[:, [ACCEPTOR, DONOR]].max(axis=1)
    usage_ref = np.where(splice_ref[:, None] < USAGE_MIN_SPLICE, 0.0, ref[:, 3:])
    usage_alt = np.where(splice_alt[:, None] < USAGE_MIN_SPLICE, 0.0, alt[:, 3:])
    change = np.abs(usage_alt - usage_ref)
    index = change.argmax(axis=0)
    return TissueEffect(
        splice_score=float(np.abs(splice_alt - splice_ref).max()),
        deltas=change[index, np.arange(change.shape[1])].astype(np.float64),
        offsets=_offsets(ref, rows)[index].astype(np.int64),
    )


def tissue_z_scores(deltas: np.ndarray) -> np.ndarray:
    """``((d_t - mean(d)) - MEAN_t) / STD_t`` per tissue (mean over the variant's 15 deltas)."""
    deltas = np.asarray(deltas, dtype=np.float64)
    return ((deltas - deltas.mean()) - TISSUE_MEAN) / TISSUE_STD


def tissue_flags(deltas: np.ndarray) -> np.ndarray:
    """The tool's flags: ``z_t > Q95_t``. Equal deltas (e.g. all 0) still flag blood and liver,
    whose ``-MEAN / STD`` exceeds their ``Q95``: a flag means "more tissue-specific than usual",
    not "large"."""
    return tissue_z_scores(deltas) > TISSUE_Q95


def combine_strands(effects: list[TissueEffect]) -> tuple[float, np.ndarray, np.ndarray]:
    """The tool's variant-level result over its strands: max splice score, max delta per tissue,
    and the flags of those deltas."""
    splice = max(effect.splice_score for effect in effects)
    deltas = np.max([effect.deltas for effect in effects], axis=0)
    return splice, deltas, tissue_flags(deltas)
