# Stage 3: per-atom energy labels ε of every configuration from every teacher member
# (mean, std, members), the Σε = E_pred check and teacher ε vs exact ε (EMT data).

TEACHER_MODELS = [
    str(paths.model(RUN, "teacher", TEACHER_ARCH, s)) for s in TEACHER_SEEDS
]


rule labels:
    input:
        dataset=paths.dataset(RUN),
        models=TEACHER_MODELS,
    output:
        labels=paths.labels(RUN),
        check=paths.labels_check(RUN),
        vs_true=paths.teacher_vs_true(RUN),
    log:
        log_of(paths.labels(RUN)),
    benchmark:
        bench_of(paths.labels(RUN))
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=6000,
        runtime=60,
    message:
        "Atomic-energy labels from the teacher members {input.models}"
    script:
        "../scripts/labels.py"


rule atomic_labels:
    input:
        rules.labels.output,
