"""The incremental ALT pass (``forward_substituted``) against full forwards of the ALT windows.

An ALT window that differs from its REF window on a span reuses the REF pass of the conv
encoders and recomputes only where the activations can differ. The outputs must equal a full
forward of the ALT window up to float rounding: in the middle (SNV, MNV), where the changed span
reaches a window edge (the convs' zero padding), and for several ALTs of several REFs at once.
A small geometry with the published flank (window 8,201 nt, every dilation and kernel size)
keeps it fast; the encoder-level check compares every position, so a margin that is one
position short fails.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest
import torch

from sptx_pipeline.annotation import select_genes
from sptx_pipeline.models import sptransformer
from sptx_pipeline.models.random_checkpoint import random_state_dict
from sptx_pipeline.models.sptransformer import SpTransformer, SpTransformerConfig
from sptx_pipeline.runtime import score_windows
from sptx_pipeline.testing import StandInModel
from sptx_pipeline.variants import Annotation, Settings, WindowSet, score_records
from sptx_pipeline.vcf import read_records
from tests.genome_fixtures import EXAMPLE_FASTA, EXAMPLE_GTF
from tests.model_fixtures import random_tokens

SMALL = SpTransformerConfig(
    flank=4000,
    hidden_size=8,
    encoder_sizes=(8, 4),
    attention_hidden_size=16,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_local_attention_heads=1,
    intermediate_size=24,
    bucket_size=64,
    max_seq_len=8192,
)
LENGTH = 8201  # 1 + 2 * (flank + D) with D = 100, as in the variant stage
# (REF row, span): SNVs in the middle of both REFs (one group), an MNV, changes whose
# receptive field (+/- 2,600) reaches the left or the right window edge, and changes at the very
# edges. Changes far from the target move its outputs by ~1e-6 only: the encoder features are
# compared at every position, and a short window (below) checks the edges on the outputs.
CASES = [
    (0, (4100, 4101)),
    (1, (4100, 4101)),
    (1, (4099, 4103)),
    (0, (1550, 1551)),
    (1, (LENGTH - 1553, LENGTH - 1550)),
    (0, (7, 8)),
    (1, (LENGTH - 3, LENGTH - 1)),
    (0, (0, 1)),
]
# A 1,201-nt window (flank 500): changes at the edges reach the target through the encoders.
SHORT = dataclasses.replace(SMALL, flank=500, max_seq_len=1280)
SHORT_CASES = [(0, (600, 601)), (1, (3, 4)), (0, (0, 2)), (1, (1199, 1201))]


def random_model(config: SpTransformerConfig) -> SpTransformer:
    model = SpTransformer(config)
    model.load_state_dict(random_state_dict(model, seed=4))
    return model.eval()


@pytest.fixture(scope="module")
def model() -> SpTransformer:
    return random_model(SMALL)


def substituted(ref: torch.Tensor, cases=CASES) -> torch.Tensor:
    """ALT windows: each REF row with every position of its span changed."""
    alt = ref[[row for row, _ in cases]].clone()
    for i, (_, (start, stop)) in enumerate(cases):
        alt[i, start:stop] = (alt[i, start:stop] + 1 + i % 3) % 4
    return alt


@pytest.mark.parametrize("method", ["direct", "fft"])
def test_encoder_features_equal_a_full_pass_everywhere(model, method):
    ref = random_tokens(2, LENGTH, seed=1)
    alt = substituted(ref)
    groups = [
        (torch.tensor([row]), span, alt[i : i + 1, span[0] : span[1]])
        for i, (row, span) in enumerate(CASES)
    ]
    model.conv_method = method
    try:
        for encoder in model.feature_encoders:
            with torch.inference_mode():
                ref_feats, alt_feats = encoder.substituted(ref, groups)
                full = encoder(torch.cat([ref, alt]))
            scale = full.abs().max().item()
            assert (ref_feats - full[:2]).abs().max().item() <= 1e-5 * scale
            for i, feats in enumerate(alt_feats):
                expected = full[2 + i : 3 + i]
                assert (feats - expected).abs().max().item() <= 1e-5 * scale, CASES[i]
                assert (expected - full[CASES[i][0]]).abs().max().item() > 1e-2 * scale
    finally:
        model.conv_method = "auto"


@pytest.mark.parametrize("method", ["direct", "fft"])
@pytest.mark.parametrize(
    ("config", "length", "cases", "reaching"),
    [(SMALL, LENGTH, CASES, 3), (SHORT, 1201, SHORT_CASES, len(SHORT_CASES))],
    ids=["8201-nt", "1201-nt"],
)
def test_probabilities_equal_full_forwards_of_the_alt_windows(
    model, config, length, cases, reaching, method
):
    model = model if config == SMALL else random_model(config)
    ref = random_tokens(2, length, seed=2)
    alt = substituted(ref, cases)
    rows, spans = [row for row, _ in cases], [span for _, span in cases]
    model.conv_method = method
    try:
        with torch.inference_mode():
            probs = model.postprocess(model.forward_substituted(ref, alt, rows, spans))
            expected = model.postprocess(model(torch.cat([ref, alt])))
    finally:
        model.conv_method = "auto"
    assert probs.shape == (2 + len(cases), 201, 18)
    assert (probs - expected).abs().max().item() <= 1e-5
    changed = (expected[2:] - expected[rows]).abs().amax(dim=(1, 2))
    assert (changed[:reaching] > 1e-3).all(), changed  # the comparison is not vacuous


def test_score_windows_uses_the_substitutions_and_keeps_the_numbers(model):
    ref = random_tokens(2, LENGTH, seed=3).numpy().astype(np.uint8)
    alt = substituted(torch.from_numpy(ref).long()).numpy().astype(np.uint8)
    tokens = np.concatenate([alt[:3], ref, alt[3:]])  # ALTs before and after their REFs
    rows = [3 + row for row, _ in CASES]  # REF rows of the ALTs in ``tokens``
    alt_rows = [0, 1, 2, *range(5, 5 + len(CASES) - 3)]
    substitutions = {a: (r, *span) for a, r, (_, span) in zip(alt_rows, rows, CASES, strict=True)}
    plain = score_windows(model, tokens, batch_size=3)
    # batch 3: a REF with its first two ALTs per call; its further ALTs are plain windows
    incremental = score_windows(model, tokens, batch_size=3, substitutions=substitutions)
    assert np.abs(incremental - plain).max() <= 1e-5


def test_models_without_reuse_give_plain_forwards():
    model = StandInModel(flank=50)
    ref = random_tokens(2, 201, seed=4)
    alt = ref[[1]].clone()
    alt[0, 100] = (alt[0, 100] + 1) % 4
    with torch.inference_mode():
        out = model.forward_substituted(ref, alt, [1], [(100, 101)])
        assert torch.equal(out, model(torch.cat([ref, alt])))
    tokens = torch.cat([ref, alt]).numpy().astype(np.uint8)
    assert np.array_equal(
        score_windows(model, tokens, 2, substitutions={2: (1, 100, 101)}),
        score_windows(model, tokens, 2),
    )


def test_an_alt_that_differs_outside_its_span_is_refused(model):
    ref = random_tokens(1, LENGTH, seed=5)
    alt = ref.clone()
    alt[0, 4100] = (alt[0, 4100] + 1) % 4
    with pytest.raises(ValueError, match="outside its span"):
        model.forward_substituted(ref, alt, [0], [(4101, 4102)])
    with pytest.raises(ValueError, match="out of range"):
        model.forward_substituted(ref, alt, [1], [(4100, 4101)])


def test_window_set_records_the_changed_span():
    windows = WindowSet()
    ref = np.array([0, 1, 2, 3, 0, 1, 2, 3], dtype=np.uint8)
    ref_slot = windows.add(ref)
    mnv = ref.copy()
    mnv[[2, 4]] = 0, 3  # the span covers the unchanged base between
    mnv_slot = windows.add(mnv, ref_slot)
    assert windows.substitutions == {mnv_slot: (ref_slot, 2, 5)}
    assert windows.add(ref.copy(), ref_slot) == ref_slot  # ALT == REF: the same window
    windows.add(np.concatenate([ref, [1]]).astype(np.uint8), ref_slot)  # an indel: full pass
    minus = windows.add(ref[::-1].copy())
    minus_alt = windows.add(mnv[::-1].copy(), minus)
    assert windows.substitutions[minus_alt] == (minus, 3, 6)  # oriented window coordinates
    assert windows.add(mnv) == mnv_slot  # now a REF window too: scored in full
    assert set(windows.substitutions) == {minus_alt}


# An SNV record with two ALTs in STK11 (+ only): one REF window of 8,201 nt and two ALTs (the
# published flank: a shorter window would let the changed span grow to the whole window).
USE_VCF = "19\t1207202\t.\tA\tG,C\t.\t.\t.\n"


def _conv_rows(model, records, annotation) -> Counter:
    """Rows (windows) the dilated encoder convolutions see, by input length."""
    seen: Counter = Counter()
    original = sptransformer.same_conv1d

    def counting(x, *args, **kwargs):
        seen[x.shape[-1]] += x.shape[0]
        return original(x, *args, **kwargs)

    sptransformer.same_conv1d = counting
    try:
        settings = Settings("sptransformer", 100, False, model.flank)
        score_records(records, annotation, settings, model, batch_size=4)
    finally:
        sptransformer.same_conv1d = original
    return seen


@pytest.mark.slow  # about 11 s of CPU: two passes of three 8,201-nt windows
def test_the_variant_stage_uses_the_incremental_alt_pass(model, tmp_path):
    """Counted, not timed: through the variant stage's own path (records -> windows ->
    ``score_windows`` -> ``forward_substituted``) the SNV ALT windows' dilated convolutions run
    on spans only, never on the whole window; the REF window runs in full. With the reuse
    switched off the same record puts both ALTs through full-length convolutions."""
    genes, exons = tmp_path / "genes.parquet", tmp_path / "exons.parquet"
    select_genes(EXAMPLE_GTF, EXAMPLE_FASTA, genes, tmp_path / "regions.parquet", out_exons=exons)
    vcf = tmp_path / "in.vcf"
    vcf.write_text(
        "##fileformat=VCFv4.2\n##contig=<ID=19>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
        + USE_VCF
    )
    records = read_records(vcf)
    annotation = Annotation.load(str(EXAMPLE_FASTA), str(genes), str(exons))
    length = LENGTH
    convs = 2 * 2 * len(model.feature_encoders[0].resblocks)  # 2 convs a block, 2 encoders
    seen = _conv_rows(model, records, annotation)
    assert seen[length] == convs  # the REF window, once
    span_positions = sum(n * rows for n, rows in seen.items() if n < length)
    full_alts = 2 * convs * length
    assert 0 < span_positions < 0.3 * full_alts, span_positions / full_alts
    model.reuses_reference = False
    try:
        plain = _conv_rows(model, records, annotation)
    finally:
        del model.reuses_reference
    assert plain[length] == 3 * convs and sum(plain.values()) == 3 * convs
