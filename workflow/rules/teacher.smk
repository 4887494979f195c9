# Stage 2: the teacher ensemble, one job per member (seeds 0..n_members-1) so that a
# cluster trains them in parallel. Model, learning curve and test metrics per member.


rule train_teacher:
    input:
        dataset=paths.dataset(RUN),
        split=paths.split(RUN),
    output:
        model=paths.model(RUN, "teacher", "{arch}", "{seed}"),
        history=paths.history(RUN, "teacher", "{arch}", "{seed}"),
        metrics=paths.metrics(RUN, "teacher", "{arch}", "{seed}"),
    log:
        log_of(paths.model(RUN, "teacher", "{arch}", "{seed}")),
    benchmark:
        bench_of(paths.model(RUN, "teacher", "{arch}", "{seed}"))
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=6000,
        runtime=TRAIN_RUNTIME,
        max_wall_minutes=TRAIN_WALL_LIMIT,
    params:
        config=settings.train_settings(config, ["teacher"]),
        role="teacher",
    message:
        "Training teacher {wildcards.arch} seed {wildcards.seed}"
    script:
        "../scripts/train.py"


rule teachers:
    input:
        [paths.metrics(RUN, "teacher", TEACHER_ARCH, s) for s in TEACHER_SEEDS],
