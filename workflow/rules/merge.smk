# config keys that decide what the scores are; stored as provenance in every Parquet file
PROVENANCE_KEYS = (
    "fasta",
    "gtf",
    "model",
    "gene_types",
    "chromosomes",
    "genes",
    "missing_contigs",
    "chunk_size",
    "precision",
    "output_dtype",
    "sites_min_score",
)


rule merge:
    """Predictions -> scores/ (Parquet, chrom=/strand= partitions) and sites.parquet."""
    input:
        windows=rules.tile.output.table,
        predictions=rules.predict.output.summary,
        regions=rules.genes.output.regions,
        genes=rules.genes.output.genes,
    output:
        scores=directory(f"{OUT}/scores"),
        sites=f"{OUT}/sites.parquet",
    log:
        f"{OUT}/logs/merge.log",
    benchmark:
        f"{OUT}/benchmarks/merge.tsv"
    conda:
        ENV
    threads: all_cores  # (chrom, strand) partitions merged in parallel, one process each
    params:
        store=rules.predict.params.store,
        sites_min_score=config["sites_min_score"],
        delete="" if config["keep_predictions"] else "--delete-predictions",
        provenance=json.dumps(
            {"config": {key: config[key] for key in PROVENANCE_KEYS}}, sort_keys=True
        ),
    shell:
        "sptx merge --windows {input.windows:q} --predictions {params.store:q}"
        " --regions {input.regions:q} --genes {input.genes:q}"
        " --out-scores {output.scores:q} --out-sites {output.sites:q}"
        " --sites-min-score {params.sites_min_score} --provenance {params.provenance:q}"
        " --predictions-summary {input.predictions:q}"
        " --workers {threads} {params.delete}"
        " > {log:q} 2>&1"
