"""Shim: draw one of Figs 2-5 (aedistill.plots.make_figure) from the tidy tables."""

from aedistill.workflow import script_logging

with script_logging(snakemake):
    from aedistill.plots import make_figure

    make_figure(
        snakemake.wildcards.figure,
        snakemake.output.png,
        snakemake.output.pdf,
        models_csv=snakemake.input.models,
        histories_csv=snakemake.input.get("histories"),
        efficiency_csv=snakemake.input.get("efficiency"),
        rdf_csv=snakemake.input.get("rdf_errors"),
        run=snakemake.params.run,
        learning_curve_archs=snakemake.params.learning_curve_archs,
    )
