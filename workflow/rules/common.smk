# Shared helpers (run name, path functions, model lists) for all the .smk files. Every global
# that more than one .smk file reads is defined here; a stage file defines only its own.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from aedistill import paths, roles, settings
from aedistill.config import check_semantics, grid_archs, teacher_arch

check_semantics(config)

RUN = config["run_name"]
TEACHER_ARCH = teacher_arch(config).slug
GRID_ARCHS = [a.slug for a in grid_archs(config)]
SEEDS = config["grid"]["seeds"]
TEACHER_SEEDS = list(range(config["teachers"]["n_members"]))
GRID_ROLES = list(config["grid"]["roles"]) + [
    roles.wa_role(w) for w in config["grid"]["w_A_sweep"]
]
# grid roles that also train on the teacher's own configurations (augment.smk)
AUGMENT_ROLES = [r for r in GRID_ROLES if roles.plan_role(config, r).augmented]
BA_SEEDS = config["born_again"]["seeds"] if config["born_again"]["enabled"] else []
LAMMPS_ENABLED = bool(config["lammps"]["enabled"])
# wall-time limit of a training job (minutes): the training's own limit plus set-up and test
TRAIN_RUNTIME = int(config["training"]["max_wall_minutes"] or 240) + 15


def all_models():
    """(role, arch, seed) of every model this config trains."""
    models = [("teacher", TEACHER_ARCH, s) for s in TEACHER_SEEDS]
    models += [("born_again", TEACHER_ARCH, s) for s in BA_SEEDS]
    models += [(r, a, s) for r in GRID_ROLES for a in GRID_ARCHS for s in SEEDS]
    return models


def config_sections(*keys):
    """The config sections a job reads, as its ``params``: Snakemake reruns a job whose
    params changed, so a job must not see sections it does not use (the jobs that read
    parts of sections get them from aedistill.settings), keys sorted (settings.canonical:
    the order of the keys in a config file must not rerun anything)."""
    return settings.canonical({k: config[k] for k in keys})


# training jobs: training.max_wall_minutes as a resource, not a param (aedistill.settings)
TRAIN_WALL_LIMIT = settings.wall_limit_resource(config)


def tables_read(*names):
    """{name: path} of the tidy tables ``names`` (the RDF table only when LAMMPS runs)."""
    return {
        name: str(paths.table(RUN, name))
        for name in names
        if name != "rdf_errors" or LAMMPS_ENABLED
    }


def log_of(path):
    return str(paths.log(path))


def bench_of(path):
    return str(paths.benchmark(path))


def all_targets():
    """Everything `rule all` builds; stage rule files may extend ALL_TARGETS."""
    return [str(p) for p in ALL_TARGETS]


ALL_TARGETS = [paths.dataset(RUN), paths.split(RUN), paths.dataset_summary(RUN)]


# --- LAMMPS stage (lammps.smk), whose timings the efficiency table joins
LAMMPS_SEEDS = set(config["lammps"]["seeds"])
# candidates for the reference g(r), in order: the teacher members by seed. The first whose
# liquid does not fuse is the reference (aedistill.rdf.choose_reference); seed 0 always runs,
# the next member only when every one before it fused (rdf_reference_inputs below).
RDF_REFERENCES = [("teacher", TEACHER_ARCH, s) for s in TEACHER_SEEDS]
# (role, arch, seed) of the models that get an RDF run (the first reference candidate first)
LAMMPS_MODELS = list(
    dict.fromkeys(
        RDF_REFERENCES[:1]
        + [("teacher", TEACHER_ARCH, s) for s in TEACHER_SEEDS if s in LAMMPS_SEEDS]
        + [("born_again", TEACHER_ARCH, s) for s in BA_SEEDS if s in LAMMPS_SEEDS]
        + [
            (r, a, s)
            for r in ("student", "control")
            if r in GRID_ROLES
            for a in GRID_ARCHS
            for s in SEEDS
            if s in LAMMPS_SEEDS
        ]
    )
)


def rdf_reference_inputs(wildcards):
    """rdf.csv of the reference candidates up to the first whose liquid does not fuse: each
    one's RDF run (lammps_rdf) is a checkpoint, so the next is asked for only after it.
    """
    from aedistill.rdf import liquid_fused

    out = []
    for role, arch, seed in RDF_REFERENCES:
        rdf = checkpoints.lammps_rdf.get(role=role, arch=arch, seed=seed).output.rdf
        out.append(rdf)
        if not liquid_fused(rdf):
            break
    return out


# --- efficiency stage (efficiency.smk)
EFF_SEEDS = set(config["efficiency"]["seeds"])
EFF_DEVICE = config["efficiency"]["device"]


def timing_slot(wildcards):
    """A timing job's claim on the global `timing_slot`: 1 when jobs run on this machine (no
    two timings overlap), 0 under a cluster executor, where each has its own allocation
    (evaluated when the DAG is built, once Snakemake knows its executor)."""
    return 1 if workflow.local_exec else 0


def efficiency_models():
    """(role, arch, seed) of every timed model: trained models whose seed is in efficiency.seeds."""
    return [(r, a, s) for r, a, s in all_models() if s in EFF_SEEDS]


def efficiency_lammps_timings():
    """LAMMPS timing files joined into the table (models with an RDF run), if enabled."""
    if not LAMMPS_ENABLED:
        return []
    timed = set(efficiency_models())
    return [paths.lammps_timing(RUN, *m) for m in LAMMPS_MODELS if m in timed]
