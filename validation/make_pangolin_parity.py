"""Write tests/data/pangolin_official.npz: the official Pangolin network's per-position outputs.

Runs the official network class (``pangolin/model.py`` of https://github.com/tkzeng/Pangolin,
imported from a checkout given on the command line; nothing of it is in this repository) with the
published weights on a few windows of the bundled chr19 region, and stores, per window, the mean
over the three replicas of each head's probability, as the official tool computes it
(``pangolin.py``'s ``compute_score`` and ``scripts/custom_usage.py``: the mean of
``model(x)[0][INDEX_MAP[head]]``, with INDEX_MAP 0:1, 1:2, 2:4, 3:5, 4:7, 5:8, 6:10, 7:11).

Usage (about 2 minutes per window on one CPU core)::

    git clone https://github.com/tkzeng/Pangolin /tmp/Pangolin
    python validation/make_pangolin_parity.py /tmp/Pangolin \\
        --weights ../shared/data/pangolin --out tests/data/pangolin_official.npz

Windows are built here with plain string operations, as the official tool's ``one_hot_encode``
does (A, C, G, T one-hot, N all zero, minus strand = reverse complement), with N beyond the contig:
``flank`` = 5000 bases each side of a 200-base target.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pyfaidx
import torch

REPO = Path(__file__).resolve().parents[1]
FASTA = REPO / "config" / "example" / "grch37_chr19_1-1500000.fa"
FLANK, TARGET = 5000, 200
# (0-based target start, strand): ATP5D exon 2 (+), C2CD4C's last exon acceptor (-), the first
# real bases after the contig's leading N run on both strands, and the contig end (N padding).
WINDOWS = [(1242420, "+"), (408320, "-"), (59900, "+"), (59900, "-"), (1499800, "+")]
OUTPUT_INDEX = {0: 1, 1: 2, 2: 4, 3: 5, 4: 7, 5: 8, 6: 10, 7: 11}  # head -> output row
CHANNELS = [
    f"{t}_{q}" for t in ("heart", "liver", "brain", "testis") for q in ("p_splice", "usage")
]


def window_string(fasta: pyfaidx.Fasta, chrom: str, start: int, strand: str) -> str:
    """The model's input for target ``[start, start + TARGET)``: N beyond the contig, reverse
    complement on the minus strand."""
    seq = str(fasta[chrom][:]).upper()
    text = "".join(
        seq[p] if 0 <= p < len(seq) and seq[p] in "ACGT" else "N"
        for p in range(start - FLANK, start + TARGET + FLANK)
    )
    return text[::-1].translate(str.maketrans("ACGTN", "TGCAN")) if strand == "-" else text


def one_hot(text: str) -> torch.Tensor:
    table = {"A": 0, "C": 1, "G": 2, "T": 3}
    x = np.zeros((4, len(text)), dtype=np.float32)
    for i, base in enumerate(text):
        if base in table:
            x[table[base], i] = 1.0
    return torch.from_numpy(x)[None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pangolin_checkout", type=Path, help="a clone of tkzeng/Pangolin")
    parser.add_argument("--weights", type=Path, help="folder of final.*.3.v2 (default: checkout's)")
    parser.add_argument(
        "--out", type=Path, default=REPO / "tests" / "data" / "pangolin_official.npz"
    )
    args = parser.parse_args()
    sys.path.insert(0, str(args.pangolin_checkout))
    from pangolin.model import AR, L, Pangolin, W  # the official network

    weights = args.weights or args.pangolin_checkout / "pangolin" / "models"
    torch.set_num_threads(1)
    fasta = pyfaidx.Fasta(str(FASTA))
    chrom = next(iter(fasta.keys()))
    inputs = torch.cat([one_hot(window_string(fasta, chrom, s, strand)) for s, strand in WINDOWS])
    out = np.zeros((len(WINDOWS), TARGET, len(CHANNELS)), dtype=np.float32)
    for head in range(len(CHANNELS)):
        per_replica = []
        for replica in (1, 2, 3):
            model = Pangolin(L, W, AR)
            state = torch.load(weights / f"final.{replica}.{head}.3.v2", map_location="cpu")
            model.load_state_dict(state)
            model.eval()
            with torch.no_grad():
                per_replica.append(model(inputs)[:, OUTPUT_INDEX[head], :].numpy())
        out[:, :, head] = np.mean(per_replica, axis=0)
        print(f"head {head} ({CHANNELS[head]}) done", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        chrom=np.array(chrom),
        target_start=np.array([s for s, _ in WINDOWS], dtype=np.int64),
        strand=np.array([strand for _, strand in WINDOWS]),
        flank=np.array(FLANK),
        channels=np.array(CHANNELS),
        probabilities=out,  # [window, position in window order, channel]
        torch_version=np.array(torch.__version__),
    )
    print(f"wrote {args.out}: {out.shape}, max per channel {out.max(axis=(0, 1))}")


if __name__ == "__main__":
    main()
