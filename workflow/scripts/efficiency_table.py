"""Shim: tables/efficiency.csv from timing/memory JSONs (aedistill.tables.efficiency_table)."""

from aedistill.workflow import script_logging

with script_logging(snakemake):
    from aedistill.io import write_csv
    from aedistill.tables import efficiency_table

    write_csv(
        snakemake.output.table,
        efficiency_table(
            list(snakemake.input.timings),
            list(snakemake.input.memories),
            snakemake.input.models,
            list(snakemake.input.lammps),
            run=snakemake.params.run,
        ),
    )
