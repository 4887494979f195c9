# Stage 6: LAMMPS. Export trained models to ML-IAP files; liquid-Al (1200 K) g(r) per model
# through LAMMPS' Python module; RDF error of every model against the reference teacher.
# Named target: `rdf`. Skipped entirely when lammps.enabled is false.
#
# The reference is the first teacher member whose liquid does not fuse (RDF_REFERENCES in
# common.smk): lammps_rdf is a checkpoint, so the next member's liquid runs only once the
# previous one's rdf.csv shows fused atoms; if every member fuses, rdf_errors says so and
# leaves only the error vs experiment.

# The models that get an RDF run (LAMMPS_MODELS) and the reference are in common.smk: the
# efficiency table joins their LAMMPS timings.

# RDF wall time from the config's sizes (aedistill.lammps.rdf_runtime_minutes: measured
# per-atom-step costs, 2x safety), at most RDF_MAX_RUNTIME minutes per SLURM job; a job
# that needs more resumes from its LAMMPS restart files in the next attempt (retries).
RDF_MAX_RUNTIME = 1440
# MPI ranks of each RDF job (lammps.ranks): the job starts `{resources.mpi} -n
# {resources.tasks} python -m aedistill.mpi rdf ...` (aedistill.rdf_run.run_rdf_job). A
# profile owns the launcher (`mpi`: mpirun by default, srun under SLURM) and may set `tasks`
# itself; each rank runs with one core (cpus_per_task) and threads // ranks torch threads.
RDF_RANKS = int(config["lammps"]["ranks"])


if LAMMPS_ENABLED:

    from aedistill.lammps import rdf_runtime_minutes

    rule export_mliap:
        input:
            model=paths.model(RUN, "{role}", "{arch}", "{seed}"),
        output:
            mliap=paths.mliap_model(RUN, "{role}", "{arch}", "{seed}"),
        log:
            log_of(paths.mliap_model(RUN, "{role}", "{arch}", "{seed}")),
        benchmark:
            bench_of(paths.mliap_model(RUN, "{role}", "{arch}", "{seed}"))
        conda:
            "../../envs/lammps.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        params:
            implementation=config["lammps"]["implementation"],
        message:
            "Exporting {wildcards.role} {wildcards.arch} seed {wildcards.seed} to ML-IAP"
        script:
            "../scripts/export_mliap.py"

    # jobs capped at RDF_MAX_RUNTIME: one attempt per cap (+1 for a node failure); else the
    # profile's retries
    RDF_ATTEMPTS = max(
        -(-rdf_runtime_minutes(config["lammps"], a) // RDF_MAX_RUNTIME)
        for _, a, _ in LAMMPS_MODELS
    )
    RDF_RETRIES = RDF_ATTEMPTS if RDF_ATTEMPTS > 1 else None

    checkpoint lammps_rdf:
        input:
            mliap=paths.mliap_model(RUN, "{role}", "{arch}", "{seed}"),
        output:
            rdf=paths.rdf(RUN, "{role}", "{arch}", "{seed}"),
            timing=paths.lammps_timing(RUN, "{role}", "{arch}", "{seed}"),
        log:
            log_of(paths.rdf(RUN, "{role}", "{arch}", "{seed}")),
        benchmark:
            bench_of(paths.rdf(RUN, "{role}", "{arch}", "{seed}"))
        retries: RDF_RETRIES
        conda:
            "../../envs/lammps.yaml"
        threads: RDF_RANKS
        resources:
            mem_mb=4000 * RDF_RANKS,
            runtime=lambda wildcards: min(
                rdf_runtime_minutes(config["lammps"], wildcards.arch), RDF_MAX_RUNTIME
            ),
            tasks=RDF_RANKS,
            cpus_per_task=1,
            mpi="mpirun",
        params:
            # the MD's settings; the rank count is a resource (same g(r) on any number)
            settings=settings.rdf_settings(config),
        message:
            "LAMMPS liquid-Al g(r): {wildcards.role} {wildcards.arch} seed {wildcards.seed}"
        script:
            "../scripts/rdf.py"

    rule rdf_errors:
        input:
            rdfs=[paths.rdf(RUN, r, a, s) for r, a, s in LAMMPS_MODELS],
            references=rdf_reference_inputs,
        output:
            table=report(
                str(paths.table(RUN, "rdf_errors")),
                caption="../report/rdf_errors.rst",
                category="Tables",
                labels={"table": "RDF errors and the reference liquid"},
            ),
        log:
            log_of(paths.table(RUN, "rdf_errors")),
        benchmark:
            bench_of(paths.table(RUN, "rdf_errors"))
        conda:
            "../../envs/lammps.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=5,
        params:
            models=LAMMPS_MODELS,
            references=RDF_REFERENCES,
            temperature_K=config["lammps"]["temperature"],
        message:
            "RDF errors against the first {TEACHER_ARCH} teacher whose liquid does not fuse"
        script:
            "../scripts/rdf_errors.py"

    rule rdf:
        input:
            paths.table(RUN, "rdf_errors"),

    ALL_TARGETS.append(paths.table(RUN, "rdf_errors"))
