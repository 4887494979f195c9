"""Shim: liquid-Al g(r) and LAMMPS timing of one exported model (aedistill.lammps.run_rdf)."""

from aedistill.workflow import script_logging

smk = snakemake  # noqa: F821 - injected by Snakemake

with script_logging(smk):
    from aedistill.lammps import run_rdf

    run_rdf(smk.input.mliap, smk.params.settings, smk.output.rdf, smk.output.timing, smk.threads)
