"""Shim: Pareto fronts, paired statistics and the Born-Again table (aedistill.analysis)."""

from aedistill.workflow import script_logging

with script_logging(snakemake):
    from aedistill.analysis import run_analysis

    run_analysis(
        snakemake.input.models,
        snakemake.output.analysis,
        snakemake.output.paired,
        snakemake.output.born_again,
        efficiency_csv=snakemake.input.get("efficiency"),
        rdf_csv=snakemake.input.get("rdf_errors"),
        teacher_vs_true_json=snakemake.params.teacher_vs_true,
    )
