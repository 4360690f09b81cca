"""``sptx browse`` in headless Chromium (marker ``browser``; .ci/browser-setup.sh installs
Debian's chromium and playwright, which drives it without downloading a browser).

The bundled example (GRCh37 chr19 FASTA and GTF of config/example) runs through the stages
with the stand-in model (SpTransformer's 18 channels, so the 15 tissue tracks are there too)
and a few variants; the page is opened at a gene and checked through igv.js's own state: every
bigWig, the genes and the variants are tracks, each returns features for the shown locus, and
a screenshot has non-background pixels in each data track's row.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from sptx_pipeline import browse
from sptx_pipeline.annotation import select_genes
from sptx_pipeline.inference import predict
from sptx_pipeline.merge import merge
from sptx_pipeline.testing import THREADED, WIDE_CHANNELS, StandInFactory
from sptx_pipeline.tiling import tile
from sptx_pipeline.tracks import write_tracks
from sptx_pipeline.variants import score_variants

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config" / "example"
GENES = ["GPX4", "ATP5D", "RPS15", "C2CD4C", "CBARP", "GAMT", "STK11"]
LOCUS = "CBARP"  # 1,228,286-1,238,026 (-), its 3' end overlapping STK11 (+)
CHROMIUM = os.environ.get("SPTX_CHROMIUM") or shutil.which("chromium") or ""


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """Results of the bundled example: genes, tiles, predictions, scores, tracks, variants."""
    out = tmp_path_factory.mktemp("example")
    fasta = out / "genome.fa"
    shutil.copy(EXAMPLE / "grch37_chr19_1-1500000.fa", fasta)
    gtf = EXAMPLE / "grch37_chr19_1-1500000.gtf"
    select_genes(gtf, fasta, out / "genes.parquet", out / "regions.parquet", genes=GENES,
                 out_exons=out / "exons.parquet")  # fmt: skip
    model = StandInFactory(channels=WIDE_CHANNELS)
    tile(fasta, out / "regions.parquet", out / "windows.zarr", out / "windows.parquet", 50, 100)
    predict(out / "windows.zarr", out / "predictions.zarr", model, device="cpu",
            cluster=THREADED, progress=False)  # fmt: skip
    merge(out / "windows.parquet", out / "predictions.zarr", out / "regions.parquet",
          out / "genes.parquet", out / "scores", out / "sites.parquet",
          provenance={"config": {"fasta": str(fasta), "gtf": str(gtf)}})  # fmt: skip
    write_tracks(out / "scores", fasta, out / "tracks", assembly="hg19")
    sequence = "".join(fasta.read_text().split("\n")[1:])
    rows = []
    for pos in (1228300, 1228431, 1230000):  # both genes' overlap and CBARP alone
        ref = sequence[pos - 1]
        alt = "A" if ref != "A" else "G"
        rows.append(f"chr19\t{pos}\t.\t{ref}\t{alt}\t.\t.\t.\n")
    vcf = out / "in.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n##contig=<ID=chr19>\n"
                   "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n" + "".join(rows))  # fmt: skip
    score_variants(vcf, fasta, out / "genes.parquet", model, out / "variants.parquet",
                   out / "variants.vcf.gz", exons=out / "exons.parquet", device="cpu",
                   cluster=THREADED, progress=False)  # fmt: skip
    return out


@pytest.fixture(scope="module")
def chromium():
    """Debian's chromium, headless, through playwright (one per module: playwright's sync API
    runs once per thread)."""
    if not CHROMIUM:
        pytest.fail("no chromium executable: run .ci/browser-setup.sh (or set SPTX_CHROMIUM)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page(example, chromium):
    """The page of ``sptx browse`` at ``LOCUS`` (no network needed)."""
    server = browse.start_server(browse.build_site(example, LOCUS))
    tab = chromium.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.on(  # everything must come from sptx browse: HPC nodes have no internet
        "request",
        lambda r: r.url.startswith("http://127.0.0.1:") or errors.append(f"fetched {r.url}"),
    )
    tab.goto(f"http://127.0.0.1:{server.server_port}/")
    tab.wait_for_function("window.sptx.ready || window.sptx.error !== null", timeout=90_000)
    assert tab.evaluate("window.sptx.error") is None
    yield tab, errors
    tab.close()
    server.shutdown()
    server.server_close()


STATE = """async () => {
  const browser = window.sptx.browser;
  const frame = browser.referenceFrameList[0];
  const tracks = [];
  for (const view of browser.trackViews) {
    const track = view.track;
    if (!["wig", "annotation", "variant"].includes(track.type)) continue;
    const end = frame.start + frame.bpPerPixel * view.viewports[0].viewportElement.clientWidth;
    const features = await track.getFeatures(frame.chr, frame.start, end, frame.bpPerPixel);
    const box = view.viewports[0].viewportElement.getBoundingClientRect();
    tracks.push({name: track.name, type: track.type, url: track.url, n: features.length,
                 box: [box.left, box.top, box.width, box.height]});
  }
  return {locus: browser.currentLoci(), tracks: tracks};
}"""


def test_every_track_is_loaded_at_the_gene(example, page):
    tab, errors = page
    state = tab.evaluate(STATE)
    assert state["locus"] in (["chr19:1228286-1238026"], "chr19:1228286-1238026")
    bigwigs = {f"results/tracks/{p.name}" for p in (example / "tracks").glob("*.bw")}
    assert len(bigwigs) == 2 * len(WIDE_CHANNELS)
    wig = {t["url"]: t["n"] for t in state["tracks"] if t["type"] == "wig"}
    assert set(wig) == bigwigs
    assert all(n > 0 for n in wig.values()), {u: n for u, n in wig.items() if not n}
    others = {t["type"]: t["n"] for t in state["tracks"] if t["type"] != "wig"}
    assert others["annotation"] >= 1  # CBARP's transcript at least
    assert others["variant"] == 3
    assert not errors


def test_screenshot_has_data_in_every_track_row(page):
    from matplotlib.image import imread

    tab, _ = page
    tab.add_style_tag(content=".igv-track-label { display: none !important; }")
    state = tab.evaluate(STATE)
    image = imread(io.BytesIO(tab.screenshot(full_page=True)), format="png")[..., :3]
    background = np.array([1.0, 1.0, 1.0])
    for track in state["tracks"]:
        left, top, width, height = (int(round(v)) for v in track["box"])
        row = image[top + 1 : top + height - 1, left + 1 : left + width - 1]
        drawn = np.any(np.abs(row - background) > 0.05, axis=-1)
        assert drawn.sum() > 100, (track["name"], int(drawn.sum()))  # seen: 450 and more


def test_report_opens_offline_with_table_and_igv_views(example, chromium, tmp_path):
    """``sptx report`` HTML from a file:// URL with networking disabled: the table has every
    result row and sorts, and each top variant's igv.js view loaded its inlined tracks."""
    import pandas as pd

    from sptx_pipeline.report import write_report

    report = write_report(example, tmp_path / "report.html", top=3,
                          model=StandInFactory(channels=WIDE_CHANNELS), device="cpu")  # fmt: skip
    rows = pd.read_parquet(example / "variants.parquet")
    context = chromium.new_context(offline=True)
    requested: list[str] = []

    def refuse(route):  # anything but the file itself would need a network
        requested.append(route.request.url)
        route.abort()

    context.route("http*://**/*", refuse)
    tab = context.new_page()
    tab.goto(report.as_uri())
    tab.wait_for_function(
        "window.sptxReport && window.sptxReport.ready + window.sptxReport.errors.length"
        " === SPTX_VIEWS.length",
        timeout=90_000,
    )
    assert tab.evaluate("window.sptxReport.errors") == []
    assert tab.evaluate("window.sptxReport.ready") == 3
    counts = tab.evaluate("""async () => {
      const out = [];
      for (const b of window.sptxReport.browsers) {
        const f = b.referenceFrameList[0];
        for (const v of b.trackViews) {
          if (!["wig", "annotation", "variant"].includes(v.track.type)) continue;
          const feats = await v.track.getFeatures(f.chr, f.start, f.end, f.bpPerPixel);
          out.push([v.track.type, feats.length]);
        }
      }
      return out;
    }""")
    assert {t for t, _ in counts} == {"wig", "annotation", "variant"}
    assert all(n > 0 for _, n in counts), counts
    assert tab.locator("#variants tbody tr").count() == len(rows)

    def positions() -> list[int]:
        cells = tab.locator("#variants tbody td:nth-child(2)").all_inner_texts()
        return [int(x) for x in cells]

    tab.locator("#variants th", has_text="pos").first.click()
    assert positions() == sorted(positions())
    tab.locator("#variants th", has_text="pos").first.click()
    assert positions() == sorted(positions(), reverse=True)
    assert requested == []
    context.close()
