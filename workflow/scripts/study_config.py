"""Shim: write one study run's complete config (aedistill.studyplan.write_run_config)."""

from aedistill.workflow import script_logging

with script_logging(snakemake):
    from aedistill.studyplan import write_run_config

    write_run_config(snakemake.output.config, snakemake.params.config)
