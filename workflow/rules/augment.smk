# Stage 3b: teacher-generated configurations for the grid role `augmented` (only when
# grid.roles lists it): Langevin MD driven by the teacher ensemble from training
# configurations, labelled with the ensemble-mean E, F and ε (aedistill.augment).


rule augment:
    input:
        dataset=paths.dataset(RUN),
        split=paths.split(RUN),
        models=[
            str(paths.model(RUN, "teacher", TEACHER_ARCH, s)) for s in TEACHER_SEEDS
        ],
    output:
        dataset=paths.augment_dataset(RUN),
        labels=paths.augment_labels(RUN),
        summary=paths.augment_summary(RUN),
    log:
        log_of(paths.augment_dataset(RUN)),
    benchmark:
        bench_of(paths.augment_dataset(RUN))
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        # the augmentation section and the default temperatures (the data's MD temperatures)
        config=settings.canonical(
            {
                "augmentation": config["augmentation"],
                "dataset": {
                    "generate": {
                        "md_temperatures": config["dataset"]["generate"][
                            "md_temperatures"
                        ]
                    }
                },
            }
        ),
    message:
        "Teacher MD and labels: {config[augmentation][n_configs]} configurations for the "
        "augmented role"
    script:
        "../scripts/augment.py"


rule augmentation:
    """Named target: the augmentation set and its summary."""
    input:
        rules.augment.output,


if AUGMENT_ROLES:
    ALL_TARGETS.append(paths.augment_summary(RUN))
