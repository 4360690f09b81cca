"""The ``sptx`` command line: one subcommand per pipeline stage, plus query, tracks and plot.

Each subcommand parses its arguments and calls the package function of that stage, so the same
code runs from Snakemake, the shell and a notebook.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from . import options
from .atomic import remove_stale, write_text
from .errors import SptxError

Subparsers = Any  # argparse's _SubParsersAction, private and generic


def _list(value: str) -> list[str]:
    return [item for item in value.split(",") if item]


def _call(module: str, function: str, positional: str) -> Callable[[argparse.Namespace], Any]:
    """A subcommand that calls ``sptx_pipeline.<module>.<function>``: the arguments named in
    ``positional`` (space-separated) in that order, every other option by its own name. The
    stage's module is imported only when its subcommand runs (``sptx --help`` stays fast)."""
    names = positional.split()

    def run(args: argparse.Namespace) -> Any:
        target = getattr(importlib.import_module(f".{module}", __package__), function)
        values = {k: v for k, v in vars(args).items() if k not in ("func", "command", "verbose")}
        keywords = {k: v for k, v in values.items() if k not in names}
        return target(*(values[n] for n in names), **keywords)

    return run


def _required(parser: argparse.ArgumentParser, *names: str) -> None:
    """Required path options ``--<name>`` (underscores written as dashes)."""
    for name in names:
        parser.add_argument("--" + name.replace("_", "-"), required=True)


def _add_genes(sub: Subparsers) -> None:
    p = sub.add_parser("genes", help="select gene bodies from a GTF")
    p.add_argument("--gtf", required=True)
    p.add_argument("--fasta", required=True, help="for contig names (1 vs chr1) and lengths")
    p.add_argument("--gene-types", type=_list, default=list(options.DEFAULT_GENE_TYPES))
    p.add_argument("--chromosomes", type=_list, default=[])
    p.add_argument("--genes", type=_list, default=[], help="gene ids or names")
    p.add_argument(
        "--missing-contigs",
        choices=options.MISSING_CONTIGS,
        default=options.DEFAULT_MISSING_CONTIGS,
    )
    _required(p, "out_genes", "out_regions")
    p.add_argument("--out-exons", help="also write the canonical transcripts' exons here")
    p.set_defaults(func=_call("annotation", "select_genes", "gtf fasta out_genes out_regions"))


def _add_tile(sub: Subparsers) -> None:
    p = sub.add_parser("tile", help="cut the fixed tile grid into token windows")
    _required(p, "fasta", "regions")
    p.add_argument("--flank", type=int, required=True)
    p.add_argument("--chunk-size", type=int, required=True)
    p.add_argument("--shard-size", type=int, default=options.DEFAULT_SHARD_SIZE)
    _required(p, "out_zarr", "out_parquet")
    p.set_defaults(func=_call("tiling", "tile", "fasta regions out_zarr out_parquet"))


def _add_model_info(sub: Subparsers) -> None:
    p = sub.add_parser("model-info", help="print a model's flank, channels and default chunk size")
    p.add_argument("--model", required=True)
    p.add_argument("--out", help="also write the JSON to this file (atomically)")
    p.set_defaults(func=_run_model_info)


def _run_model_info(args: argparse.Namespace) -> None:
    from .models import write_model_info

    print(write_model_info(args.model, args.out), end="")


def _add_random_checkpoint(sub: Subparsers) -> None:
    p = sub.add_parser(
        "random-checkpoint",
        help="write an SpTransformer with RANDOM weights (testing/offline demo only)",
        description="Write config.json + model.safetensors with random weights in multimolecule "
        "format. For tests and offline demos only: its predictions are meaningless.",
    )
    p.add_argument("directory")
    p.add_argument("--tiny", action="store_true", help="a small fast geometry (flank 200)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_run_random_checkpoint)


def _run_random_checkpoint(args: argparse.Namespace) -> None:
    from .models.random_checkpoint import TINY_CONFIG, write_random_checkpoint

    overrides = TINY_CONFIG if args.tiny else {}
    write_random_checkpoint(args.directory, seed=args.seed, **overrides)


def _add_predict(sub: Subparsers) -> None:
    p = sub.add_parser("predict", help="run the model over every shard of windows (Dask)")
    p.add_argument("--windows", required=True, help="windows.zarr")
    p.add_argument("--out", required=True, help="predictions.zarr")
    p.add_argument("--model", required=True)
    p.add_argument("--device", choices=options.DEVICES, default=options.DEFAULT_DEVICE)
    p.add_argument("--precision", choices=options.PRECISIONS, default=options.DEFAULT_PRECISION)
    p.add_argument("--batch-size", type=int, default=options.DEFAULT_BATCH_SIZE)
    p.add_argument(
        "--output-dtype", choices=options.OUTPUT_DTYPES, default=options.DEFAULT_OUTPUT_DTYPE
    )
    p.add_argument("--cluster", type=json.loads, default={}, help="cluster mapping as JSON")
    p.add_argument("--max-retries", type=int, default=options.DEFAULT_MAX_RETRIES)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--summary", help="also write the run summary (JSON) here when all shards are done"
    )
    _add_threads(p)
    p.add_argument(
        "--tune-threads",
        action="store_true",
        help="CPU workers pick their torch threads (up to --threads) by measuring; results may "
        "then differ from run to run in the last bit",
    )
    p.set_defaults(func=_run_predict)


def _run_predict(args: argparse.Namespace) -> None:
    from .inference import predict

    summary = predict(
        args.windows,
        args.out,
        args.model,
        device=args.device,
        precision=args.precision,
        batch_size=args.batch_size,
        output_dtype=args.output_dtype,
        cluster=args.cluster,
        max_retries=args.max_retries,
        progress=not args.no_progress,
        threads=args.threads,
        tune_threads=args.tune_threads,
    )
    record = summary.as_dict("windows")
    print(json.dumps(record))
    if args.summary:
        remove_stale(args.summary)
        write_text(args.summary, json.dumps(record, indent=1) + "\n")


def _add_merge(sub: Subparsers) -> None:
    p = sub.add_parser("merge", help="merge predictions into scores/ and sites.parquet")
    p.add_argument("--windows", required=True, help="windows.parquet")
    p.add_argument("--predictions", required=True, help="predictions.zarr")
    _required(p, "regions", "genes", "out_scores", "out_sites")
    p.add_argument("--sites-min-score", type=float, default=options.DEFAULT_SITES_MIN_SCORE)
    p.add_argument("--provenance", type=json.loads, default={}, help="extra provenance as JSON")
    p.add_argument(
        "--predictions-summary",
        help="predict's predictions.json: removed when a shard is missing or damaged, so that "
        "the workflow runs predict again",
    )
    p.add_argument("--workers", type=int, default=1, help="partitions merged in parallel")
    p.add_argument(
        "--delete-predictions",
        action="store_true",
        help="remove predictions.zarr once scores/ and sites.parquet are written",
    )
    p.set_defaults(
        func=_call("merge", "merge", "windows predictions regions genes out_scores out_sites")
    )


def _add_tracks(sub: Subparsers) -> None:
    p = sub.add_parser("tracks", help="write bigWig tracks per channel and strand")
    p.add_argument("--scores", required=True)
    p.add_argument("--fasta", required=True)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--channels", type=_list, default=[], help="comma-separated (default: all)")
    p.add_argument("--workers", type=int, default=1, help="bigWig files written in parallel")
    p.add_argument(
        "--bits",
        type=_bits,
        default=options.DEFAULT_TRACKS_BITS,
        help="round values to multiples of 2^-BITS (default %(default)s; 'exact': float32 as is)",
    )
    p.add_argument(
        "--assembly",
        default=options.DEFAULT_ASSEMBLY,
        help="UCSC assembly name (hg19, hg38, ...): also write the track hub OUT/hub.txt",
    )
    p.add_argument("--hub-email", default=options.DEFAULT_HUB_EMAIL, help="the hub's contact")
    p.set_defaults(func=_run_tracks)


def _bits(text: str) -> int | None:
    return None if text in ("exact", "null", "none") else int(text)


def _run_tracks(args: argparse.Namespace) -> None:
    from .tracks import write_tracks

    write_tracks(
        args.scores,
        args.fasta,
        args.out,
        channels=args.channels or None,
        workers=args.workers,
        bits=args.bits,
        assembly=args.assembly,
        hub_email=args.hub_email,
    )


def _add_query(sub: Subparsers) -> None:
    p = sub.add_parser("query", help="scores in a region or gene")
    p.add_argument("results", help="the pipeline's outdir")
    p.add_argument("region", help="chr19:1,206,000-1,210,000 (1-based, inclusive) or a gene")
    p.add_argument("--strand", choices=options.STRANDS)
    p.add_argument("--columns", type=_list, default=[])
    p.add_argument(
        "--min-score",
        type=float,
        help="minimum acceptor or donor probability (Pangolin: any tissue's P(splice))",
    )
    p.add_argument("--format", choices=options.QUERY_FORMATS, default=options.DEFAULT_QUERY_FORMAT)
    p.add_argument("-o", "--output", help="file to write (default: standard output)")
    p.add_argument(
        "--max-rows",
        type=int,
        default=options.DEFAULT_QUERY_TABLE_MAX_ROWS,
        help="most rows of the table format (csv, tsv and parquet are streamed, no limit)",
    )
    p.set_defaults(func=_run_query)


def _run_query(args: argparse.Namespace) -> None:
    from .query import export

    rows = export(
        args.results,
        args.region,
        args.format,
        args.output,
        strand=args.strand,
        columns=args.columns or None,
        min_score=args.min_score,
        max_table_rows=args.max_rows,
    )
    if rows == 0:  # a header-only file must not pass for a result
        logging.getLogger("sptx").warning("no rows in %s", args.region)


def _add_plot(sub: Subparsers) -> None:
    p = sub.add_parser("plot", help="plot splice probabilities and tissue usage in a region")
    p.add_argument("results", help="the pipeline's outdir")
    p.add_argument("region")
    p.add_argument("-o", "--output", required=True, help="PNG (or PDF/SVG) path")
    p.add_argument("--gtf", help="annotation for the exon track (default: from the run)")
    p.add_argument("--both-strands", action="store_true")
    p.set_defaults(func=_run_plot)


def _run_plot(args: argparse.Namespace) -> None:
    from .plot import plot_region

    plot_region(
        args.results, args.region, args.output, gtf=args.gtf, both_strands=args.both_strands
    )


def _add_plot_variant(sub: Subparsers) -> None:
    p = sub.add_parser(
        "plot-variant",
        help="picture of a scored variant: REF/ALT probabilities, deltas, gene, tissues",
    )
    p.add_argument("results", help="the pipeline's outdir (with variants.parquet)")
    p.add_argument("variant", nargs="?", help="chr19:1207202:G>A (not with --vcf)")
    p.add_argument("-o", "--output", help="PNG (or PDF/SVG) path; with --vcf: a directory")
    p.add_argument("--vcf", help="draw every scored record x ALT of this VCF, one file each")
    p.add_argument("--format", default="png", help="file type with --vcf (png, pdf, svg)")
    p.add_argument("--model", help="the run's model (default: the source in its provenance)")
    p.add_argument("--device", choices=options.DEVICES, default=options.DEFAULT_DEVICE)
    p.set_defaults(func=_run_plot_variant)


def _run_plot_variant(args: argparse.Namespace) -> None:
    from .errors import InputError
    from .plot_variant import parse_variant, plot_variant, plot_variants_vcf

    if args.output is None:
        raise InputError("give -o/--output (a file; with --vcf, a directory)")
    if args.vcf:
        if args.variant:
            raise InputError("give a variant or --vcf, not both")
        plot_variants_vcf(args.results, args.vcf, args.output, args.model, args.device, args.format)
    elif args.variant:
        parse_variant(args.variant)
        plot_variant(args.results, args.variant, args.output, args.model, args.device)
    else:
        raise InputError("give a variant chrom:pos:REF>ALT or --vcf")


def _add_browse(sub: Subparsers) -> None:
    p = sub.add_parser(
        "browse", help="serve the results on localhost and open them in igv.js (bundled)"
    )
    p.add_argument("results", help="the pipeline's outdir (with tracks/)")
    p.add_argument(
        "locus", nargs="?", help="region, gene name or id, or variant (default: the first gene)"
    )
    p.add_argument("--fasta", help="the run's FASTA (default: from the run's provenance)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: local)")
    p.add_argument("--port", type=int, default=8000, help="0: any free port")
    p.add_argument(
        "--no-open", dest="open_browser", action="store_false", help="only print the URL"
    )
    p.set_defaults(func=_call("browse", "browse", "results locus"))


def _add_report(sub: Subparsers) -> None:
    p = sub.add_parser(
        "report", help="one self-contained HTML file of the scored variants (opens offline)"
    )
    p.add_argument("results", help="the pipeline's outdir (with variants.parquet)")
    p.add_argument("-o", "--output", required=True, help="HTML file to write")
    p.add_argument("--top", type=int, default=10, help="variants drawn, by largest DS")
    p.add_argument("--model", help="the run's model (default: the source in its provenance)")
    p.add_argument("--device", choices=options.DEVICES, default=options.DEFAULT_DEVICE)
    p.set_defaults(func=_call("report", "write_report", "results output"))


def _add_variants(sub: Subparsers) -> None:
    p = sub.add_parser("variants", help="score the splicing effect of VCF variants")
    p.add_argument("--vcf", help="VCF, bgzip VCF or BCF (not needed with --saturate)")
    p.add_argument("--fasta", required=True)
    p.add_argument("--genes", help="genes.parquet of the genes stage (or --gtf)")
    p.add_argument(
        "--exons",
        help="exons.parquet of the genes stage (needed by --mask and the spliceai convention)",
    )
    p.add_argument(
        "--gtf", help="annotation GTF instead of --genes/--exons: genes selected as in 'genes'"
    )
    p.add_argument(
        "--gene-types",
        type=_list,
        default=list(options.DEFAULT_GENE_TYPES),
        help="with --gtf: gene types to score (comma-separated; empty: all)",
    )
    p.add_argument("--model", required=True)
    p.add_argument("--out-parquet", required=True, help="variants.parquet")
    p.add_argument("--out-vcf", required=True, help="variants.vcf.gz (+ .tbi)")
    p.add_argument(
        "--convention",
        choices=options.VARIANT_CONVENTIONS,
        default=options.DEFAULT_VARIANT_CONVENTION,
    )
    p.add_argument("--distance", type=int, help="D: 50 (spliceai) or 100 (sptransformer)")
    p.add_argument("--mask", action="store_true", help="SpliceAI's -M 1")
    p.add_argument(
        "--saturate",
        type=int,
        metavar="N",
        help="score every SNV within N nt of the selected genes' exon boundaries instead of --vcf",
    )
    p.add_argument(
        "--saturate-vcf", help="where --saturate writes its VCF (default: beside --out-vcf)"
    )
    p.add_argument(
        "--shard-size",
        type=int,
        default=options.DEFAULT_VARIANT_SHARD_SIZE,
        help="records per Dask task",
    )
    p.add_argument("--batch-size", type=int, default=options.DEFAULT_BATCH_SIZE)
    p.add_argument("--device", choices=options.DEVICES, default=options.DEFAULT_DEVICE)
    p.add_argument("--precision", choices=options.PRECISIONS, default=options.DEFAULT_PRECISION)
    p.add_argument("--cluster", type=json.loads, default={}, help="cluster mapping as JSON")
    p.add_argument("--max-retries", type=int, default=options.DEFAULT_MAX_RETRIES)
    p.add_argument("--no-progress", action="store_true")
    _add_threads(p)
    p.set_defaults(func=_run_variants)


def _add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads",
        type=int,
        help="cores granted to this job (Snakemake's {threads}): caps the local CPU workers' "
        "torch threads together, as do the CPU affinity and the SLURM allocation",
    )


def _run_variants(args: argparse.Namespace) -> None:
    from pathlib import Path

    from .errors import InputError
    from .variants import saturation_vcf, score_variants

    vcf = args.vcf
    if args.saturate is not None and vcf is not None:
        raise InputError(
            f"--saturate scores its own VCF of SNVs around exon boundaries; it cannot also "
            f"score --vcf {vcf}: give one of them"
        )
    if args.saturate is not None:
        if args.exons is None:
            raise InputError(
                "--saturate needs --genes and --exons (genes.parquet and exons.parquet of the "
                "genes stage; --gtf is not enough)"
            )
        vcf = args.saturate_vcf or str(Path(args.out_vcf).with_name("saturation.vcf.gz"))
        saturation_vcf(args.fasta, args.genes, args.exons, args.saturate, vcf)
    elif vcf is None:
        raise InputError("give --vcf, or --saturate N")
    summary = score_variants(
        vcf,
        args.fasta,
        args.genes,
        args.model,
        args.out_parquet,
        args.out_vcf,
        exons=args.exons,
        convention=args.convention,
        distance=args.distance,
        mask=args.mask,
        shard_size=args.shard_size,
        batch_size=args.batch_size,
        device=args.device,
        precision=args.precision,
        cluster=args.cluster,
        max_retries=args.max_retries,
        progress=not args.no_progress,
        threads=args.threads,
        gtf=args.gtf,
        gene_types=args.gene_types,
    )
    print(json.dumps(summary.as_dict("records")))


def _add_query_variant(sub: Subparsers) -> None:
    p = sub.add_parser("query-variant", help="rows of variants.parquet for a variant or gene")
    p.add_argument("results", help="the pipeline's outdir (or a variants.parquet)")
    p.add_argument("variant", help="chr19:1207202:G>A, chr19:1207202, or a gene name or id")
    p.add_argument("--format", choices=options.QUERY_FORMATS, default=options.DEFAULT_QUERY_FORMAT)
    p.add_argument("-o", "--output", help="file to write (default: standard output)")
    p.set_defaults(func=_run_query_variant)


def _run_query_variant(args: argparse.Namespace) -> None:
    from .query import write_result
    from .variants import query_variant

    write_result(query_variant(args.results, args.variant), args.format, args.output)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sptx", description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="debug log; tracebacks of errors too"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (
        _add_genes,
        _add_tile,
        _add_model_info,
        _add_random_checkpoint,
        _add_predict,
        _add_merge,
        _add_tracks,
        _add_query,
        _add_plot,
        _add_plot_variant,
        _add_browse,
        _add_report,
        _add_variants,
        _add_query_variant,
    ):
        add(sub)
    return parser


def quiet_dask() -> None:
    """Keep Dask's warnings and errors but not its INFO log of every scheduler/worker event.

    ``distributed`` sets its logger levels from the Dask config when it is imported, so the
    config is set for a later import and the level for an earlier one.
    """
    import dask

    dask.config.set({"logging.distributed": "warning"})
    logging.getLogger("distributed").setLevel(logging.WARNING)


# One-line messages: the package's own errors, and the OS's about paths the user gave.
USER_ERRORS = (SptxError, FileNotFoundError, PermissionError)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        quiet_dask()
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        args.func(args)
    except PermissionError as err:  # e.g. a read-only outdir: say so, naming the path
        where = err.filename or str(err)
        logging.getLogger("sptx").error(
            "permission denied: %s (is it read-only?)", where, exc_info=args.verbose
        )
        return 1
    except USER_ERRORS as err:
        # a failure the message explains; anything else is a bug and keeps its traceback
        logging.getLogger("sptx").error("%s", err, exc_info=args.verbose)
        return 1
    except KeyboardInterrupt:
        # the stage's temporary outputs are gone already (atomic.atomic_path)
        logging.getLogger("sptx").error("stopped by SIGINT (Ctrl-C)")
        return 128 + signal.SIGINT
    except Terminated:
        logging.getLogger("sptx").error("stopped by SIGTERM")
        return 128 + signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


class Terminated(BaseException):
    """SIGTERM, raised like KeyboardInterrupt so that every stage removes its temporaries."""


def _terminated(signum: int, frame: object) -> None:
    raise Terminated()


if __name__ == "__main__":
    sys.exit(main())
