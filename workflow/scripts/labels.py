"""Shim: teacher-ensemble per-atom energy labels (aedistill.labels.make_labels)."""

from aedistill.workflow import script_logging

with script_logging(snakemake):
    from aedistill.data.canonical import load_dataset
    from aedistill.labels import make_labels

    make_labels(
        list(snakemake.input.models),
        load_dataset(snakemake.input.dataset),
        snakemake.output.labels,
        snakemake.output.check,
        snakemake.output.vs_true,
    )
