"""Reference outputs of the official SpliceAI 1.3.1 CLI for ``sptx variants``.

Builds input VCFs deterministically from the bundled GRCh37 chr19:1-1,500,000 FASTA and GTF, runs
the REAL official ``spliceai`` command on them with several ``-D``/``-M`` settings and writes its
outputs, untouched, to ``tests/data/variants/``. Nothing here scores anything itself: the outputs
are what the official tool wrote.

Run it from the repository root with a Python that has pyfaidx (the project's environment, or the
SpliceAI venv itself) and point ``--spliceai`` at the official CLI in a separate venv, e.g.::

    python -m venv /work/venvs/keras
    /work/venvs/keras/bin/pip install "tensorflow-cpu<2.16" "numpy<2" spliceai==1.3.1
    python validation/make_spliceai_variant_vcfs.py --spliceai /work/venvs/keras/bin/spliceai \\
        --shared ../shared/data

(``tensorflow-cpu<2.16`` keeps Keras 2, which loads SpliceAI's .h5 models; ``numpy<2`` keeps
``np.fromstring``, which spliceai 1.3.1 calls.) ``--shared`` is optional: the folder holding the
SpliceAI project's own ``spliceai_chr19_variants.vcf`` / ``..._expected.vcf`` pair, copied into the
output folder; either way the copy in the output folder is re-run with ``-D 50 -M 0`` and must come
out byte-identical to the expected file, which checks the environment.

Files written (see ``tests/data/variants/README.md``):

- ``spliceai_variants_input.vcf``: the edge-case input (contig ``19``); IDs name the cases.
- ``spliceai_D{50,500}_M{0,1}.vcf``: the official outputs for it, plus ``*.skipped.txt``, the
  tool's own "Skipping record (...)" log lines for that run.
- ``spliceai_chr_input.vcf`` / ``spliceai_chr_D50_M0.vcf``: a few records with contig ``chr19``.
- ``spliceai_symbolic_input.vcf``: symbolic ALTs (``<DEL>``); the official CLI with pysam 0.24 dies
  writing them, so its run leaves ``spliceai_symbolic_D50_M0.error.txt`` instead of a VCF.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pyfaidx import Fasta

REPO = Path(__file__).resolve().parent.parent
CONTIG_LENGTH_GRCH37_19 = 59128983
RUNS = [(50, 0), (50, 1), (500, 0), (500, 1)]
COMPLEMENT = {"A": "T", "C": "G", "G": "C", "T": "A"}
# The SNV ALT used everywhere unless a case needs another one: a transversion of the REF base.
TRANSVERSION = {"A": "C", "C": "A", "G": "T", "T": "G"}


@dataclass
class Gene:
    name: str
    strand: str
    start: int  # 1-based inclusive transcript span
    end: int
    exons: list[tuple[int, int]]  # 1-based inclusive, genomic order

    def intron(self, k: int) -> tuple[int, int]:
        """Genomic intron ``k`` (1-based, genomic order): (last base of exon k, first of k+1)."""
        return self.exons[k - 1][1], self.exons[k][0]

    def transcript_intron(self, k: int) -> int:
        """Number of genomic intron ``k`` in transcript order (5' to 3')."""
        return k if self.strand == "+" else len(self.exons) - k


def read_gtf(path: Path) -> dict[str, Gene]:
    genes: dict[str, Gene] = {}
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            continue
        f = line.split("\t")
        name = re.search(r'gene_name "([^"]+)"', f[8]).group(1)
        start, end = int(f[3]), int(f[4])
        if f[2] == "gene":
            genes[name] = Gene(name, f[6], start, end, [])
        elif f[2] == "exon":
            genes[name].exons.append((start, end))
    for g in genes.values():
        g.exons.sort()
    return genes


class Builder:
    """Collects (pos, id, ref, alts) records; REF always read from the FASTA unless told."""

    def __init__(self, fasta: Fasta, contig: str):
        self.seq = fasta[contig]
        self.records: list[tuple[int, str, str, str]] = []

    def ref(self, pos: int, length: int = 1) -> str:
        return self.seq[pos - 1 : pos - 1 + length].seq.upper()

    def add(self, pos: int, vid: str, alts: str, ref: str | None = None, length: int = 1):
        self.records.append((pos, vid, self.ref(pos, length) if ref is None else ref, alts))

    def snv(self, pos: int, vid: str):
        r = self.ref(pos)
        self.add(pos, vid, TRANSVERSION.get(r, "A"))

    def deletion(self, pos: int, length: int, vid: str):
        r = self.ref(pos, length)
        self.add(pos, vid, r[0], ref=r)

    def insertion(self, pos: int, inserted: str, vid: str):
        r = self.ref(pos)
        self.add(pos, vid, r + inserted, ref=r)


def canonical_ok(b: Builder, g: Gene, k: int) -> bool:
    e, s = g.intron(k)
    left, right = b.ref(e + 1, 2), b.ref(s - 2, 2)
    return (left, right) == (("GT", "AG") if g.strand == "+" else ("CT", "AC"))


def build_main(b: Builder, genes: dict[str, Gene]) -> None:
    stk11, gpx4, cbarp, gamt = (genes[n] for n in ("STK11", "GPX4", "CBARP", "GAMT"))
    reep6 = genes["REEP6"]

    # 1. SNVs on all four canonical intron bases (donor GT, acceptor AG; CT..AC on minus strand).
    #    GPX4 introns 4/5 flank its 25-bp exon 5 and STK11 intron 6/7 its 58-bp exon 7, so a
    #    loss at the exon's far end is not the boundary nearest the variant (matters for -M 1).
    picks = [(stk11, [1, 2, 6, 7]), (gpx4, [4, 5]), (cbarp, [1, 7]), (gamt, [2, 4])]
    for g, introns in picks:
        for k in introns:
            if not canonical_ok(b, g, k):
                print(f"note: {g.name} intron {k} is not GT-AG, skipped", file=sys.stderr)
                continue
            e, s = g.intron(k)
            t = g.transcript_intron(k)
            # (position, which canonical base in transcript terms)
            if g.strand == "+":
                sites = [(e + 1, "donor+1"), (e + 2, "donor+2"), (s - 2, "acc-2"), (s - 1, "acc-1")]
            else:
                sites = [(s - 1, "donor+1"), (s - 2, "donor+2"), (e + 2, "acc-2"), (e + 1, "acc-1")]
            for pos, what in sites:
                b.snv(pos, f"canon_{g.name}_{g.strand}_i{t}_{what}")

    # 2. SNVs near exon boundaries (offsets in genomic terms from the intron's first/last base).
    e, s = stk11.intron(1)
    for off in (0, -2, 5, 6, 10):  # e+off: exon last base, exon, intron +5/+6/+10
        b.snv(e + off, f"near_STK11_+_i1_donor_exonend{off:+d}")
    for off in (-3, -5, -10, 0, 2):  # s+off: polypyrimidine tract, first exon bases
        b.snv(s + off, f"near_STK11_+_i1_acc_exonstart{off:+d}")
    e, s = cbarp.intron(7)
    for off in (3, 8):
        b.snv(e + off, f"near_CBARP_-_acc_exonend{off:+d}")
    for off in (-4, 1):
        b.snv(s + off, f"near_CBARP_-_donor_exonstart{off:+d}")

    # 3. Deletions across exon boundaries (REF 2..20 bases, ALT = first base).
    e, s = stk11.intron(1)
    b.deletion(e - 4, 8, "del_STK11_exon1end_8")
    b.deletion(s - 6, 10, "del_STK11_exon2start_10")
    e, _ = gpx4.intron(5)
    b.deletion(e - 2, 5, "del_GPX4_exon5end_5")
    e, s = cbarp.intron(1)
    b.deletion(e - 1, 2, "del_CBARP_exonend_2")
    b.deletion(s - 11, 20, "del_CBARP_exonstart_20")
    e, s = gamt.intron(2)
    b.deletion(s - 3, 6, "del_GAMT_exonstart_6")

    # 4. Insertions near splice sites (REF one base, ALT 2..6 bases, and one long one).
    e, s = stk11.intron(2)
    b.insertion(e, "A", "ins_STK11_exonend_1")
    b.insertion(s - 3, "TTT", "ins_STK11_acc-3_3")
    e, s = cbarp.intron(7)
    b.insertion(e + 1, "GTAAG", "ins_CBARP_intron+1_5")
    e, s = gamt.intron(4)
    b.insertion(s - 1, "AG", "ins_GAMT_donor_2")
    e, s = gpx4.intron(4)
    b.insertion(s - 5, "CCTTTCCTTTCCTTTCCTTT", "ins_GPX4_acc-5_20")

    # 5. MNVs / complex (REF and ALT both longer than one base).
    e, s = stk11.intron(1)
    b.add(e + 1, "mnv_STK11_GT_2to2", "CA", length=2)
    e, s = gpx4.intron(4)
    r = b.ref(s - 3, 3)
    b.add(s - 3, "mnv_GPX4_acc_3to2", "TC", ref=r)
    e, s = cbarp.intron(1)
    r = b.ref(s - 2, 2)
    b.add(s - 2, "mnv_CBARP_donor_2to3", "GGA", ref=r)

    # 6. Multi-allelic records.
    e, s = stk11.intron(2)
    r = b.ref(e + 1)
    b.add(e + 1, "multi_STK11_snv_ins", f"{TRANSVERSION[r]},{r}TT", ref=r)
    r = b.ref(e - 1, 3)
    b.add(e - 1, "multi_STK11_del_mnv", f"{r[0]},{r[0]}A{r[2]}", ref=r)
    e, s = gamt.intron(2)
    r = b.ref(s - 1)
    alts = [x for x in "ACGT" if x != r][:2]
    b.add(s - 1, "multi_GAMT_snv_snv_ins", f"{alts[0]},{alts[1]},{r}GA", ref=r)
    e, s = gpx4.intron(5)
    r = b.ref(e + 1)
    b.add(e + 1, "multi_GPX4_snv_star", f"{TRANSVERSION[r]},*", ref=r)

    # 7. REF checks and letter case. The FASTA is soft-masked (lower case = repeats).
    e, s = stk11.intron(1)
    r = b.ref(e + 1)
    b.add(e + 1, "refmismatch_STK11_donor", "A", ref=TRANSVERSION[r])
    b.add(e + 2, "lowercase_ref_STK11_donor", "G", ref=b.ref(e + 2).lower())
    b.add(e + 2, "lowercase_alt_STK11_donor", "g")
    soft = next(p for p in range(e + 200, s) if b.seq[p - 1 : p].seq.islower())
    b.snv(soft, "softmasked_fasta_STK11_intron1")
    b.add(e + 1, "iupac_alt_STK11_donor", "R")
    b.add(e + 1, "n_alt_STK11_donor", "N")

    # 8. Star and missing ALTs (symbolic ALTs are in their own file: see build_symbolic).
    e, s = cbarp.intron(1)
    b.add(e + 2, "star_CBARP", "*")
    b.add(e + 2, "dash_alt_CBARP", "T-")
    b.add(s - 1, "missing_alt_CBARP", ".")

    # 9. Indels whose first ALT base differs from the REF's first base.
    e, s = stk11.intron(6)
    b.add(e + 1, "del_first_base_changed_STK11", "A", length=2)
    b.add(s - 1, "ins_first_base_changed_STK11", "TA")

    # 10. Intergenic: leading N region (REF N from the FASTA), between genes.
    for pos in (1, 2, 3, 30000):
        b.snv(pos, f"intergenic_Nregion_{pos}")
    b.snv(1100000, "intergenic_POLR2E_GPX4")

    # 11. Transcript-span boundaries (gene lookup uses POS only) and the two-strand overlap.
    b.snv(stk11.start - 1, "bound_STK11_txstart-1")
    b.snv(stk11.start, "bound_STK11_txstart")
    b.snv(stk11.start + 100, "bound_STK11_txstart+100")
    b.snv(cbarp.start - 1, "bound_CBARP_txstart-1_STK11only")
    b.snv(cbarp.start, "bound_CBARP_txstart_both")
    b.snv(stk11.end, "bound_STK11_txend_both")
    b.snv(stk11.end + 1, "bound_STK11_txend+1_CBARPonly")
    b.snv(cbarp.end - 50, "bound_CBARP_txend-50")
    b.snv(cbarp.end, "bound_CBARP_txend")
    b.snv(cbarp.end + 1, "bound_CBARP_txend+1")
    b.deletion(stk11.end - 2, 6, "del_across_STK11_txend")

    # 12. Near the FASTA's end (1,500,000): the window needs POS +- (5000 + D) bases.
    for pos in (1494500, 1494501, 1494950, 1494951, reep6.end - 20):
        b.snv(pos, f"fastaend_REEP6_{pos}")
    b.snv(1499990, "fastaend_intergenic_1499990")
    b.snv(1500000, "fastaend_intergenic_last_base")

    # 13. Long deletions over STK11 exon 2's acceptor: D=50 scores REF <= 100 bases, D=500 REF
    #     <= 1000; deletions longer than D+1 bases are the ones whose ALT track is shifted.
    _, s = stk11.intron(1)
    for length in (51, 52, 60, 100, 101, 300, 1000, 1001):
        b.deletion(s - length // 2, length, f"longdel_STK11_exon2_{length}")


def build_chr(b: Builder, genes: dict[str, Gene]) -> None:
    stk11, cbarp = genes["STK11"], genes["CBARP"]
    e, s = stk11.intron(1)
    b.snv(e + 1, "chr_canon_STK11_donor+1")
    b.add(e + 2, "chr_refmismatch_STK11", "A", ref=TRANSVERSION[b.ref(e + 2)])
    e, s = cbarp.intron(7)
    b.snv(e + 1, "chr_canon_CBARP_acc-1")
    b.snv(stk11.end, "chr_bound_STK11_txend_both")
    b.snv(1100000, "chr_intergenic")


def build_symbolic(b: Builder, genes: dict[str, Gene]) -> None:
    """Symbolic ALTs in a gene; with pysam 0.24 the official CLI cannot write such records."""
    e, _ = genes["GPX4"].intron(5)
    b.add(e + 1, "symbolic_multi_GPX4_snv_DEL", f"{TRANSVERSION[b.ref(e + 1)]},<DEL>")
    e, _ = genes["CBARP"].intron(1)
    b.add(e + 1, "symbolic_DEL_CBARP", "<DEL>")


def write_vcf(path: Path, contig: str, records: list[tuple[int, str, str, str]]) -> None:
    lines = [
        "##fileformat=VCFv4.2",
        "##reference=GRCh37/hg19",
        f"##contig=<ID={contig},length={CONTIG_LENGTH_GRCH37_19}>",
        '##ALT=<ID=DEL,Description="Deletion">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO",
    ]
    for pos, vid, ref, alts in sorted(records, key=lambda r: r[0]):
        lines.append(f"{contig}\t{pos}\t{vid}\t{ref}\t{alts}\t.\t.\t.")
    path.write_text("\n".join(lines) + "\n")


def run_spliceai(
    exe: str, vcf_in: Path, vcf_out: Path, fasta: Path, d: int, m: int, may_fail: bool = False
) -> bool:
    cmd = [exe, "-I", str(vcf_in), "-O", str(vcf_out), "-R", str(fasta), "-A", "grch37"]
    cmd += ["-D", str(d), "-M", str(m)]
    print("$ " + " ".join(cmd), flush=True)
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    took = time.time() - t0
    if proc.returncode != 0 and may_fail:
        # Keep what the tool said, not a partial output.
        tail = [ln for ln in proc.stderr.splitlines() if "step" not in ln][-12:]
        vcf_out.with_suffix(".error.txt").write_text(
            f"$ spliceai ... -D {d} -M {m}  (exit status {proc.returncode})\n"
            + "\n".join(tail)
            + "\n"
        )
        vcf_out.unlink(missing_ok=True)
        print(f"  {took:.0f} s, FAILED (exit status {proc.returncode}), see .error.txt", flush=True)
        return False
    if proc.returncode != 0 or not vcf_out.exists():
        sys.exit(f"spliceai failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    skipped = [ln for ln in proc.stderr.splitlines() if "Skipping record" in ln]
    vcf_out.with_suffix(".skipped.txt").write_text("".join(x + "\n" for x in skipped))
    print(f"  {took:.0f} s, {len(skipped)} 'Skipping record' warnings", flush=True)
    return True


def summarise(path: Path) -> dict[str, int]:
    n = {"records": 0, "with_info": 0, "entries": 0, "dot_entries": 0, "ds>=0.5": 0}
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            continue
        n["records"] += 1
        info = line.split("\t")[7]
        m = re.search(r"SpliceAI=([^;]+)", info)
        if not m:
            continue
        n["with_info"] += 1
        for entry in m.group(1).split(","):
            n["entries"] += 1
            f = entry.split("|")
            if f[2] == ".":
                n["dot_entries"] += 1
            elif max(float(x) for x in f[2:6]) >= 0.5:
                n["ds>=0.5"] += 1
    return n


def canonical_report(path: Path) -> list[str]:
    weak = []
    for line in path.read_text().splitlines():
        f = line.split("\t")
        if line.startswith("#") or not f[2].startswith("canon_"):
            continue
        m = re.search(r"SpliceAI=([^;]+)", f[7])
        best = max(float(x) for e in m.group(1).split(",") for x in e.split("|")[2:6]) if m else -1
        if best < 0.5:
            weak.append(f"{f[2]} max DS {best}")
    return weak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spliceai", required=True, help="the official spliceai CLI (in its venv)")
    ap.add_argument("--fasta", type=Path, default=REPO / "config/example/grch37_chr19_1-1500000.fa")
    ap.add_argument("--gtf", type=Path, default=REPO / "config/example/grch37_chr19_1-1500000.gtf")
    ap.add_argument("--out", type=Path, default=REPO / "tests/data/variants")
    ap.add_argument("--shared", type=Path, help="folder with spliceai_chr19_variants*.vcf to copy")
    ap.add_argument("--inputs-only", action="store_true", help="write the input VCFs, run nothing")
    args = ap.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory() as tmp:
        # A private copy of the FASTA so that pyfaidx's .fai lands outside the repository.
        fasta = Path(tmp) / args.fasta.name
        shutil.copyfile(args.fasta, fasta)
        fa = Fasta(str(fasta))
        contig = next(iter(fa.keys()))
        genes = read_gtf(args.gtf)

        main_b, chr_b, sym_b = Builder(fa, contig), Builder(fa, contig), Builder(fa, contig)
        build_main(main_b, genes)
        build_chr(chr_b, genes)
        build_symbolic(sym_b, genes)
        main_in, chr_in = out / "spliceai_variants_input.vcf", out / "spliceai_chr_input.vcf"
        sym_in = out / "spliceai_symbolic_input.vcf"
        write_vcf(main_in, "19", main_b.records)
        write_vcf(chr_in, "chr19", chr_b.records)
        write_vcf(sym_in, "19", sym_b.records)
        for p, b in ((main_in, main_b), (chr_in, chr_b), (sym_in, sym_b)):
            print(f"{p.name}: {len(b.records)} records")
        if args.inputs_only:
            return

        if args.shared:
            for name in ("spliceai_chr19_variants.vcf", "spliceai_chr19_variants_expected.vcf"):
                shutil.copyfile(args.shared / name, out / name)
        check = Path(tmp) / "shared_D50_M0.vcf"
        run_spliceai(args.spliceai, out / "spliceai_chr19_variants.vcf", check, fasta, 50, 0)
        expected = (out / "spliceai_chr19_variants_expected.vcf").read_bytes()
        same = check.read_bytes() == expected
        print(f"shared input, -D 50 -M 0: {'IDENTICAL to' if same else 'DIFFERS from'} expected")

        outputs = []
        for d, m in RUNS:
            dst = out / f"spliceai_D{d}_M{m}.vcf"
            run_spliceai(args.spliceai, main_in, dst, fasta, d, m)
            outputs.append(dst)
        dst = out / "spliceai_chr_D50_M0.vcf"
        run_spliceai(args.spliceai, chr_in, dst, fasta, 50, 0)
        outputs.append(dst)
        dst = out / "spliceai_symbolic_D50_M0.vcf"
        if run_spliceai(args.spliceai, sym_in, dst, fasta, 50, 0, may_fail=True):
            outputs.append(dst)

    print(f"\n{'file':28} records with_info entries dot_entries ds>=0.5")
    for p in outputs:
        n = summarise(p)
        print(f"{p.name:28} {n['records']:7} {n['with_info']:9} {n['entries']:7}", end=" ")
        print(f"{n['dot_entries']:11} {n['ds>=0.5']:7}")
    weak = canonical_report(outputs[0])
    print("canonical GT/AG SNVs with max DS < 0.5 at -D 50 -M 0:", weak or "none")
    if not same:
        sys.exit("the shared reference pair was not reproduced: check the environment")


if __name__ == "__main__":
    main()
