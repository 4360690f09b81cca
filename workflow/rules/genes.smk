rule genes:
    """Select gene bodies from the GTF; merge them into regions per chrom and strand."""
    input:
        gtf=config["gtf"],
        fasta=config["fasta"],
    output:
        genes=f"{OUT}/genes.parquet",
        regions=f"{OUT}/regions.parquet",
        exons=f"{OUT}/exons.parquet",
    log:
        f"{OUT}/logs/genes.log",
    benchmark:
        f"{OUT}/benchmarks/genes.tsv"
    conda:
        ENV
    params:
        gene_types=csv(config["gene_types"]),
        chromosomes=csv(config["chromosomes"]),
        genes=csv(config["genes"]),
        missing_contigs=config["missing_contigs"],
    shell:
        "sptx genes --gtf {input.gtf:q} --fasta {input.fasta:q}"
        " --gene-types={params.gene_types:q} --chromosomes={params.chromosomes:q}"
        " --genes={params.genes:q} --missing-contigs {params.missing_contigs}"
        " --out-genes {output.genes:q} --out-regions {output.regions:q}"
        " --out-exons {output.exons:q} > {log:q} 2>&1"
