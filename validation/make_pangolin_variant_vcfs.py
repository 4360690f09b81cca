"""Reference outputs of the official Pangolin CLI (1.0.2) for a future ``pangolin`` convention.

Builds a small input VCF from the bundled GRCh37 chr19:1-1,500,000 FASTA (IDs name the cases:
SNVs at canonical sites of ATP5D (+) and C2CD4C (-), a deletion, an insertion, a 2-base MNV, a
complex record the tool skips, a multi-allelic record, a variant near a gene end, an intergenic
one and a REF mismatch), runs the REAL official ``pangolin`` command on it, and writes its outputs
and logs, untouched, to ``tests/data/variants/pangolin_*``. Nothing here scores anything.

The official tool needs its own environment (torch from the project's, the rest separate)::

    python -m venv --system-site-packages /tmp/pgvenv
    /tmp/pgvenv/bin/pip install pyvcf3 gffutils pyfastx
    git clone https://github.com/tkzeng/Pangolin /tmp/Pangolin
    ln -s /path/to/the/.v2/weights/folder /tmp/Pangolin/pangolin/models   # if not in the clone

One change to run it with pyvcf3 (pyvcf is unmaintained), in ``pangolin/pangolin.py``'s header
line only, nothing in its arithmetic: pyvcf3's ``vcf.parser._Info`` has a seventh field
``type_code``, so the call ``vcf.parser._Info("Pangolin", '.', "String", "...", '.', '.')`` gets
``vcf.parser._encode_type("String")`` as its last argument. Then, from the repository root::

    python validation/make_pangolin_variant_vcfs.py --pangolin /tmp/Pangolin \\
        --python /tmp/pgvenv/bin/python

The annotation database is built with the tool's ``scripts/create_db.py --filter None`` from the
bundled GTF (it has one canonical transcript per gene and no tags). Runs: ``-d 50`` with the
default mask (True) and ``-d 200 -m False``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pyfaidx

REPO = Path(__file__).resolve().parents[1]
FASTA = REPO / "config" / "example" / "grch37_chr19_1-1500000.fa"
GTF = REPO / "config" / "example" / "grch37_chr19_1-1500000.gtf"
OUT = REPO / "tests" / "data" / "variants"
RUNS = {"pangolin_d50_mask": [], "pangolin_d200_nomask": ["-d", "200", "-m", "False"]}


def other(base: str, preferred: str, fallback: str) -> str:
    return preferred if base != preferred else fallback


def input_vcf(path: Path) -> None:
    """The edge cases, REF bases read from the FASTA."""
    seq = pyfaidx.Fasta(str(FASTA))["chr19"]

    def b(pos: int, n: int = 1) -> str:
        return str(seq[pos - 1 : pos - 1 + n]).upper()

    records = [
        (1242454, b(1242454), other(b(1242454), "C", "T"), "atp5d_acceptor_snv"),
        (1242609, b(1242609), other(b(1242609), "A", "C"), "atp5d_donor_snv"),
        (408403, b(408403), other(b(408403), "A", "G"), "c2cd4c_acceptor_snv_minus"),
        (409005, b(409005), other(b(409005), "G", "T"), "c2cd4c_donor_snv_minus"),
        (408398, b(408398, 4), b(408398), "c2cd4c_deletion3"),
        (1242500, b(1242500), b(1242500) + "TTT", "atp5d_insertion3"),
        (1242453, b(1242453, 2), "CC", "atp5d_mnv2"),
        (1242460, b(1242460, 2), "GTA", "atp5d_complex_skipped"),
        (1244096, b(1244096), "C,G", "atp5d_multiallelic"),
        (1244820, b(1244820), other(b(1244820), "A", "C"), "atp5d_near_gene_end"),
        (1190000, b(1190000), other(b(1190000), "A", "C"), "intergenic"),
        (1242470, other(b(1242470), "A", "C"), "G", "ref_mismatch"),
    ]
    header = (
        "##fileformat=VCFv4.2\n##contig=<ID=chr19,length=1500000>\n"
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    )
    lines = [f"chr19\t{p}\t{i}\t{r}\t{a}\t.\t.\t." for p, r, a, i in records]
    path.write_text(header + "\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pangolin", type=Path, required=True, help="a clone of tkzeng/Pangolin")
    parser.add_argument("--python", default="python", help="the official tool's Python")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    vcf = OUT / "pangolin_input.vcf"
    input_vcf(vcf)
    env = {**os.environ, "PYTHONPATH": str(args.pangolin)}
    with tempfile.TemporaryDirectory() as tmp:
        gtf = Path(tmp) / "annot.gtf"
        shutil.copy(GTF, gtf)
        create_db = [args.python, str(args.pangolin / "scripts" / "create_db.py")]
        subprocess.run([*create_db, str(gtf), "--filter", "None"], check=True, env=env)
        for name, options in RUNS.items():
            command = [args.python, "-m", "pangolin.pangolin", *options, str(vcf), str(FASTA)]
            result = subprocess.run(
                [*command, str(Path(tmp) / "annot.db"), str(Path(tmp) / name)],
                capture_output=True,
                text=True,
                env=env,
            )
            (OUT / f"{name}.log.txt").write_text(result.stdout + result.stderr)
            result.check_returncode()
            shutil.copy(Path(tmp) / f"{name}.vcf", OUT / f"{name}.vcf")
            print(f"wrote {OUT / name}.vcf")


if __name__ == "__main__":
    main()
