"""Shim: build the canonical dataset and split (aedistill.data.build.run)."""

from aedistill.data.build import run
from aedistill.workflow import script_logging

with script_logging(snakemake):  # noqa: F821 - injected by Snakemake
    run(
        snakemake.params.config,  # noqa: F821
        snakemake.output.dataset,  # noqa: F821
        snakemake.output.split,  # noqa: F821
        snakemake.output.summary,  # noqa: F821
        snakemake.params.cache_dir,  # noqa: F821
    )
