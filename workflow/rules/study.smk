# A study (a config with a top-level `study` key; workflow/schemas/study.schema.yaml): every
# reference × training subset is a run of its own, results/<study>-<reference>-f<percent>/,
# built by a nested Snakemake on that run's complete config (the reference's config with the
# study's overrides); then the tables and figures across the runs, results/<study>/.
#
# Editing the study (a role, a sweep value, a training setting) changes the configs of the
# runs it touches: their nested Snakemakes rerun and, as for any run, retrain only the models
# whose own inputs or config sections changed, then remake the run's tables.
# Named target: `study`.

import re
import sys

from snakemake.settings.types import DeploymentMethod

from aedistill import paths
from aedistill.study import FIGURES, TABLES
from aedistill.studyplan import nested_snakemake_args, run_tables

STUDY_NAME = STUDY.name
RUNS = {r.name: r for r in STUDY.runs}
RUN_PATTERN = "|".join(re.escape(name) for name in RUNS)
# each run's flag: its nested Snakemake has built the run's tables (the study reads them)
RUNS_DONE = [str(paths.study_run_done(STUDY_NAME, r)) for r in RUNS]
# what the calling Snakemake was told about conda and --keep-going goes to the runs too
DEPLOYMENT, EXECUTION = workflow.deployment_settings, workflow.execution_settings
USE_CONDA = (
    DEPLOYMENT is not None and DeploymentMethod.CONDA in DEPLOYMENT.deployment_method
)
NESTED_ARGS = nested_snakemake_args(
    STUDY.snakemake_args,
    use_conda=USE_CONDA,
    conda_prefix=DEPLOYMENT.conda_prefix if USE_CONDA else None,
    keep_going=EXECUTION is not None and EXECUTION.keep_going,
)
# what the study tables and figures know of each run
RUN_INFO = [
    {
        "run_dir": str(paths.run_dir(r.name)),
        "reference": r.reference,
        "train_subset": r.train_subset,
    }
    for r in STUDY.runs
]


# both on the submit host: a nested Snakemake submits its own jobs (with cores_per_run set,
# study_run is no handover rule, which alone would keep it local)
localrules:
    study_config,
    study_run,


rule study_config:
    output:
        config=str(paths.study_run_config(STUDY_NAME, "{run}")),
    log:
        str(paths.log(paths.study_run_config(STUDY_NAME, "{run}"))),
    wildcard_constraints:
        run=RUN_PATTERN,
    conda:
        "../../envs/plots.yaml"
    threads: 1
    params:
        config=lambda wildcards: RUNS[wildcards.run].config,
    message:
        "Config of study run {wildcards.run}: its reference's config + the study's overrides"
    script:
        "../scripts/study_config.py"


# A nested Snakemake per run, handed all local cores (handover; or study.cores_per_run of
# them, so that runs go side by side) and run by the calling
# Snakemake's interpreter (no conda env: its jobs get theirs with --sdm conda). Its params
# hold the run's complete config, so that editing the study reruns it (a changed interpreter,
# Snakefile path or NESTED_ARGS reruns it too: the nested Snakemake then finds its models up
# to date). Its output is a flag, not the run's tables: those stay the nested Snakemake's
# (its records stay valid and it remakes only what changed).
rule study_run:
    input:
        config=str(paths.study_run_config(STUDY_NAME, "{run}")),
    output:
        done=str(paths.study_run_done(STUDY_NAME, "{run}")),
    log:
        str(paths.log(paths.run_dir("{run}"))),
    benchmark:
        str(paths.benchmark(paths.run_dir("{run}")))
    wildcard_constraints:
        run=RUN_PATTERN,
    handover: STUDY.cores_per_run is None
    threads: STUDY.cores_per_run or workflow.cores
    params:
        config=lambda wildcards: RUNS[wildcards.run].config,
        targets=lambda wildcards: " ".join(run_tables(RUNS[wildcards.run]).values()),
        python=sys.executable,
        snakefile=workflow.main_snakefile,
        args=NESTED_ARGS,
    message:
        "Run {wildcards.run} of study {STUDY_NAME} (nested Snakemake, log: {log})"
    shell:
        "{params.python} -m snakemake {params.targets} --snakefile {params.snakefile} "
        "--configfile {input.config} --cores {threads} --nolock {params.args} > {log} 2>&1 "
        "&& touch {output.done}"


STUDY_TABLES = {name: str(paths.table(STUDY_NAME, name)) for name in TABLES}


rule study_tables:
    input:
        RUNS_DONE,
    output:
        **{
            name: report(
                path,
                caption="../report/study.rst",
                category="Study",
                labels={"table": name},
            )
            for name, path in STUDY_TABLES.items()
        },
    log:
        str(paths.log(paths.table(STUDY_NAME, "verdict"))),
    benchmark:
        str(paths.benchmark(paths.table(STUDY_NAME, "verdict")))
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        runs=RUN_INFO,
    message:
        f"Criterion, paired and verdict tables of study {STUDY_NAME} ({len(RUNS)} runs)"
    script:
        "../scripts/study_tables.py"


rule study_figure:
    """One rule for every study figure kind (aedistill.study.FIGURES)."""
    input:
        # one study table, or (learning curves) the runs themselves
        unpack(
            lambda w: (
                {"runs": RUNS_DONE}
                if FIGURES[w.figure] == "histories"
                else {"table": STUDY_TABLES[FIGURES[w.figure]]}
            )
        ),
    output:
        png=report(
            str(paths.figure(STUDY_NAME, "{figure}", "png")),
            caption="../report/study.rst",
            category="Study",
            labels=lambda w: {"figure": w.figure},
        ),
        pdf=str(paths.figure(STUDY_NAME, "{figure}", "pdf")),
    log:
        str(paths.log(paths.figure(STUDY_NAME, "{figure}"))),
    benchmark:
        str(paths.benchmark(paths.figure(STUDY_NAME, "{figure}")))
    wildcard_constraints:
        figure="|".join(FIGURES),
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        # only the learning curves read the runs themselves
        runs=lambda wildcards: (
            RUN_INFO if FIGURES[wildcards.figure] == "histories" else []
        ),
    message:
        "Study {STUDY_NAME}: figure {wildcards.figure}"
    script:
        "../scripts/study_figure.py"


STUDY_TARGETS = list(STUDY_TABLES.values()) + [
    str(paths.figure(STUDY_NAME, name, ext))
    for name in FIGURES
    for ext in ("png", "pdf")
]


rule study:
    """Named target (and default): every table and figure of the study."""
    default_target: True
    input:
        STUDY_TARGETS,
