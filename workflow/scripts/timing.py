"""Shim: NVE timing of one model (aedistill.md.time_model) → timing.json."""

from aedistill.workflow import script_logging

with script_logging(snakemake):
    from aedistill.io import write_json
    from aedistill.md import time_model

    write_json(
        snakemake.output.timing,
        time_model(
            snakemake.input.model,
            snakemake.params.config,
            snakemake.wildcards.role,
            snakemake.wildcards.arch,
            int(snakemake.wildcards.seed),
        ),
    )
