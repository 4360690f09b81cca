rule predict:
    """Score every window shard with the model on a Dask cluster (predictions.zarr).

    Snakemake deletes a directory output before it re-runs a job, so shard-level resume applies
    to `sptx predict` run by hand (same arguments as in logs/predict.log); within Snakemake a
    re-run of predict starts afresh, which is what a changed model or precision requires.
    """
    input:
        windows=rules.tile.output.zarr,
        model=rules.model.output.info,
    output:
        predictions=directory(f"{OUT}/predictions.zarr"),
    params:
        model=config["model"],
        device=config["device"],
        precision=config["precision"],
        batch_size=config["batch_size"],
        output_dtype=config["output_dtype"],
        max_retries=config["max_retries"],
        cluster=json.dumps(config["cluster"], sort_keys=True),
    threads: workflow.cores
    conda:
        ENV
    log:
        f"{OUT}/logs/predict.log",
    benchmark:
        f"{OUT}/benchmarks/predict.tsv"
    shell:
        "sptx predict --windows {input.windows:q} --out {output.predictions:q}"
        " --model {params.model:q} --device {params.device} --precision {params.precision}"
        " --batch-size {params.batch_size} --output-dtype {params.output_dtype}"
        " --max-retries {params.max_retries} --cluster {params.cluster:q} --no-progress"
        " > {log:q} 2>&1"
