# Stage 5: efficiency. ASE NVE timing (timing.json) and memory probing (memory.json) per
# model, and the tidy table tables/efficiency.csv joined with the accuracy columns of
# tables/models.csv. Named target: `efficiency`.
#
# Timings must not share the CPU with each other: on the local machine every timing job
# takes one unit of the custom resource `timing_slot`. Snakemake only enforces a custom
# resource given globally, so profiles/default (and the command line) set
# `resources: timing_slot=1`; without it timing jobs may overlap and their numbers are
# noisier. Under a cluster executor (SLURM) each timing job gets its own allocation, and the
# global limit would only queue them one after another (72 jobs of up to 4 h for the paper):
# there they claim no slot and run in parallel (timing_slot, common.smk). Memory probes
# measure per-process RSS (or GPU peak memory) and may run beside other jobs.


rule timing:
    input:
        model=paths.model(RUN, "{role}", "{arch}", "{seed}"),
    output:
        timing=paths.timing(RUN, "{role}", "{arch}", "{seed}"),
    log:
        log_of(paths.timing(RUN, "{role}", "{arch}", "{seed}")),
    benchmark:
        bench_of(paths.timing(RUN, "{role}", "{arch}", "{seed}"))
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
        timing_slot=timing_slot,
        gpu=1 if EFF_DEVICE == "cuda" else 0,
    params:
        config=settings.timing_settings(config),
    message:
        "NVE timing: {wildcards.role} {wildcards.arch} seed {wildcards.seed}"
    script:
        "../scripts/timing.py"


rule memory:
    input:
        model=paths.model(RUN, "{role}", "{arch}", "{seed}"),
    output:
        memory=paths.memory(RUN, "{role}", "{arch}", "{seed}"),
    log:
        log_of(paths.memory(RUN, "{role}", "{arch}", "{seed}")),
    benchmark:
        bench_of(paths.memory(RUN, "{role}", "{arch}", "{seed}"))
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=(
            int(config["efficiency"]["memory_budget_gb"] * 1024)
            if EFF_DEVICE == "cpu"
            else 8000
        ),
        runtime=60,
        gpu=1 if EFF_DEVICE == "cuda" else 0,
    params:
        config=settings.memory_settings(config),
    message:
        "Memory probe: {wildcards.role} {wildcards.arch} seed {wildcards.seed}"
    script:
        "../scripts/memory.py"


rule efficiency_table:
    input:
        timings=[paths.timing(RUN, r, a, s) for r, a, s in efficiency_models()],
        memories=[paths.memory(RUN, r, a, s) for r, a, s in efficiency_models()],
        models=paths.table(RUN, "models"),
        lammps=efficiency_lammps_timings(),
    output:
        table=paths.table(RUN, "efficiency"),
    log:
        log_of(paths.table(RUN, "efficiency")),
    benchmark:
        bench_of(paths.table(RUN, "efficiency"))
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        run=RUN,
    message:
        f"Efficiency table of {len(efficiency_models())} models"
    script:
        "../scripts/efficiency_table.py"


rule efficiency:
    input:
        paths.table(RUN, "efficiency"),


ALL_TARGETS.append(paths.table(RUN, "efficiency"))
