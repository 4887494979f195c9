"""Shim: one figure of a study (aedistill.study_figures.draw_figure)."""

from aedistill.workflow import script_logging

with script_logging(snakemake):
    from aedistill.study import RunInfo
    from aedistill.study_figures import draw_figure

    draw_figure(
        snakemake.wildcards.figure,
        [snakemake.output.png, snakemake.output.pdf],
        table=snakemake.input.get("table"),
        runs=[RunInfo.from_mapping(r) for r in snakemake.params.runs],
    )
