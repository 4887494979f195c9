# Stage 8: analysis tables (Pareto fronts, paired statistics, Born-Again) and Figs 2-5
# (one rule, `figure`, for every figure kind).
# Every output is marked for `snakemake --report report.html` with a caption under
# workflow/report/. Inputs are the tidy tables; the efficiency table is always built, the
# RDF table only when the LAMMPS stage is enabled (lammps.enabled).

from aedistill.analysis import learning_curve_archs

# Figure kind -> the tables it reads and its label in the report (captions:
# workflow/report/figure.rst, one section per kind)
FIGURES = {
    "fig2": {"tables": ["models", "efficiency"], "label": "Fig 2: Pareto plot"},
    "fig3": {"tables": ["models", "rdf_errors"], "label": "Fig 3: accuracy vs weights"},
    "fig4": {"tables": ["models", "histories"], "label": "Fig 4: learning curves"},
    "fig5": {"tables": ["models", "efficiency"], "label": "Fig 5: cost vs weights"},
}


rule analysis:
    input:
        **tables_read("models", "efficiency", "rdf_errors"),
    output:
        analysis=report(
            str(paths.table(RUN, "analysis")),
            caption="../report/analysis.rst",
            category="Tables",
            labels={"table": "analysis (Pareto, hypervolume, paired summary)"},
        ),
        paired=report(
            str(paths.table(RUN, "paired")),
            caption="../report/paired.rst",
            category="Tables",
            labels={"table": "paired role - baseline differences"},
        ),
        born_again=report(
            str(paths.table(RUN, "born_again")),
            caption="../report/born_again.rst",
            category="Tables",
            labels={"table": "Born-Again vs teacher"},
        ),
    log:
        log_of(paths.table(RUN, "analysis")),
    benchmark:
        bench_of(paths.table(RUN, "analysis"))
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        # written by the labels stage, which every student depends on; read when present
        teacher_vs_true=str(paths.teacher_vs_true(RUN)),
    message:
        "Pareto fronts, paired statistics and the Born-Again table for run {RUN}"
    script:
        "../scripts/analysis.py"


rule figure:
    """One rule for every figure kind of FIGURES; the caption has a section per kind."""
    input:
        unpack(lambda w: tables_read(*FIGURES[w.figure]["tables"])),
    output:
        png=report(
            str(paths.figure(RUN, "{figure}", "png")),
            caption="../report/figure.rst",
            category="Figures",
            labels=lambda w: {"figure": FIGURES[w.figure]["label"]},
        ),
        pdf=str(paths.figure(RUN, "{figure}", "pdf")),
    log:
        log_of(paths.figure(RUN, "{figure}")),
    benchmark:
        bench_of(paths.figure(RUN, "{figure}"))
    wildcard_constraints:
        figure="|".join(FIGURES),
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        run=RUN,
        # only Fig 4 draws them: other figures do not rerun when they change
        learning_curve_archs=lambda w: (
            learning_curve_archs(config) if w.figure == "fig4" else []
        ),
    message:
        "Drawing {wildcards.figure} for run {RUN}"
    script:
        "../scripts/figures.py"


FIGURE_TARGETS = [
    str(paths.figure(RUN, name, ext)) for name in FIGURES for ext in ("png", "pdf")
] + [str(paths.table(RUN, name)) for name in ("analysis", "paired", "born_again")]
ALL_TARGETS.extend(FIGURE_TARGETS)


rule figures:
    """Named target: every figure and analysis table of the run."""
    input:
        FIGURE_TARGETS,
