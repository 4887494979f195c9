"""Shim: draw one of Figs 2-5 (aedistill.plots.make_figure) from the tidy tables."""

from aedistill.plots import make_figure
from aedistill.workflow import script_logging

smk = snakemake  # noqa: F821 - injected by Snakemake

with script_logging(smk):
    make_figure(
        smk.wildcards.figure,
        smk.output.png,
        smk.output.pdf,
        models_csv=smk.input.models,
        histories_csv=smk.input.get("histories"),
        efficiency_csv=smk.input.get("efficiency"),
        rdf_csv=smk.input.get("rdf_errors"),
        run=smk.params.run,
        learning_curve_archs=smk.params.learning_curve_archs,
    )
