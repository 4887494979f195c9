"""Shim: teacher-generated configurations of the augmented role (aedistill.augment.run)."""

from aedistill.workflow import script_logging

with script_logging(snakemake):
    from aedistill.augment import run

    run(
        snakemake.params.config,
        snakemake.input.dataset,
        snakemake.input.split,
        list(snakemake.input.models),
        snakemake.output.dataset,
        snakemake.output.labels,
        snakemake.output.summary,
    )
