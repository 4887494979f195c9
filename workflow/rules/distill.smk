# Stage 4: student/control grids (one job per role, architecture and seed), Born-Again
# students (teacher architecture, loss schedule), and the summary tables of all models.
# Roles that learn teacher labels depend on the labels file; the others only on the data.
from aedistill import engine

LABEL_ROLES = {
    r
    for r in GRID_ROLES + ["born_again"]
    if roles.plan_role(config, r).labels == "teacher"
}
# the `students` and `controls` targets: grid roles by family (aedistill.roles.ROLES)
STUDENT_ROLES = roles.in_family(GRID_ROLES, "student")
CONTROL_ROLES = roles.in_family(GRID_ROLES, "control")


TRAIN_INPUTS = {"dataset": paths.dataset(RUN), "split": paths.split(RUN)}
AUGMENT_INPUTS = {
    "augment_dataset": paths.augment_dataset(RUN),
    "augment_labels": paths.augment_labels(RUN),
}
STUDENT_METRICS = [
    paths.metrics(RUN, r, a, s)
    for r in STUDENT_ROLES
    for a in GRID_ARCHS
    for s in SEEDS
]
CONTROL_METRICS = [
    paths.metrics(RUN, r, a, s)
    for r in CONTROL_ROLES
    for a in GRID_ARCHS
    for s in SEEDS
]


rule train_model:
    input:
        unpack(
            lambda w: TRAIN_INPUTS
            | ({"labels": paths.labels(RUN)} if w.role in LABEL_ROLES else {})
            | (AUGMENT_INPUTS if w.role in AUGMENT_ROLES else {})
        ),
    output:
        model=paths.model(RUN, "{role}", "{arch}", "{seed}"),
        history=paths.history(RUN, "{role}", "{arch}", "{seed}"),
        metrics=paths.metrics(RUN, "{role}", "{arch}", "{seed}"),
    log:
        log_of(paths.model(RUN, "{role}", "{arch}", "{seed}")),
    benchmark:
        bench_of(paths.model(RUN, "{role}", "{arch}", "{seed}"))
    wildcard_constraints:
        role=roles.role_pattern("teacher"),  # teachers: train_teacher
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=TRAIN_RUNTIME,
        max_wall_minutes=TRAIN_WALL_LIMIT,
    params:
        config=lambda wildcards: settings.train_settings(config, [wildcards.role]),
        role=lambda wildcards: wildcards.role,
    message:
        "Training {wildcards.role} {wildcards.arch} seed {wildcards.seed}"
    script:
        "../scripts/train.py"


# engine fast: the grid models of one architecture (all roles and seeds) as one stacked job;
# augmented models train on other configurations, in jobs of their own (train_model)
STACK_MEMBERS = [(r, s) for r in GRID_ROLES if r not in AUGMENT_ROLES for s in SEEDS]
STACK_GRID = engine.grid_in_stacks(config) and bool(STACK_MEMBERS)


if STACK_GRID:

    ruleorder: train_grid_stack > train_model

    rule train_grid_stack:
        input:
            **TRAIN_INPUTS,
            **(
                {"labels": paths.labels(RUN)}
                if any(r in LABEL_ROLES for r in GRID_ROLES)
                else {}
            ),
        output:
            models=[paths.model(RUN, r, "{arch}", s) for r, s in STACK_MEMBERS],
            histories=[paths.history(RUN, r, "{arch}", s) for r, s in STACK_MEMBERS],
            metrics=[paths.metrics(RUN, r, "{arch}", s) for r, s in STACK_MEMBERS],
        log:
            log_of(paths.stack_dir(RUN, "{arch}")),
        benchmark:
            bench_of(paths.stack_dir(RUN, "{arch}"))
        wildcard_constraints:
            arch="|".join(GRID_ARCHS),
        conda:
            "../../envs/train.yaml"
        threads: 1
        resources:
            mem_mb=6000,
            runtime=TRAIN_RUNTIME,
            max_wall_minutes=TRAIN_WALL_LIMIT,
        params:
            config=settings.train_settings(config, [r for r, _ in STACK_MEMBERS]),
            members=STACK_MEMBERS,
        message:
            "Training the {wildcards.arch} grid as one stack ({params.members})"
        script:
            "../scripts/train_stack.py"


rule summarize_models:
    input:
        metrics=[paths.metrics(RUN, r, a, s) for r, a, s in all_models()],
        histories=[paths.history(RUN, r, a, s) for r, a, s in all_models()],
    output:
        models=paths.table(RUN, "models"),
        histories=paths.table(RUN, "histories"),
    log:
        log_of(paths.table(RUN, "models")),
    benchmark:
        bench_of(paths.table(RUN, "models"))
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    message:
        "Summarising the trained models into {output.models}"
    script:
        "../scripts/summarize_models.py"


rule students:
    input:
        STUDENT_METRICS,


rule controls:
    input:
        CONTROL_METRICS,


rule born_again_models:
    input:
        [paths.metrics(RUN, "born_again", TEACHER_ARCH, s) for s in BA_SEEDS],


ALL_TARGETS.extend([paths.table(RUN, "models"), paths.table(RUN, "histories")])
