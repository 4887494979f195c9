"""Shim: teacher-ensemble per-atom energy labels (aedistill.labels.make_labels)."""

from aedistill.workflow import script_logging

with script_logging(snakemake):  # noqa: F821 - injected by Snakemake
    from aedistill.data.canonical import load_dataset
    from aedistill.labels import make_labels

    make_labels(
        list(snakemake.input.models),  # noqa: F821
        load_dataset(snakemake.input.dataset),  # noqa: F821
        snakemake.output.labels,  # noqa: F821
        snakemake.output.check,  # noqa: F821
        snakemake.output.vs_true,  # noqa: F821
    )
