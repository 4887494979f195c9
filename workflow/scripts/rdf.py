"""Shim: liquid-Al g(r) and LAMMPS timing of one exported model (aedistill.rdf_run.run_rdf)."""

from aedistill.workflow import script_logging

with script_logging(snakemake):
    from aedistill.rdf_run import run_rdf

    run_rdf(
        snakemake.input.mliap,
        snakemake.params.settings,
        snakemake.output.rdf,
        snakemake.output.timing,
        snakemake.threads,
    )
