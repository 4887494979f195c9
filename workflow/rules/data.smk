# Stage 1: one canonical dataset + one split shared by every model.

# The env that holds what the dataset source imports: MEAM labels come from LAMMPS
# (envs/lammps.yaml also holds all of envs/train.yaml); tests/unit/test_envs.py checks it.
DATASET_ENV = "lammps" if config["dataset"]["source"] == "meam" else "train"
# What the ANI-Al sources download: fetched by a local job on the submit host (compute nodes
# often have no internet); files placed at these paths beforehand are used (after their
# checks in the dataset job) and nothing is downloaded (docs/paper-run.md).
DOWNLOADS = [
    str(p) for p in paths.downloads(RUN, config["dataset"]["source"], config["dataset"])
]
# Only what is not yet in place is the download rule's output: a placed (or once downloaded)
# file is no rule's output, so Snakemake never deletes or re-downloads it, however old.
PENDING_DOWNLOADS = [
    str(p)
    for p in paths.pending_downloads(
        RUN, config["dataset"]["source"], config["dataset"]
    )
]


rule dataset:
    input:
        DOWNLOADS,
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
        cache_dir=str(paths.download_cache(RUN)),
    message:
        "Building the {config[dataset][source]} dataset and split for run {RUN}"
    script:
        "../scripts/build_dataset.py"


if PENDING_DOWNLOADS:

    localrules:
        download,

    rule download:
        output:
            [p if p.endswith(".tgz") else directory(p) for p in PENDING_DOWNLOADS],
        log:
            log_of(paths.download_cache(RUN) / "download"),
        conda:
            "../../envs/train.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=30,
        params:
            config=settings.canonical(
                {
                    "dataset": {
                        k: config["dataset"][k]
                        for k in ("source", "ani_al", "ani_al_model")
                    }
                }
            ),
            cache_dir=str(paths.download_cache(RUN)),
        message:
            "Downloading the {config[dataset][source]} files (local job, on this host)"
        script:
            "../scripts/download.py"
