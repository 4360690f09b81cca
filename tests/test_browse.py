"""``sptx browse`` without a browser: byte ranges, the page's track list, the bundled igv.js
and one-line errors. (The page in headless Chromium: tests/test_browser.py, marker ``browser``.)
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from sptx_pipeline import browse
from sptx_pipeline.cli import main
from sptx_pipeline.tracks import write_tracks
from tests.results_fixtures import SPLICEAI_CHANNELS, build_run

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    run = build_run(tmp_path_factory.mktemp("run"), channels=SPLICEAI_CHANNELS)
    write_tracks(run.scores, run.outdir / "genome.fa", run.outdir / "tracks")
    site = browse.build_site(run.outdir, "BETA", run.outdir / "genome.fa")
    server = browse.start_server(site)
    yield run, site, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def _get(url: str, headers: dict[str, str] | None = None):
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, dict(response.headers), response.read()


def test_byte_ranges_of_a_bigwig(served):
    run, _, base = served
    data = (run.outdir / "tracks" / "acceptor.plus.bw").read_bytes()
    url = f"{base}/results/tracks/acceptor.plus.bw"
    status, headers, body = _get(url)
    assert status == 200 and body == data and headers["Accept-Ranges"] == "bytes"
    status, headers, body = _get(url, {"Range": "bytes=100-199"})
    assert status == 206 and body == data[100:200]
    assert headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    status, _, body = _get(url, {"Range": "bytes=-64"})
    assert status == 206 and body == data[-64:]
    status, _, body = _get(url, {"Range": f"bytes={len(data) - 10}-{len(data) + 500}"})
    assert status == 206 and body == data[-10:]
    with pytest.raises(urllib.error.HTTPError) as error:
        _get(url, {"Range": f"bytes={len(data)}-"})
    assert error.value.code == 416


def test_only_the_results_and_named_files_are_served(served):
    run, _, base = served
    fasta = (run.outdir / "genome.fa").read_bytes()
    assert _get(f"{base}/genome/genome.fa", {"Range": "bytes=0-9"})[2] == fasta[:10]
    for path in ("/results/../../etc/passwd", "/results/%2e%2e/%2e%2e/etc/passwd", "/etc/passwd"):
        with pytest.raises(urllib.error.HTTPError) as error:
            _get(base + path)
        assert error.value.code == 404


def test_page_lists_every_track_genes_and_locus(served):
    run, _, base = served
    page = _get(base + "/")[2].decode()
    config = json.loads(re.search(r"const config = (\{.*?\});\n", page, re.S)[1])
    urls = {t["url"] for t in config["tracks"]}
    want = {f"results/tracks/{p.name}" for p in (run.outdir / "tracks").glob("*.bw")}
    assert want and want <= urls
    assert "annotation/genes.bed" in urls
    assert config["locus"] == "chrA:200-650"  # BETA's body (results_fixtures.GENES)
    assert config["reference"]["fastaURL"] == "genome/genome.fa"
    bed = _get(base + "/annotation/genes.bed")[2].decode().splitlines()
    beta = next(line.split("\t") for line in bed if line.split("\t")[3] == "BETA")
    assert beta[:3] == ["chrA", "199", "650"] and beta[5] == "+"  # 0-based BED, 1-based GTF
    script = _get(base + "/igv.min.js")[2]
    assert browse.IGV_VERSION.encode() in script and len(script) > 1_000_000


def test_locus_forms(served):
    run, _, _ = served
    sizes = {"chrA": 2300, "chrB": 1250}
    assert browse.resolve_locus(run.outdir, "chrB:5-20", sizes) == "chrB:5-20"
    assert browse.resolve_locus(run.outdir, "ZETA", sizes) == "chrB:37-1163"
    assert browse.resolve_locus(run.outdir, "chrA:300:A>G", sizes) == "chrA:240-360"
    assert browse.resolve_locus(run.outdir, "19:300:A>G", {"chr19": 500}) == "chr19:240-360"


def test_bundled_igv_is_the_pinned_mit_release():
    script = (REPO / ".ci" / "bundle-igv.sh").read_text()
    assert re.search(r"^VERSION=(\S+)$", script, re.M)[1] == browse.IGV_VERSION
    licence = (REPO / "sptx_pipeline" / "web" / "igv.LICENSE").read_text()
    assert licence.startswith("The MIT License")


def test_bad_input_is_one_line_error(served, tmp_path, caplog):
    run, _, _ = served
    fasta = str(run.outdir / "genome.fa")
    cases = [
        ([str(run.outdir), "NOSUCHGENE", "--fasta", fasta], "unknown contig or gene"),
        ([str(run.outdir), "chrZ:1-10", "--fasta", fasta], "chrZ"),
        ([str(tmp_path), "--fasta", fasta], "run the tracks stage first"),
        ([str(run.outdir), "BETA", "--fasta", str(tmp_path / "x.fa")], "not found"),
    ]
    for args, message in cases:
        caplog.clear()
        assert main(["browse", *args, "--no-open", "--port", "0"]) == 1
        text = caplog.records[-1].getMessage()
        assert message in text and "\n" not in text, text
