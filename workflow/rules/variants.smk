rule variants:
    """Score every VCF record x ALT x overlapping gene (or a saturation set) with the model.

    Sharded over Dask like predict; the work directory (variants.parquet.work) is not an
    output, so a killed run resumes where it stopped.
    """
    input:
        vcf=(
            [config["vcf"]]
            if config["vcf"] is not None and config["saturate"] is None
            else []
        ),
        fasta=config["fasta"],
        genes=rules.genes.output.genes,
        exons=rules.genes.output.exons,
        model=rules.model.output.info,
    output:
        parquet=f"{OUT}/variants.parquet",
        vcf=f"{OUT}/variants.vcf.gz",
    log:
        f"{OUT}/logs/variants.log",
    benchmark:
        f"{OUT}/benchmarks/variants.tsv"
    conda:
        ENV
    threads: all_cores
    params:
        source=variant_source() if variants_wanted() else "",
        model=config["model"],
        convention=config["variant_convention"],
        distance=(
            f"--distance {config['variant_distance']}"
            if config["variant_distance"] is not None
            else ""
        ),
        mask="--mask" if config["variant_mask"] else "",
        shard_size=config["variant_shard_size"],
        device=config["device"],
        precision=config["precision"],
        batch_size=config["batch_size"],
        max_retries=config["max_retries"],
        cluster=json.dumps(config["cluster"], sort_keys=True),
    shell:
        "sptx variants {params.source} --fasta {input.fasta:q} --genes {input.genes:q}"
        " --exons {input.exons:q} --model {params.model:q} --convention {params.convention}"
        " {params.distance} {params.mask} --shard-size {params.shard_size}"
        " --batch-size {params.batch_size} --device {params.device}"
        " --precision {params.precision} --max-retries {params.max_retries} --threads {threads}"
        " --cluster {params.cluster:q} --out-parquet {output.parquet:q}"
        " --out-vcf {output.vcf:q} > {log:q} 2>&1"
