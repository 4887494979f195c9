"""Shim: build the canonical dataset and split (aedistill.data.build.run)."""

from aedistill.workflow import script_logging

with script_logging(snakemake):
    from aedistill.data.build import run

    run(
        snakemake.params.config,
        snakemake.output.dataset,
        snakemake.output.split,
        snakemake.output.summary,
        snakemake.params.cache_dir,
    )
