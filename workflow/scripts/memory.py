"""Shim: memory probe of one model (aedistill.memory.probe_memory) → memory.json."""

from aedistill.workflow import script_logging

with script_logging(snakemake):
    from aedistill.io import write_json
    from aedistill.memory import probe_memory

    write_json(
        snakemake.output.memory,
        probe_memory(
            snakemake.input.model,
            snakemake.params.config,
            snakemake.wildcards.role,
            snakemake.wildcards.arch,
            int(snakemake.wildcards.seed),
        ),
    )
