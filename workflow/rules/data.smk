# Stage 1: one canonical dataset + one split shared by every model.


rule dataset:
    output:
        dataset=paths.dataset(RUN),
        split=paths.split(RUN),
        summary=paths.dataset_summary(RUN),
    log:
        log_of(paths.dataset(RUN)),
    benchmark:
        bench_of(paths.dataset(RUN))
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        config=config_sections("dataset"),
        cache_dir=str(paths.run_dir(RUN) / "data" / "cache"),
    message:
        "Building the {config[dataset][source]} dataset and split for run {RUN}"
    script:
        "../scripts/build_dataset.py"
