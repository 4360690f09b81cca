"""sptx-pipeline: GTF + FASTA -> genome-wide SpTransformer scores (see DESIGN.md and README.md).

snakemake --cores all                                   # the bundled example
snakemake --cores all --config model=/path/to/checkpoint outdir=results-ckpt
"""

import json

from snakemake.utils import min_version, validate

min_version("9.0")  # tested with 9.27; the executor plugins of 9 (SLURM profiles)


# The bundled example is the config only when the user names none: `--configfile my.yaml`
# replaces it, so a key left out of my.yaml takes the schema's default, never the example's.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"


normalise_config(config)


check_config(config, Path(workflow.basedir) / "workflow/schemas/config.schema.yaml")
validate(config, "workflow/schemas/config.schema.yaml", set_default=True)


OUT = config["outdir"].rstrip("/")


include: "workflow/rules/genes.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/tile.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/merge.smk"
include: "workflow/rules/tracks.smk"
include: "workflow/rules/variants.smk"


rule all:
    default_target: True
    input:
        rules.merge.output.scores,
        rules.merge.output.sites,
        rules.tracks.output.tracks,
        variant_outputs(),
