"""Shim: tables/efficiency.csv from timing/memory JSONs (aedistill.tables.efficiency_table)."""

from aedistill.workflow import script_logging

with script_logging(snakemake):  # noqa: F821 - injected by Snakemake
    from aedistill.io import write_csv
    from aedistill.tables import efficiency_table

    write_csv(
        snakemake.output.table,  # noqa: F821
        efficiency_table(
            list(snakemake.input.timings),  # noqa: F821
            list(snakemake.input.memories),  # noqa: F821
            snakemake.input.models,  # noqa: F821
            list(snakemake.input.lammps),  # noqa: F821
            run=snakemake.params.run,  # noqa: F821
        ),
    )
