rule predict:
    """Score every window shard with the model on a Dask cluster (predictions.zarr).

    The declared output is the run summary, written only once every shard is done; the store
    itself is a param. Snakemake deletes a job's outputs before re-running it, so declaring the
    store as a directory() output would throw away finished shards. This way a killed or failed
    run resumes: the next `snakemake` re-runs predict, which skips shards whose done marker and
    checksums hold, and starts afresh only when the model, precision or windows changed.
    """
    input:
        windows=rules.tile.output.zarr,
        model=rules.model.output.info,
    output:
        # temp() with keep_predictions: false: merge deletes the store, and Snakemake deletes
        # this summary, so that a later merge re-run makes predict run again first
        summary=(
            f"{OUT}/predictions.json"
            if config["keep_predictions"]
            else temp(f"{OUT}/predictions.json")
        ),
    log:
        f"{OUT}/logs/predict.log",
    benchmark:
        f"{OUT}/benchmarks/predict.tsv"
    conda:
        ENV
    threads: all_cores
    params:
        store=f"{OUT}/predictions.zarr",
        model=config["model"],
        device=config["device"],
        precision=config["precision"],
        batch_size=config["batch_size"],
        output_dtype=config["output_dtype"],
        max_retries=config["max_retries"],
        cluster=json.dumps(config["cluster"], sort_keys=True),
        tune="--tune-threads" if config["tune_threads"] else "",
    shell:
        "sptx predict --windows {input.windows:q} --out {params.store:q}"
        " --model {params.model:q} --device {params.device} --precision {params.precision}"
        " --batch-size {params.batch_size} --output-dtype {params.output_dtype}"
        " --max-retries {params.max_retries} --cluster {params.cluster:q} --summary {output.summary:q}"
        " --threads {threads} {params.tune}"
        " > {log:q} 2>&1"
