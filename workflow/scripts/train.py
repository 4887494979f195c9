"""Shim: train one model (aedistill.training.run); role from params, arch/seed wildcards."""

from aedistill.settings import with_wall_limit
from aedistill.workflow import script_logging

with script_logging(snakemake):
    from aedistill.training import run

    augment = snakemake.input.get("augment_dataset")
    run(
        with_wall_limit(snakemake.params.config, snakemake.resources.max_wall_minutes),
        snakemake.params.role,
        snakemake.wildcards.arch,
        int(snakemake.wildcards.seed),
        snakemake.input.dataset,
        snakemake.input.split,
        snakemake.output.model,
        labels_path=snakemake.input.get("labels"),
        augment_paths=(augment, snakemake.input.augment_labels) if augment else None,
    )
