"""Shim: export a trained model to an ML-IAP unified file (aedistill.lammps.export_mliap)."""

from aedistill.workflow import script_logging

smk = snakemake  # noqa: F821 - injected by Snakemake

with script_logging(smk):
    from aedistill.lammps import export_mliap

    export_mliap(smk.input.model, smk.output.mliap, smk.params.implementation)
