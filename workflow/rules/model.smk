checkpoint model:
    """Record the model's flank, channels and default chunk size in model.json.

    A checkpoint, so that `tile` reads its geometry from this file after it exists and is
    re-run only when the geometry changes, not every time the model does.
    """
    input:
        # a local checkpoint file or directory: re-run when it changes (hub ids have no file)
        weights=lambda wildcards: local_model_files(config["model"]),
    output:
        info=f"{OUT}/model.json",
    log:
        f"{OUT}/logs/model.log",
    benchmark:
        f"{OUT}/benchmarks/model.tsv"
    conda:
        ENV
    params:
        model=config["model"],
    shell:
        "sptx model-info --model {params.model:q} --out {output.info:q} > {log:q} 2>&1"


def model_info(wildcards=None):
    """Contents of model.json for the configured model.

    An existing model.json written for the same model source is read directly; otherwise the
    checkpoint is consulted, which defers the caller until the model rule has run.
    """
    path = Path(f"{OUT}/model.json")
    if path.exists():
        info = json.loads(path.read_text())
        if info.get("source") == config["model"]:
            return info
    with open(checkpoints.model.get().output.info) as handle:
        return json.load(handle)


def geometry(wildcards):
    """Window geometry: flank from the model, T from config or the model's default."""
    info = model_info()
    return {
        "flank": info["flank"],
        "chunk_size": config["chunk_size"] or info["default_chunk_size"],
    }
