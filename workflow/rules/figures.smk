# Stage 8: analysis tables (Pareto fronts, paired statistics, Born-Again) and Figs 2-5.
# Every output is marked for `snakemake --report report.html` with a caption under
# workflow/report/. Inputs are the tidy tables; the efficiency table is always built, the
# RDF table only when the LAMMPS stage is enabled (lammps.enabled).

from aedistill.analysis import learning_curve_archs

LAMMPS_ENABLED = bool(config["lammps"]["enabled"])
FIGURES = ["fig2", "fig3", "fig4", "fig5"]
TABLES = {
    name: str(paths.table(RUN, name))
    for name in ("models", "histories", "efficiency", "rdf_errors")
}
# the RDF table exists only when the LAMMPS stage runs
RDF_INPUT = {"rdf_errors": TABLES["rdf_errors"]} if LAMMPS_ENABLED else {}


rule analysis:
    input:
        **RDF_INPUT,
        models=TABLES["models"],
        efficiency=TABLES["efficiency"],
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


rule fig2:
    input:
        models=TABLES["models"],
        efficiency=TABLES["efficiency"],
    output:
        png=report(
            str(paths.figure(RUN, "fig2", "png")),
            caption="../report/fig2.rst",
            category="Figures",
            labels={"figure": "Fig 2: Pareto plot"},
        ),
        pdf=str(paths.figure(RUN, "fig2", "pdf")),
    log:
        log_of(paths.figure(RUN, "fig2")),
    benchmark:
        bench_of(paths.figure(RUN, "fig2"))
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        figure="fig2",
        run=RUN,
    message:
        "Fig 2 (force RMSE vs time and memory per atom) for run {RUN}"
    script:
        "../scripts/figures.py"


rule fig3:
    input:
        **RDF_INPUT,
        models=TABLES["models"],
    output:
        png=report(
            str(paths.figure(RUN, "fig3", "png")),
            caption="../report/fig3.rst",
            category="Figures",
            labels={"figure": "Fig 3: accuracy vs weights"},
        ),
        pdf=str(paths.figure(RUN, "fig3", "pdf")),
    log:
        log_of(paths.figure(RUN, "fig3")),
    benchmark:
        bench_of(paths.figure(RUN, "fig3"))
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        figure="fig3",
        run=RUN,
    message:
        "Fig 3 (force, energy and RDF errors vs number of weights) for run {RUN}"
    script:
        "../scripts/figures.py"


rule fig4:
    input:
        models=TABLES["models"],
        histories=TABLES["histories"],
    output:
        png=report(
            str(paths.figure(RUN, "fig4", "png")),
            caption="../report/fig4.rst",
            category="Figures",
            labels={"figure": "Fig 4: learning curves"},
        ),
        pdf=str(paths.figure(RUN, "fig4", "pdf")),
    log:
        log_of(paths.figure(RUN, "fig4")),
    benchmark:
        bench_of(paths.figure(RUN, "fig4"))
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        figure="fig4",
        run=RUN,
        learning_curve_archs=learning_curve_archs(config),
    message:
        "Fig 4 (learning curves) for run {RUN}"
    script:
        "../scripts/figures.py"


rule fig5:
    input:
        models=TABLES["models"],
        efficiency=TABLES["efficiency"],
    output:
        png=report(
            str(paths.figure(RUN, "fig5", "png")),
            caption="../report/fig5.rst",
            category="Figures",
            labels={"figure": "Fig 5: cost vs weights"},
        ),
        pdf=str(paths.figure(RUN, "fig5", "pdf")),
    log:
        log_of(paths.figure(RUN, "fig5")),
    benchmark:
        bench_of(paths.figure(RUN, "fig5"))
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        figure="fig5",
        run=RUN,
    message:
        "Fig 5 (time and memory per atom vs number of weights) for run {RUN}"
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
