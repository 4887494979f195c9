"""Shim: criterion, paired and verdict tables across a study's runs (aedistill.study)."""

from aedistill.workflow import script_logging

with script_logging(snakemake):
    from aedistill.study import RunInfo, write_tables

    runs = [RunInfo.from_mapping(r) for r in snakemake.params.runs]
    write_tables(runs, dict(snakemake.output.items()))
