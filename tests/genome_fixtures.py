"""Small synthetic genomes and annotations for the genes/tile tests (written, not mocked)."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_FASTA = REPO / "config" / "example" / "grch37_chr19_1-1500000.fa"
EXAMPLE_GTF = REPO / "config" / "example" / "grch37_chr19_1-1500000.gtf"
COMPLEMENT = str.maketrans("ACGTN", "TGCAN")


def run_bundled_example(base: Path, *config: str) -> Path:
    """The bundled config/config.yaml through Snakemake in ``base`` (its FASTA and GTF, outdir
    ``base/out``) with ``--config`` overrides; returns the outdir, failing with the output."""
    out = base / "out"
    command = [
        *(sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")),
        *("--directory", str(base), "--cores", "2"),
        *("--configfile", str(REPO / "config" / "config.yaml")),
        *("--config", f"fasta={EXAMPLE_FASTA}", f"gtf={EXAMPLE_GTF}", *config, f"outdir={out}"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=base)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def random_sequence(rng: np.random.Generator, length: int, soft_mask: bool = True) -> str:
    """Random ACGT with some N runs, IUPAC codes and soft-masked stretches."""
    seq = np.array(list("ACGT"))[rng.integers(0, 4, length)]
    if length > 50:
        for _ in range(max(1, length // 200)):
            start = int(rng.integers(0, length - 10))
            seq[start : start + int(rng.integers(1, 10))] = "N"
        for code in "RYKMSWBDHV":
            seq[int(rng.integers(0, length))] = code
        if soft_mask:
            start = int(rng.integers(0, length - 30))
            seq[start : start + 30] = np.char.lower(seq[start : start + 30])
    return "".join(seq)


def write_fasta(path: Path, contigs: dict[str, str], line: int = 60) -> Path:
    with open(path, "w") as handle:
        for name, seq in contigs.items():
            handle.write(f">{name} synthetic\n")
            for i in range(0, len(seq), line):
                handle.write(seq[i : i + line] + "\n")
    return path


def gtf_line(
    chrom, start, end, strand, gene_id, name=None, gene_type="protein_coding", feature="gene"
):
    """One GTF record; ``start``/``end`` 1-based inclusive."""
    attrs = f'gene_id "{gene_id}"; gene_name "{name or gene_id}"; gene_type "{gene_type}";'
    return f"{chrom}\tTEST\t{feature}\t{start}\t{end}\t.\t{strand}\t.\t{attrs}\n"


def write_gtf(path: Path, genes: list[tuple], compress: bool = False) -> Path:
    """``genes``: tuples (chrom, start, end, strand, gene_id[, name[, gene_type]]); each gene gets
    a gene, a transcript and an exon line, as in GENCODE."""
    text = "##format: gtf\n"
    for gene in genes:
        chrom, start, end, strand, gene_id, *rest = gene
        name = rest[0] if rest else gene_id
        gene_type = rest[1] if len(rest) > 1 else "protein_coding"
        text += gtf_line(chrom, start, end, strand, gene_id, name, gene_type)
        text += gtf_line(chrom, start, end, strand, gene_id, name, gene_type, "transcript")
        text += gtf_line(
            chrom, start, min(end, start + 5), strand, gene_id, name, gene_type, "exon"
        )
    if compress:
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


def reference_tokens(seq: str) -> list[int]:
    """Independent token encoding (dictionary, per base) to check the vectorised one against."""
    codes = {"A": 0, "C": 1, "G": 2, "T": 3}
    return [codes.get(base.upper(), 4) for base in seq]


def reference_window(seq: str, start: int, end: int, strand: str) -> str:
    """The window string as the model sees it, built with plain string operations."""
    text = "".join(seq[p].upper() if 0 <= p < len(seq) else "N" for p in range(start, end))
    text = "".join(base if base in "ACGT" else "N" for base in text)
    return text[::-1].translate(COMPLEMENT) if strand == "-" else text
