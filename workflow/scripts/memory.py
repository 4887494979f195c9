"""Shim: memory probe of one model (aedistill.memory.probe_memory) → memory.json."""

from aedistill.workflow import script_logging

with script_logging(snakemake):  # noqa: F821 - injected by Snakemake
    from aedistill.io import write_json
    from aedistill.memory import probe_memory

    write_json(
        snakemake.output.memory,  # noqa: F821
        probe_memory(
            snakemake.input.model,  # noqa: F821
            snakemake.params.config,  # noqa: F821
            snakemake.wildcards.role,  # noqa: F821
            snakemake.wildcards.arch,  # noqa: F821
            int(snakemake.wildcards.seed),  # noqa: F821
        ),
    )
