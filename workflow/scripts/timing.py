"""Shim: NVE timing of one model (aedistill.md.time_model) → timing.json."""

from aedistill.workflow import script_logging

with script_logging(snakemake):  # noqa: F821 - injected by Snakemake
    from aedistill.io import write_json
    from aedistill.md import time_model

    write_json(
        snakemake.output.timing,  # noqa: F821
        time_model(
            snakemake.input.model,  # noqa: F821
            snakemake.params.config,  # noqa: F821
            snakemake.wildcards.role,  # noqa: F821
            snakemake.wildcards.arch,  # noqa: F821
            int(snakemake.wildcards.seed),  # noqa: F821
        ),
    )
