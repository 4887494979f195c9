"""Shim: liquid-Al g(r) and LAMMPS timing of one exported model (aedistill.lammps.run_rdf)."""

from aedistill.workflow import script_logging

with script_logging(snakemake):
    from aedistill.lammps import run_rdf

    run_rdf(
        snakemake.input.mliap,
        snakemake.params.settings,
        snakemake.output.rdf,
        snakemake.output.timing,
        snakemake.threads,
    )
