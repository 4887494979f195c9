"""Shim: export a trained model to an ML-IAP unified file (aedistill.lammps.export_mliap)."""

from aedistill.workflow import script_logging

with script_logging(snakemake):
    from aedistill.lammps import export_mliap

    export_mliap(snakemake.input.model, snakemake.output.mliap, snakemake.params.implementation)
