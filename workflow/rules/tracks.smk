rule tracks:
    """bigWig tracks, one per channel and strand, for genome browsers; with `assembly`, a UCSC
    track hub (tracks/hub.txt) of them."""
    input:
        scores=rules.merge.output.scores,
        fasta=config["fasta"],
    output:
        tracks=directory(f"{OUT}/tracks"),
    log:
        f"{OUT}/logs/tracks.log",
    benchmark:
        f"{OUT}/benchmarks/tracks.tsv"
    conda:
        ENV
    threads: all_cores  # bigWig files written in parallel, one process each
    params:
        channels=csv(config["tracks_channels"]),
        bits="exact" if config["tracks_bits"] is None else config["tracks_bits"],
        hub=(
            f" --assembly {shlex.quote(config['assembly'])}"
            if config.get("assembly")
            else ""
        )
        + (
            f" --hub-email {shlex.quote(config['hub_email'])}"
            if config.get("hub_email")
            else ""
        ),
    shell:
        "sptx tracks --scores {input.scores:q} --fasta {input.fasta:q} --out {output.tracks:q}"
        " --channels={params.channels:q} --bits {params.bits} --workers {threads}{params.hub} > {log:q} 2>&1"
