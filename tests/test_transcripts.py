"""Canonical transcripts for variant masking: tag first, then most exonic bases; spans."""

from __future__ import annotations

from sptx_pipeline.annotation import select_genes
from sptx_pipeline.transcripts import canonical_exons
from sptx_pipeline.variants import Annotation
from tests.genome_fixtures import write_fasta


def _lines(gene, transcripts):
    out = [
        f'chr1\tT\tgene\t100\t2000\t.\t+\t.\tgene_id "{gene}"; gene_name "{gene}"; '
        'gene_type "protein_coding";\n'
    ]
    for tid, tags, exons in transcripts:
        attrs = f'gene_id "{gene}"; transcript_id "{tid}";' + "".join(
            f' tag "{tag}";' for tag in tags
        )
        lo, hi = min(s for s, _ in exons), max(e for _, e in exons)
        out.append(f"chr1\tT\ttranscript\t{lo}\t{hi}\t.\t+\t.\t{attrs}\n")
        out += [f"chr1\tT\texon\t{s}\t{e}\t.\t+\t.\t{attrs}\n" for s, e in exons]
    return out


def test_canonical_choice(tmp_path):
    long_exons = [(100, 600), (900, 2000)]
    gtf = tmp_path / "a.gtf"
    gtf.write_text(
        "".join(
            _lines("TAGGED", [
                ("T1", ["basic"], long_exons),
                ("T2", ["basic", "Ensembl_canonical"], [(300, 400), (800, 900)]),
                ("T3", ["MANE_Select"], [(200, 500), (700, 1000)]),
            ])
            + _lines("MANE", [("M1", [], long_exons), ("M2", ["MANE_Select"], [(150, 160)])])
            + _lines("PLAIN", [("P1", [], [(100, 200)]), ("P2", [], [(100, 150), (300, 500)])])
        )
    )  # fmt: skip
    exons = canonical_exons(gtf, ["TAGGED", "MANE", "PLAIN"])
    chosen = exons.groupby("gene_id")["transcript_id"].first().to_dict()
    assert chosen == {"TAGGED": "T2", "MANE": "M2", "PLAIN": "P2"}
    assert exons[exons["gene_id"] == "TAGGED"][["start", "end"]].values.tolist() == [
        [300, 400],
        [800, 900],
    ]


def test_spliceai_convention_uses_the_canonical_transcript_span(tmp_path):
    fasta = write_fasta(tmp_path / "g.fa", {"chr1": "ACGT" * 1000})
    gtf = tmp_path / "a.gtf"
    gtf.write_text("".join(_lines("G", [("T2", ["Ensembl_canonical"], [(300, 400), (800, 900)])])))
    genes, exons = tmp_path / "genes.parquet", tmp_path / "exons.parquet"
    select_genes(gtf, fasta, genes, tmp_path / "r.parquet", gene_types=[], out_exons=exons)
    annotation = Annotation.load(str(fasta), str(genes), str(exons))
    assert len(annotation.genes_at("chr1", 150)) == 1  # gene body 100..2000
    assert len(annotation.genes_at("chr1", 150, transcript=True)) == 0  # transcript 300..900
    gene = annotation.genes_at("chr1", 850, transcript=True).iloc[0]
    assert (gene["tx_start"], gene["tx_end"]) == (300, 900)
    assert annotation.boundaries["G"].tolist() == [300, 400, 800, 900]
