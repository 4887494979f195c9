"""Shim: train one model (aedistill.training.run); role from params, arch/seed wildcards."""

from aedistill.workflow import script_logging

with script_logging(snakemake):  # noqa: F821 - injected by Snakemake
    from aedistill.training import run

    run(
        snakemake.params.config,  # noqa: F821
        snakemake.params.role,  # noqa: F821
        snakemake.wildcards.arch,  # noqa: F821
        int(snakemake.wildcards.seed),  # noqa: F821
        snakemake.input.dataset,  # noqa: F821
        snakemake.input.split,  # noqa: F821
        snakemake.output.model,  # noqa: F821
        labels_path=snakemake.input.get("labels"),  # noqa: F821
    )
