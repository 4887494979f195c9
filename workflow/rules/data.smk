# Stage 1: one canonical dataset + one split shared by every model.

# The env that holds what the dataset source imports: MEAM labels come from LAMMPS
# (envs/lammps.yaml also holds all of envs/train.yaml); tests/unit/test_envs.py checks it.
DATASET_ENV = "lammps" if config["dataset"]["source"] == "meam" else "train"


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
        f"../../envs/{DATASET_ENV}.yaml"
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
