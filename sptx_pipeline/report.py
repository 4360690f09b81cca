"""``sptx report``: one self-contained HTML file of a scored variant set.

Opened from disk with no network: the run's provenance and a summary, a table of every result
row (click a header to sort), and the top ``N`` variants by their largest delta score, each with
its ``sptx plot-variant`` picture (PNG inlined) and an igv.js view of its region. igv.js (the
bundled release, ``browse.igv_js``) is inlined once; each view's data are inlined as
gzip+base64 ``data:`` URLs: the region's sequence, acceptor/donor of both strands as bedGraph
(read from ``tracks/`` when written), the selected genes and the region's records of
``variants.vcf.gz``.

igv-reports (PyPI) builds similar pages but fetches igv.js from a CDN when the page is opened
and has no notion of this pipeline's picture or tables, so it is not used here.
"""

from __future__ import annotations

import base64
import gzip
import html
import io
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pybigtools
import pysam

from .atomic import atomic_path, remove_stale
from .browse import genes_bed, igv_js
from .errors import MissingInputError
from .hub import SPLICE_COLORS, track_files
from .options import DEFAULT_DEVICE, Device
from .plot_variant import _gene_exons, _variants_file, draw_variant, variant_effects
from .results import read_provenance
from .runtime import ModelSpec
from .variant_effects import DELTA_KEYS

log = logging.getLogger(__name__)

DEFAULT_TOP = 10
VIEW_PAD = 150  # bases each side of a variant in its igv.js view
MAX_TABLE_ROWS = 20_000
TABLE_COLUMNS = ["chrom", "pos", "id", "ref", "alt", "gene_name", "strand", "status"]


def _data_url(data: bytes, kind: str = "application/gzip") -> str:
    return f"data:{kind};base64," + base64.b64encode(gzip.compress(data, mtime=0)).decode()


def _with_max(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["ds_max"] = frame[[f"ds_{k}" for k in DELTA_KEYS]].max(axis=1)
    return frame


def top_variants(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    """The ``n`` scored rows with the largest ``ds_max`` (ties: splice score, then position)."""
    scored = _with_max(frame[frame["status"] == "ok"])
    keys = ["ds_max"] + (["splice_score"] if "splice_score" in scored else [])
    order = scored.sort_values(keys + ["pos"], ascending=[False] * len(keys) + [True])
    return order.head(n)


def _table(frame: pd.DataFrame) -> str:
    frame = _with_max(frame)
    tissues = [c[5:] for c in frame.columns if c.startswith("flag_")]
    columns = TABLE_COLUMNS + ["ds_max"] + [f"ds_{k}" for k in DELTA_KEYS]
    columns += [f"dp_{k}" for k in DELTA_KEYS]
    if "splice_score" in frame:
        columns.append("splice_score")
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    head += "<th>flagged tissues</th>" if tissues else ""
    rows = []
    for row in frame.head(MAX_TABLE_ROWS).itertuples(index=False):
        values = row._asdict()
        cells = []
        for column in columns:
            value = values[column]
            if isinstance(value, float):
                text = "" if np.isnan(value) else f"{value:.3f}"
            else:
                text = "" if value is None or value is pd.NA else str(value)
            cells.append(f"<td>{html.escape(text)}</td>")
        if tissues:
            flagged = [t for t in tissues if values[f"flag_{t}"] is True]
            cells.append(f"<td>{html.escape(', '.join(flagged))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    note = ""
    if len(frame) > MAX_TABLE_ROWS:
        note = f"<p>The first {MAX_TABLE_ROWS:,} of {len(frame):,} rows are shown.</p>"
    return (
        f'{note}<table id="variants"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _bedgraph(path: Path, chrom: str, start0: int, end0: int) -> bytes:
    """bedGraph of ``path`` over ``[start0, end0)`` (0-based), from its bigWig entries."""
    with pybigtools.open(str(path)) as reader:
        if chrom not in reader.chroms():
            return b""
        lines = [f"{c}\t{s}\t{e}\t{v:.4g}" for c, s, e, v in _records(reader, chrom, start0, end0)]
    return ("\n".join(lines) + "\n").encode() if lines else b""


def _records(reader: Any, chrom: str, start0: int, end0: int) -> list[tuple[str, int, int, float]]:
    return [(chrom, int(s), int(e), float(v)) for s, e, v in reader.records(chrom, start0, end0)]


def _vcf_region(path: Path, chrom: str, start0: int, end0: int) -> bytes:
    with pysam.VariantFile(str(path)) as vcf:
        lines = [str(vcf.header)]
        if chrom in vcf.header.contigs:
            lines += [str(rec) for rec in vcf.fetch(chrom, start0, end0)]
    return "".join(lines).encode()


def _igv_config(results: Path, fasta: str, row: pd.Series) -> dict[str, Any]:
    """igv.js config of one variant's region with every piece of data inlined."""
    chrom, pos = str(row["chrom"]), int(row["pos"])
    with pysam.FastaFile(fasta) as genome:
        fasta_chrom = chrom if chrom in genome.references else f"chr{chrom.removeprefix('chr')}"
        length = genome.get_reference_length(fasta_chrom)
        start0, end0 = max(pos - 1 - VIEW_PAD, 0), min(pos + VIEW_PAD, length)
        sequence = genome.fetch(fasta_chrom, start0, end0)
    header = f">{fasta_chrom}:{start0 + 1}-{end0} @len={length}\n"
    tracks: list[dict[str, Any]] = []
    bed = b"\n".join(
        line
        for line in genes_bed(results).splitlines()
        if line.split(b"\t")[0] == fasta_chrom.encode()
    )
    if bed:
        tracks.append(
            {
                "name": "genes",
                "type": "annotation",
                "format": "bed",
                "url": _data_url(bed + b"\n"),
                "displayMode": "EXPANDED",
                "indexed": False,
            }  # fmt: skip
        )
    files = track_files(results / "tracks") if (results / "tracks").is_dir() else {}
    for channel in ("acceptor", "donor"):
        for strand in ("+", "-"):
            if (channel, strand) not in files:
                continue
            data = _bedgraph(
                results / "tracks" / files[(channel, strand)], fasta_chrom, start0, end0
            )
            if data:
                tracks.append(
                    {"name": f"{channel} {strand}", "type": "wig", "format": "bedgraph",
                     "url": _data_url(data), "color": f"rgb({SPLICE_COLORS[channel]})",
                     "min": 0, "max": 1, "autoscale": False, "height": 45, "indexed": False}
                )  # fmt: skip
    vcf = results / "variants.vcf.gz"
    if vcf.is_file() and Path(f"{vcf}.tbi").is_file():
        tracks.append(
            {"name": "variants", "type": "variant", "format": "vcf", "indexed": False,
             "url": _data_url(_vcf_region(vcf, chrom, start0, end0)), "displayMode": "EXPANDED"}
        )  # fmt: skip
    return {
        "reference": {
            "id": fasta_chrom,
            "fastaURL": _data_url(header.encode() + sequence.encode() + b"\n"),
            "indexed": False,
        },  # fmt: skip
        "locus": f"{fasta_chrom}:{max(pos - 60, start0 + 1)}-{min(pos + 60, end0)}",
        "tracks": tracks,
        "showNavigation": True,
        "loadDefaultGenomes": False,  # igv.js would fetch its genome list from igv.org
    }


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return base64.b64encode(buffer.getvalue()).decode()


STYLE = """body{font-family:sans-serif;margin:16px;max-width:1400px}
table{border-collapse:collapse;font-size:12px} th,td{border:1px solid #ccc;padding:2px 5px}
th{cursor:pointer;background:#eee;position:sticky;top:0} .variant{margin:24px 0}
.scroll{max-height:480px;overflow:auto} img{max-width:100%}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 16px} dt{font-weight:bold}
dd{margin:0}"""

SORT = """document.querySelectorAll("#variants th").forEach(function (th, column) {
  th.addEventListener("click", function () {
    const body = document.querySelector("#variants tbody");
    const rows = Array.from(body.rows);
    const up = th.dataset.up !== "1"; th.dataset.up = up ? "1" : "0";
    rows.sort(function (a, b) {
      const x = a.cells[column].textContent, y = b.cells[column].textContent;
      const nx = parseFloat(x), ny = parseFloat(y);
      const c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return up ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});"""

VIEWS = """window.sptxReport = {ready: 0, errors: [], browsers: []};
(async function () {
  for (const view of SPTX_VIEWS) {
    try {
      const b = await igv.createBrowser(document.getElementById(view.div), view.config);
      window.sptxReport.browsers.push(b); window.sptxReport.ready += 1;
    } catch (error) { window.sptxReport.errors.push(String(error)); }
  }
})();"""


def write_report(
    results: str | os.PathLike,
    output: str | os.PathLike,
    top: int = DEFAULT_TOP,
    model: ModelSpec | None = None,
    device: Device = DEFAULT_DEVICE,
) -> Path:
    """Write the report of ``results/variants.parquet`` to ``output`` (atomically)."""
    path = _variants_file(results)
    folder = path.parent
    frame = pd.read_parquet(path)
    prov = read_provenance(path)
    fasta = prov.get("inputs", {}).get("fasta", "")
    if not Path(fasta).is_file():
        raise MissingInputError(f"the run's FASTA {fasta} is not there any more")
    remove_stale(output)
    statuses = frame["status"].value_counts().to_dict()
    scored = _with_max(frame[frame["status"] == "ok"])
    summary = {
        "records": int(frame["record"].nunique()),
        "result rows (record x ALT x gene)": len(frame),
        "genes": int(frame["gene_id"].nunique()),
        **{f"status {k}": int(v) for k, v in sorted(statuses.items())},
        **{f"rows with DS max >= {t}": int((scored["ds_max"] >= t).sum()) for t in (0.2, 0.5, 0.8)},
    }
    sections, views = [], []
    for i, row in enumerate(top_variants(frame, top).itertuples(index=False)):
        row_s = pd.Series(row._asdict())
        text = f"{row.chrom}:{row.pos}:{row.ref}>{row.alt}"
        effects = variant_effects(folder, text, model, device)
        effect = next(e for e in effects if e.row["gene_id"] == row.gene_id)
        image = _png(draw_variant(effect, _gene_exons(folder, row.gene_id)))
        views.append({"div": f"igv{i}", "config": _igv_config(folder, fasta, row_s)})
        sections.append(
            f'<div class="variant"><h3>{i + 1}. {html.escape(text)} in '
            f"{html.escape(str(row.gene_name))} (DS max {row.ds_max:.2f})</h3>"
            f'<img alt="{html.escape(text)}" src="data:image/png;base64,{image}">'
            f'<div id="igv{i}"></div></div>'
        )
    provenance = html.escape(json.dumps(prov, indent=1, sort_keys=True, default=str))
    summary_html = "".join(f"<dt>{html.escape(k)}</dt><dd>{v:,}</dd>" for k, v in summary.items())
    settings = prov.get("settings", {})
    run = ", ".join(
        [f"model {prov.get('model', {}).get('source', '?')}"]
        + [f"{key} {settings.get(key)}" for key in ("convention", "distance", "mask")]
    )
    views_json = json.dumps(views).replace("</", "<\\/")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>sptx report: {html.escape(folder.name)}</title>
<style>{STYLE}</style></head><body>
<h1>Splicing effects of {summary["records"]:,} variant records</h1>
<p>{html.escape(run)}.</p>
<h2>Summary</h2><dl>{summary_html}</dl>
<h2>Top {len(sections)} variants by delta score</h2>{"".join(sections)}
<h2>All results</h2><p>Click a column header to sort.</p><div class="scroll">{_table(frame)}</div>
<h2>Provenance</h2><details><summary>variants.parquet provenance</summary>
<pre>{provenance}</pre></details>
<script>{igv_js().decode()}</script>
<script>{SORT}</script>
<script>const SPTX_VIEWS = {views_json};
{VIEWS}</script>
</body></html>
"""
    with atomic_path(output) as tmp:
        Path(tmp).write_text(page)
    log.info("wrote %s (%d rows, %d pictures)", output, len(frame), len(sections))
    return Path(output)
