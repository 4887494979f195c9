"""Shim: tables/models.csv and tables/histories.csv (aedistill.tables.summarize_models)."""

from aedistill.workflow import script_logging

with script_logging(snakemake):  # noqa: F821 - injected by Snakemake
    from aedistill.tables import summarize_models

    summarize_models(
        list(snakemake.input.metrics),  # noqa: F821
        list(snakemake.input.histories),  # noqa: F821
        snakemake.output.models,  # noqa: F821
        snakemake.output.histories,  # noqa: F821
    )
