rule tile:
    """Cut the fixed tile grid over the regions into token windows (windows.zarr)."""
    input:
        fasta=config["fasta"],
        regions=rules.genes.output.regions,
        # ancient: a new model.json alone does not re-tile; a changed geometry does (params)
        model=ancient(rules.model.output.info),
    output:
        zarr=directory(f"{OUT}/windows.zarr"),
        table=f"{OUT}/windows.parquet",
    log:
        f"{OUT}/logs/tile.log",
    benchmark:
        f"{OUT}/benchmarks/tile.tsv"
    conda:
        ENV
    params:
        flank=lambda wildcards: geometry(wildcards)["flank"],
        chunk_size=lambda wildcards: geometry(wildcards)["chunk_size"],
        shard_size=config["shard_size"],
    shell:
        "sptx tile --fasta {input.fasta:q} --regions {input.regions:q}"
        " --flank {params.flank} --chunk-size {params.chunk_size}"
        " --shard-size {params.shard_size}"
        " --out-zarr {output.zarr:q} --out-parquet {output.table:q} > {log:q} 2>&1"
