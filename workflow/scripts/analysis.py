"""Shim: Pareto fronts, paired statistics and the Born-Again table (aedistill.analysis)."""

from aedistill.analysis import run_analysis
from aedistill.workflow import script_logging

smk = snakemake  # noqa: F821 - injected by Snakemake

with script_logging(smk):
    run_analysis(
        smk.input.models,
        smk.output.analysis,
        smk.output.paired,
        smk.output.born_again,
        efficiency_csv=smk.input.get("efficiency"),
        rdf_csv=smk.input.get("rdf_errors"),
        teacher_vs_true_json=smk.params.teacher_vs_true,
    )
