"""Token encoding, reverse complement, FASTA access (plain/bgzip) and contig reconciliation."""

import gzip
import logging

import numpy as np
import pytest
from Bio import bgzf

from sptx_pipeline.genome import (
    contig_lengths,
    encode,
    fetch_tokens,
    open_fasta,
    reconcile_contigs,
    reverse_complement,
)
from tests.genome_fixtures import random_sequence, reference_tokens, write_fasta


def test_encode_bases_soft_mask_and_iupac():
    tokens = encode("ACGTacgtNnRYKMSWBDHVrykmswbdhvU-.*")
    assert tokens.dtype == np.uint8
    assert tokens.tolist() == [0, 1, 2, 3, 0, 1, 2, 3] + [4] * 26


def test_encode_matches_reference_on_random_sequence():
    seq = random_sequence(np.random.default_rng(0), 20_000)
    assert encode(seq).tolist() == reference_tokens(seq)
    assert encode(seq.encode()).tolist() == reference_tokens(seq)


def test_reverse_complement_tokens():
    assert reverse_complement(encode("AACGTN")).tolist() == encode("NACGTT").tolist()
    assert reverse_complement(encode("GATTACA")).tolist() == encode("TGTAATC").tolist()
    batch = np.stack([encode("ACCGT"), encode("NNTGA")])
    assert reverse_complement(batch).tolist() == [
        encode("ACGGT").tolist(),
        encode("TCANN").tolist(),
    ]
    seq = encode(random_sequence(np.random.default_rng(1), 1000))
    assert np.array_equal(reverse_complement(reverse_complement(seq)), seq)


@pytest.fixture()
def genome(tmp_path):
    rng = np.random.default_rng(2)
    contigs = {
        "chr1": random_sequence(rng, 1234),
        "chrS": "ACGTa",
        "chrM": random_sequence(rng, 321),
    }
    return write_fasta(tmp_path / "g.fa", contigs), contigs


def test_fetch_tokens_pads_n_outside_chromosome(genome):
    path, contigs = genome
    fasta = open_fasta(path)
    assert contig_lengths(fasta) == {name: len(seq) for name, seq in contigs.items()}
    got = fetch_tokens(fasta, "chr1", -7, 20)
    assert got[:7].tolist() == [4] * 7
    assert got[7:].tolist() == reference_tokens(contigs["chr1"][:20])
    tail = fetch_tokens(fasta, "chr1", 1230, 1240)
    assert tail.tolist() == reference_tokens(contigs["chr1"][1230:]) + [4] * 6
    short = fetch_tokens(fasta, "chrS", -10, 15)  # contig of 5 bases, both ends padded
    assert short.tolist() == [4] * 10 + [0, 1, 2, 3, 0] + [4] * 10
    assert fetch_tokens(fasta, "chrS", 20, 30).tolist() == [4] * 10


def test_bgzip_fasta_reads_like_plain_and_builds_indexes(genome, tmp_path):
    path, contigs = genome
    bgz = tmp_path / "g.fa.gz"
    with bgzf.BgzfWriter(str(bgz), "wb") as out:
        out.write(path.read_bytes())
    plain, packed = open_fasta(path), open_fasta(bgz)
    assert (tmp_path / "g.fa.gz.fai").exists() and (tmp_path / "g.fa.gz.gzi").exists()
    assert contig_lengths(packed) == contig_lengths(plain)
    for name, seq in contigs.items():
        for start, end in [(-3, 10), (0, len(seq)), (len(seq) // 2, len(seq) + 4)]:
            assert np.array_equal(
                fetch_tokens(packed, name, start, end), fetch_tokens(plain, name, start, end)
            )


def test_plain_gzip_fasta_is_a_clear_error(genome, tmp_path):
    path, _ = genome
    gz = tmp_path / "plain.fa.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    with pytest.raises(ValueError, match="plain gzip.*bgzip"):
        open_fasta(gz)


def test_missing_fasta_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="FASTA file not found"):
        open_fasta(tmp_path / "absent.fa")


def test_reconcile_contig_names(caplog):
    fasta = ["chr1", "chr2", "chrM", "chrX", "10"]
    with caplog.at_level(logging.INFO, logger="sptx_pipeline.genome"):
        mapping = reconcile_contigs(["1", "chr2", "MT", "X", "chr10", "Y"], fasta)
    assert mapping == {
        "1": "chr1",
        "chr2": "chr2",
        "MT": "chrM",
        "X": "chrX",
        "chr10": "10",
        "Y": None,
    }
    assert "'1' of the annotation is 'chr1' in the FASTA" in caplog.text
    assert "'MT' of the annotation is 'chrM'" in caplog.text
    assert reconcile_contigs(["chrM", "chr1"], ["1", "MT"]) == {"chrM": "MT", "chr1": "1"}
