"""``sptx browse``: the results folder in igv.js, served from this machine.

A small HTTP server on localhost serves the page, the igv.js bundled in the package
(``web/igv.min.js.gz``: the npm release ``IGV_VERSION``, rebuilt by ``.ci/bundle-igv.sh``; no
CDN, as HPC nodes have no internet), the results folder under ``/results/``, the run's FASTA
and its index under ``/genome/`` and the selected genes' canonical transcripts as BED under
``/annotation/``. Every file is served with HTTP byte ranges (``Range: bytes=...``, answered
``206 Partial Content``), which is how igv.js reads bigWig, indexed FASTA and tabix files in
pieces instead of whole.

The page shows every bigWig of ``tracks/`` (splice channels first, then tissues), the genes,
and, when the variants stage ran, ``variants.vcf.gz`` (its INFO fields on click).
"""

from __future__ import annotations

import gzip
import html
import json
import logging
import mimetypes
import os
import re
import threading
import webbrowser
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pandas as pd

from .channels import SPLICE_CHANNELS
from .errors import InputError, MissingInputError
from .genome import contig_aliases
from .hub import SPLICE_COLORS, TISSUE_COLORS, track_files
from .query import parse_region
from .results import read_provenance, scores_path
from .tracks import chrom_sizes

log = logging.getLogger(__name__)

IGV_VERSION = "3.8.10"  # the npm release bundled as web/igv.min.js.gz (.ci/bundle-igv.sh)
DEFAULT_PORT = 8000
CHUNK = 1 << 16
VARIANT_PAD = 60  # bases shown each side of a variant given as the locus
_VARIANT = re.compile(r"^(?P<chrom>[^:\s]+):(?P<pos>[\d,]+)(?::[A-Za-z]+>[A-Za-z]+)?$")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def igv_js() -> bytes:
    """The bundled igv.min.js."""
    packed = resources.files(__package__).joinpath("web", "igv.min.js.gz").read_bytes()
    return gzip.decompress(packed)


@dataclass
class Site:
    """What the server answers: fixed pages and files by URL path."""

    results: Path
    page: bytes
    files: dict[str, Path] = field(default_factory=dict)  # URL path -> file (besides results/)
    blobs: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # URL path -> (data, type)

    def lookup(self, url_path: str) -> Path | tuple[bytes, str] | None:
        """The file or in-memory content of ``url_path``; None when there is none."""
        if url_path in self.blobs:
            return self.blobs[url_path]
        if url_path in self.files:
            return self.files[url_path]
        if url_path.startswith("/results/"):
            root = self.results.resolve()
            path = (root / url_path[len("/results/") :]).resolve()
            if path.is_file() and path.is_relative_to(root):
                return path
        return None


def _find_fasta(results: Path, fasta: str | os.PathLike | None) -> Path:
    """``fasta`` if given, else the run's FASTA from the provenance of ``scores/`` (absolute,
    or relative to the directory above the results, where Snakemake runs) or of variants."""
    if fasta is not None:
        if not Path(fasta).is_file():
            raise MissingInputError(f"FASTA {fasta} not found")
        return Path(fasta)
    candidates: list[str] = []
    scores = sorted(scores_path(results).rglob("*.parquet"))
    if scores:
        prov = read_provenance(scores[0])
        candidates += [prov.get("genome", {}).get("fasta") or ""]
        candidates += [prov.get("run", {}).get("config", {}).get("fasta") or ""]
    if (results / "variants.parquet").is_file():
        candidates.append(read_provenance(results / "variants.parquet")["inputs"]["fasta"])
    for value in filter(None, candidates):
        for path in (Path(value), results.resolve().parent / value):
            if path.is_file():
                return path
    raise MissingInputError(f"the run's FASTA was not found from {results}; pass --fasta")


def genes_bed(results: Path) -> bytes:
    """BED12 of the selected genes: their canonical transcripts' exons (``exons.parquet``),
    else the gene body as one block."""
    path = results / "genes.parquet"
    if not path.is_file():
        return b""
    genes = pd.read_parquet(
        path, columns=["gene_id", "gene_name", "chrom", "start", "end", "strand"]
    )
    exons_path = results / "exons.parquet"
    exons = pd.read_parquet(exons_path) if exons_path.is_file() else None
    by_gene = dict(tuple(exons.groupby("gene_id"))) if exons is not None else {}
    lines = []
    for gene in genes.sort_values(["chrom", "start"]).itertuples():
        blocks = by_gene.get(gene.gene_id)
        if blocks is None or blocks.empty:
            spans = [(int(gene.start) - 1, int(gene.end))]
        else:
            spans = sorted(
                (int(s) - 1, int(e)) for s, e in zip(blocks.start, blocks.end, strict=True)
            )
        lo, hi = spans[0][0], max(e for _, e in spans)
        sizes = ",".join(str(e - s) for s, e in spans)
        starts = ",".join(str(s - lo) for s, _ in spans)
        fields = [gene.chrom, lo, hi, gene.gene_name, 0, gene.strand, lo, hi, 0, len(spans)]
        lines.append("\t".join(map(str, [*fields, sizes, starts])))
    return ("\n".join(lines) + "\n").encode()


def _rgb(color: str) -> str:
    return f"rgb({color})"


def track_configs(results: Path) -> list[dict[str, Any]]:
    """igv.js configs of every bigWig of ``tracks/`` and of ``variants.vcf.gz``."""
    tracks = results / "tracks"
    files = track_files(tracks) if tracks.is_dir() else {}
    if not files:
        raise MissingInputError(
            f"no bigWig tracks in {tracks}: run the tracks stage first "
            "(snakemake --cores all, or sptx tracks)"
        )
    channels = list(dict.fromkeys(channel for channel, _ in files))
    tissues = [c for c in channels if c not in SPLICE_CHANNELS]
    order = [c for c in ("acceptor", "donor", "no_splice") if c in channels]
    configs = []
    for channel in order + tissues:
        for strand in ("+", "-"):
            if (channel, strand) not in files:
                continue
            color = SPLICE_COLORS.get(channel) or TISSUE_COLORS[tissues.index(channel) % 15]
            configs.append(
                {
                    "name": f"{channel} {strand}",
                    "type": "wig",
                    "format": "bigwig",
                    "url": f"results/tracks/{files[(channel, strand)]}",
                    "color": _rgb(color),
                    "min": 0,
                    "max": 1,
                    "autoscale": False,
                    "height": 50 if channel in ("acceptor", "donor") else 28,
                }
            )
    vcf = results / "variants.vcf.gz"
    if vcf.is_file() and Path(f"{vcf}.tbi").is_file():
        configs.append(
            {
                "name": "variants",
                "type": "variant",
                "format": "vcf",
                "url": "results/variants.vcf.gz",
                "indexURL": "results/variants.vcf.gz.tbi",
                "displayMode": "EXPANDED",
            }
        )
    return configs


def resolve_locus(results: Path, locus: str | None, sizes: dict[str, int]) -> str:
    """``chrom:start-end`` for igv.js from a region, a gene name or id, or a variant
    (``chrom:pos:REF>ALT``, shown with ``VARIANT_PAD`` bases each side); default: the first
    selected gene."""
    genes = results / "genes.parquet"
    if locus is None:
        if not genes.is_file():
            return next(iter(sizes))
        first = pd.read_parquet(genes).iloc[0]
        return f"{first['chrom']}:{int(first['start'])}-{int(first['end'])}"
    variant = _VARIANT.match(locus.strip())
    if variant and locus.count(":") == 2:
        chrom, pos = variant["chrom"], int(variant["pos"].replace(",", ""))
        if chrom not in sizes:  # a VCF's 19 for the FASTA's chr19, or the reverse
            chrom = next((name for name in contig_aliases(chrom) if name in sizes), chrom)
        if chrom not in sizes:
            raise InputError(f"unknown contig {variant['chrom']!r} in {locus!r}")
        return f"{chrom}:{max(pos - VARIANT_PAD, 1)}-{pos + VARIANT_PAD}"
    region = parse_region(locus, set(sizes), genes)
    end = min(region.end, sizes[region.chrom])
    return f"{region.chrom}:{region.start}-{end}"


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:8px}} #status{{color:#555;font-size:small}}</style>
</head><body>
<div><b>{title}</b> <span id="status">loading igv.js {version}...</span></div>
<div id="igv"></div>
<script src="igv.min.js"></script>
<script>
window.sptx = {{ready: false, error: null, browser: null}};
const config = {config};
igv.createBrowser(document.getElementById("igv"), config).then(function (browser) {{
  window.sptx.browser = browser;
  window.sptx.ready = true;
  document.getElementById("status").textContent = "";
}}).catch(function (error) {{
  window.sptx.error = String(error);
  document.getElementById("status").textContent = "igv.js failed: " + error;
}});
</script></body></html>
"""


def build_site(
    results: str | os.PathLike, locus: str | None = None, fasta: str | os.PathLike | None = None
) -> Site:
    """The page and files of ``results``; raises for a folder without tracks, a missing
    FASTA or an unknown locus before anything is served."""
    results = Path(results)
    if not results.is_dir():
        raise MissingInputError(f"results folder {results} not found")
    tracks = track_configs(results)
    fasta_path = _find_fasta(results, fasta)
    sizes = chrom_sizes(fasta_path)  # also writes the .fai igv.js needs
    where = resolve_locus(results, locus, sizes)
    name = fasta_path.name
    reference: dict[str, Any] = {
        "id": name,
        "name": name,
        "fastaURL": f"genome/{name}",
        "indexURL": f"genome/{name}.fai",
    }
    files = {f"/genome/{name}": fasta_path, f"/genome/{name}.fai": Path(f"{fasta_path}.fai")}
    if Path(f"{fasta_path}.gzi").is_file():
        reference["compressedIndexURL"] = f"genome/{name}.gzi"
        files[f"/genome/{name}.gzi"] = Path(f"{fasta_path}.gzi")
    blobs = {"/igv.min.js": (igv_js(), "text/javascript")}
    bed = genes_bed(results)
    if bed:
        blobs["/annotation/genes.bed"] = (bed, "text/plain")
        tracks.insert(
            0,
            {
                "name": "genes",
                "type": "annotation",
                "format": "bed",
                "url": "annotation/genes.bed",
                "displayMode": "EXPANDED",
                "color": "rgb(40,40,40)",
            },
        )
    config = {
        "reference": reference,
        "locus": where,
        "tracks": tracks,
        "showSVGButton": False,
        "loadDefaultGenomes": False,  # igv.js would fetch its genome list from igv.org
    }
    text = json.dumps(config, indent=1).replace("</", "<\\/")
    title = html.escape(f"sptx browse: {results.resolve().name}")
    page = PAGE.format(title=title, version=IGV_VERSION, config=text).encode()
    blobs["/"] = blobs["/index.html"] = (page, "text/html; charset=utf-8")
    return Site(results, page, files, blobs)


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        """GET and HEAD with byte ranges over the site's files."""

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib name)
            log.debug("%s %s", self.address_string(), format % args)

        def do_HEAD(self) -> None:  # noqa: N802 (stdlib name)
            self._answer(body=False)

        def do_GET(self) -> None:  # noqa: N802
            self._answer(body=True)

        def _answer(self, body: bool) -> None:
            target = site.lookup(unquote(urlsplit(self.path).path))
            if target is None:
                self.send_error(HTTPStatus.NOT_FOUND)
                return
            if isinstance(target, tuple):
                data, kind = target
                size = len(data)
            else:
                data, kind = b"", mimetypes.guess_type(target.name)[0] or "application/octet-stream"
                size = target.stat().st_size
            first, last = 0, size - 1
            status = HTTPStatus.OK
            wanted = self.headers.get("Range")
            if wanted:
                span = _byte_range(wanted, size)
                if span is None:
                    self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                first, last = span
                status = HTTPStatus.PARTIAL_CONTENT
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(last - first + 1))
            self.send_header("Cache-Control", "no-store")
            if status == HTTPStatus.PARTIAL_CONTENT:
                self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
            self.end_headers()
            if not body:
                return
            if isinstance(target, tuple):
                self.wfile.write(data[first : last + 1])
                return
            with open(target, "rb") as handle:
                handle.seek(first)
                left = last - first + 1
                while left > 0:
                    chunk = handle.read(min(CHUNK, left))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    left -= len(chunk)

    return Handler


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """``(first, last)`` of a single ``bytes=`` range (RFC 9110), None if unsatisfiable."""
    match = _RANGE.match(header.strip())
    if not match or not (match[1] or match[2]):
        return None
    if not match[1]:  # suffix: the last N bytes
        n = int(match[2])
        return (max(size - n, 0), size - 1) if n > 0 and size > 0 else None
    first = int(match[1])
    last = min(int(match[2]), size - 1) if match[2] else size - 1
    return (first, last) if first <= last else None


def start_server(site: Site, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """A server for ``site`` answering in a background thread (``port`` 0: any free port)."""
    server = ThreadingHTTPServer((host, port), _handler(site))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True, name="sptx-browse").start()
    return server


def browse(
    results: str | os.PathLike,
    locus: str | None = None,
    fasta: str | os.PathLike | None = None,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    open_browser: bool = True,
) -> None:
    """Serve ``results`` until Ctrl-C, opening the page in the default web browser."""
    site = build_site(results, locus, fasta)
    try:
        server = ThreadingHTTPServer((host, port), _handler(site))
    except OSError as error:
        raise InputError(f"cannot listen on {host}:{port} ({error.strerror}); try --port") from None
    url = f"http://{host}:{server.server_port}/"
    log.info("serving %s at %s (Ctrl-C stops)", results, url)
    print(url, flush=True)
    if open_browser:
        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("stopped")
    finally:
        server.server_close()
