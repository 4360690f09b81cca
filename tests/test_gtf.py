"""The one GTF attribute parser (sptx_pipeline.gtf) that genes, transcripts and plot share."""

from __future__ import annotations

import pytest

from sptx_pipeline.gtf import attributes, check_fields, first


def test_quoted_bare_and_repeated_values():
    text = 'gene_id "ENSG1.2"; exon_number 3; tag "basic"; tag "Ensembl_canonical"; level 2;'
    values = attributes(text)
    assert values["gene_id"] == ["ENSG1.2"] and values["exon_number"] == ["3"]
    assert values["tag"] == ["basic", "Ensembl_canonical"]
    assert first(values, "transcript_id", "gene_id") == "ENSG1.2"
    assert first(values, "transcript_id", default="?") == "?"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (["chr1", "s", "gene", "5", "4", ".", "+", ".", 'gene_id "g"'], "must be >= 1 and <= end"),
        (["chr1", "s", "gene", "1", "4", ".", "*", ".", 'gene_id "g"'], "strand must be"),
        (["chr1", "s", "gene", "1", "4", ".", "+", ".", 'gene_id "g'], "cannot parse attributes"),
        (["chr1", "s", "gene", "1", "4"], "expected 9 tab-separated fields"),
    ],
)
def test_a_bad_line_says_what_is_wrong(fields, message):
    with pytest.raises(ValueError, match=message):
        check_fields(fields)
