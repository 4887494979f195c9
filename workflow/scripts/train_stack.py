"""Shim: train the grid models of one architecture as one stack (aedistill.training.run_stack)."""

from aedistill.settings import with_wall_limit
from aedistill.workflow import script_logging

with script_logging(snakemake):
    from aedistill.training import run_stack

    run_stack(
        with_wall_limit(snakemake.params.config, snakemake.resources.max_wall_minutes),
        snakemake.wildcards.arch,
        snakemake.params.members,
        snakemake.input.dataset,
        snakemake.input.split,
        snakemake.output.models,
        labels_path=snakemake.input.get("labels"),
    )
