#!/usr/bin/env bash
# The pictures of docs/browsing.md, made by the commands that page documents, on the bundled
# example with SpliceAI's weights (the `spliceai` package), on a CPU (about 30 minutes on 2
# busy cores). Run from the repository root: docs/images/make_pictures.sh [WORKDIR]
set -euo pipefail
work=${1:-/tmp/sptx-pictures}
example=$PWD/config/example
mkdir -p "$work"

# 1. the workflow with SpliceAI, a track hub on hg19 and the variants of tests/data
snakemake --cores all --config model=spliceai outdir="$work/results" assembly=hg19 \
    "genes=[GPX4,ATP5D,RPS15,C2CD4C,CBARP,GAMT,STK11]" \
    vcf="$PWD/tests/data/variants/spliceai_chr19_variants.vcf"

# 2. SNVs at four annotated splice sites (GT and AG of GPX4 (+) and CBARP (-)), scored into a
#    results folder of their own (plot-variant reads genes/exons next to variants.parquet)
mkdir -p "$work/sites"
cp "$work/results/genes.parquet" "$work/results/exons.parquet" "$work/sites/"
printf '%s\n' '##fileformat=VCFv4.2' '##contig=<ID=chr19,length=1500000>' \
    "$(printf '#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO')" \
    "$(printf 'chr19\t1105184\tGPX4_acceptor\tG\tA\t.\t.\t.')" \
    "$(printf 'chr19\t1105280\tGPX4_donor\tG\tA\t.\t.\t.')" \
    "$(printf 'chr19\t1234189\tCBARP_donor\tC\tG\t.\t.\t.')" \
    "$(printf 'chr19\t1234331\tCBARP_acceptor\tC\tG\t.\t.\t.')" > "$work/sites.vcf"
sptx variants --vcf "$work/sites.vcf" --fasta "$example/grch37_chr19_1-1500000.fa" \
    --genes "$work/sites/genes.parquet" --exons "$work/sites/exons.parquet" --model spliceai \
    --out-parquet "$work/sites/variants.parquet" --out-vcf "$work/sites/variants.vcf.gz" \
    --device cpu --no-progress

# 3. the pictures
sptx plot-variant "$work/sites" "chr19:1105280:G>A" -o docs/images/plot_variant.png --device cpu
sptx report "$work/sites" -o "$work/sites_report.html" --top 4 --device cpu
python - "$work/results" docs/images/browse_cbarp.png <<'PY'
import shutil, sys
from playwright.sync_api import sync_playwright
from sptx_pipeline import browse

server = browse.start_server(browse.build_site(sys.argv[1], "CBARP"))
with sync_playwright() as p:
    chromium = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
    page = chromium.new_page(viewport={"width": 1200, "height": 700})
    page.goto(f"http://127.0.0.1:{server.server_port}/")
    page.wait_for_function("window.sptx.ready || window.sptx.error !== null", timeout=120_000)
    page.wait_for_timeout(1500)  # let the last track paint
    page.screenshot(path=sys.argv[2], full_page=True)
    chromium.close()
server.shutdown()
PY
python - "$work/sites_report.html" docs/images/report.png <<'PY'
import shutil, sys
from pathlib import Path
from playwright.sync_api import sync_playwright

with sync_playwright() as p:  # the report from disk, networking off
    chromium = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
    context = chromium.new_context(offline=True, viewport={"width": 1200, "height": 1300})
    page = context.new_page()
    page.goto(Path(sys.argv[1]).resolve().as_uri())
    page.wait_for_function("window.sptxReport.ready === SPTX_VIEWS.length", timeout=120_000)
    page.wait_for_timeout(1000)
    page.screenshot(path=sys.argv[2])
    chromium.close()
PY
echo "pictures written under docs/images; report: $work/sites_report.html"
