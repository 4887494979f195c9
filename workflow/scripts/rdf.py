"""Shim: liquid-Al g(r) and LAMMPS timing of one exported model on lammps.ranks MPI ranks
(aedistill.rdf_run.run_rdf_job)."""

from aedistill.workflow import script_logging

with script_logging(snakemake):
    from aedistill.rdf_run import run_rdf_job

    ranks = int(snakemake.resources.tasks)
    run_rdf_job(
        snakemake.input.mliap,
        snakemake.params.settings,
        snakemake.output.rdf,
        snakemake.output.timing,
        threads=max(1, snakemake.threads // ranks),
        ranks=ranks,
        launcher=snakemake.resources.mpi,
    )
