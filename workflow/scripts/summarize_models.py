"""Shim: tables/models.csv and tables/histories.csv (aedistill.tables.summarize_models)."""

from aedistill.workflow import script_logging

with script_logging(snakemake):
    from aedistill.tables import summarize_models

    summarize_models(
        list(snakemake.input.metrics),
        list(snakemake.input.histories),
        snakemake.output.models,
        snakemake.output.histories,
    )
