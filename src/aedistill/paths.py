"""Every result path, in one place. Rules ask these functions; nobody formats paths by hand.

Layout (``R = results/<run_name>``)::

    R/data/dataset.h5, split.json, summary.json
    R/models/<role>/<arch>/seed<seed>/model.pt, history.csv, metrics.json
    R/labels/atom_energies.h5, labels_check.csv, teacher_vs_true.json
    R/augment/dataset.h5, atom_energies.h5, summary.json
    R/efficiency/<role>/<arch>/seed<seed>/timing.json, memory.json
    R/lammps/<role>/<arch>/seed<seed>/model.mliap.pt, rdf.csv, timing.json
    R/tables/*.csv
    R/figures/*.png, *.pdf

A study (``S = results/<study name>``) runs every reference × training subset as a run of its
own, ``results/<study name>-<reference>-f<percent>`` (:func:`study_run_name`), and keeps::

    S/configs/<run_name>.yaml     the complete config of each of its runs
    S/runs/<run_name>.done        written when a run's nested Snakemake has built its tables
    S/tables/*.csv, S/figures/*   the tables and figures across its runs

Roles and their name pattern: :mod:`aedistill.roles`.
"""

from __future__ import annotations

from pathlib import Path

RESULTS = Path("results")
LOGS = Path("logs")
BENCHMARKS = Path("benchmarks")

ARCH_PATTERN = r"L[0-9]+-W[0-9]+-S[0-9]+"


def run_dir(run: str) -> Path:
    return RESULTS / run


def dataset(run: str) -> Path:
    return run_dir(run) / "data" / "dataset.h5"


def download_cache(run: str) -> Path:
    """Downloaded inputs of the dataset (ANI-Al archive, ANI-Al model files)."""
    return run_dir(run) / "data" / "cache"


def downloads(run: str, source: str, settings: dict) -> list[Path]:
    """What the download job fetches for ``dataset.source`` (``settings`` = the dataset
    section): the ANI-Al archive, the ANI-Al model directory (unless ``local_dir`` is set),
    nothing for the offline sources. Pre-place them at these paths to skip the download."""
    if source == "ani-al":
        return [download_cache(run) / "Al-data.tgz"]
    if source == "ani-al-model" and not settings.get("ani_al_model", {}).get("local_dir"):
        return [download_cache(run) / "ani-al-model"]
    return []


#: the shipped list of the ANI-Al model files (git blob id, ``model/<path>``), read here by
#: file name: importing aedistill.data would cost the rules' parse a second
ANI_AL_MODEL_MANIFEST = Path(__file__).parent / "data" / "ani_al_model.gitblob"


def in_place(path: Path) -> bool:
    """A download already at ``path``: a non-empty file, or the ANI-Al model folder holding
    every file of :data:`ANI_AL_MODEL_MANIFEST` (the dataset job checks their contents)."""
    if path.name == "ani-al-model":
        lines = ANI_AL_MODEL_MANIFEST.read_text().splitlines()
        rels = [line.split(maxsplit=1)[1].removeprefix("model/") for line in lines if line.strip()]
        return all((path / rel).is_file() for rel in rels)
    return path.is_file() and path.stat().st_size > 0


def pending_downloads(run: str, source: str, settings: dict) -> list[Path]:
    """The :func:`downloads` not yet in place: only these are a rule's output (data.smk), so
    Snakemake can never delete or fetch again a file placed or downloaded before, whatever
    its modification time (an output older than its rule's script is "code has changed")."""
    return [p for p in downloads(run, source, settings) if not in_place(p)]


def split(run: str) -> Path:
    return run_dir(run) / "data" / "split.json"


def dataset_summary(run: str) -> Path:
    return run_dir(run) / "data" / "summary.json"


def model_dir(run: str, role: str, arch: str, seed: int | str) -> Path:
    return run_dir(run) / "models" / role / arch / f"seed{seed}"


def model(run: str, role: str, arch: str, seed: int | str) -> Path:
    return model_dir(run, role, arch, seed) / "model.pt"


def history(run: str, role: str, arch: str, seed: int | str) -> Path:
    return model_dir(run, role, arch, seed) / "history.csv"


def metrics(run: str, role: str, arch: str, seed: int | str) -> Path:
    return model_dir(run, role, arch, seed) / "metrics.json"


def stack_dir(run: str, arch: str) -> Path:
    """Name of a stacked grid job of ``arch`` (its log and benchmark mirror this path)."""
    return run_dir(run) / "stacks" / f"grid-{arch}"


def labels(run: str) -> Path:
    return run_dir(run) / "labels" / "atom_energies.h5"


def labels_check(run: str) -> Path:
    return run_dir(run) / "labels" / "labels_check.csv"


def teacher_vs_true(run: str) -> Path:
    return run_dir(run) / "labels" / "teacher_vs_true.json"


def augment_dataset(run: str) -> Path:
    """Teacher-generated configurations of the ``augmented`` role (canonical dataset, the
    ensemble-mean E and F as labels)."""
    return run_dir(run) / "augment" / "dataset.h5"


def augment_labels(run: str) -> Path:
    """Teacher ε of :func:`augment_dataset` (the layout of :func:`labels`)."""
    return run_dir(run) / "augment" / "atom_energies.h5"


def augment_summary(run: str) -> Path:
    return run_dir(run) / "augment" / "summary.json"


def timing(run: str, role: str, arch: str, seed: int | str) -> Path:
    return run_dir(run) / "efficiency" / role / arch / f"seed{seed}" / "timing.json"


def memory(run: str, role: str, arch: str, seed: int | str) -> Path:
    return run_dir(run) / "efficiency" / role / arch / f"seed{seed}" / "memory.json"


def mliap_model(run: str, role: str, arch: str, seed: int | str) -> Path:
    return run_dir(run) / "lammps" / role / arch / f"seed{seed}" / "model.mliap.pt"


def rdf(run: str, role: str, arch: str, seed: int | str) -> Path:
    return run_dir(run) / "lammps" / role / arch / f"seed{seed}" / "rdf.csv"


def lammps_timing(run: str, role: str, arch: str, seed: int | str) -> Path:
    return run_dir(run) / "lammps" / role / arch / f"seed{seed}" / "timing.json"


def study_run_name(study: str, reference: str, train_subset: float) -> str:
    """Run name of one reference × training subset of a study: ``<study>-<reference>-f<%>``
    with the percentage as ``f"{100 * train_subset:g}"`` writes it (0.25 → f25, 1 → f100)."""
    return f"{study}-{reference}-f{100 * train_subset:g}"


def study_run_config(study: str, run: str) -> Path:
    """The complete config of study run ``run`` (its reference's config + the study's
    overrides, defaults filled): ``snakemake --configfile`` it to build that run alone."""
    return run_dir(study) / "configs" / f"{run}.yaml"


def study_run_done(study: str, run: str) -> Path:
    """Written when study run ``run``'s nested Snakemake has built the run's tables (the run's
    own files keep the run's own Snakemake records: a later ``snakemake --configfile`` of
    the run finds them up to date)."""
    return run_dir(study) / "runs" / f"{run}.done"


def model_key(path: Path | str) -> tuple[str, str, int]:
    """(role, arch, seed) of a per-model path ``.../<role>/<arch>/seed<seed>/<file>`` (the
    inverse of :func:`model`, :func:`timing`, :func:`rdf`, ...)."""
    p = Path(path)
    seed_dir = p.parent.name
    if not seed_dir.startswith("seed"):
        raise ValueError(f"{p}: not a <role>/<arch>/seed<seed>/ path")
    return p.parent.parent.parent.name, p.parent.parent.name, int(seed_dir[4:])


def table(run: str, name: str) -> Path:
    return run_dir(run) / "tables" / f"{name}.csv"


def figure(run: str, name: str, ext: str = "png") -> Path:
    return run_dir(run) / "figures" / f"{name}.{ext}"


def log(path: Path | str) -> Path:
    """Log file mirroring a result path: results/x/y.z -> logs/x/y.z.log."""
    p = Path(path)
    return LOGS / p.relative_to(RESULTS).with_suffix(p.suffix + ".log")


def benchmark(path: Path | str) -> Path:
    """Benchmark file mirroring a result path: results/x/y.z -> benchmarks/x/y.z.tsv."""
    p = Path(path)
    return BENCHMARKS / p.relative_to(RESULTS).with_suffix(p.suffix + ".tsv")
