"""Teacher-generated training data for the ``augmented`` role (beyond the paper).

A distilled student can learn from configurations that have no ground truth: the teacher
labels them. The ``augmented`` role tests that: its student trains on the training split
**plus** N configurations the teacher generated itself, labelled by it; its control
(``control``) cannot use them. Validation and test configurations and the initial weights
are those of the student and control of the same architecture and seed.

Protocol (:func:`make_augmentation`; units eV, Å, fs, K):

1. Trajectories: ``ceil(N / snapshots_per_trajectory)`` Langevin runs (ASE, NVT, the
   configuration's own cell), the k-th at temperature ``temperatures[k % K]`` (default: the
   dataset's MD temperatures), each started from another training configuration (drawn
   without replacement while there are enough) with fresh Maxwell–Boltzmann velocities.
   The force field is the teacher ensemble's mean (:class:`EnsembleCalculator`: every
   member's fast calculator, :mod:`aedistill.fastcalc`, or hippynn's where fast does not
   support the model).
2. After ``equilibration_steps`` steps, a snapshot every ``interval`` steps (wrapped into
   the cell). A snapshot with an atom pair closer than
   :data:`aedistill.rdf.FUSED_PAIR_DISTANCE_A` (fused atoms: the teacher left physics) ends
   its trajectory and is not kept; a new trajectory at the same temperature replaces the
   missing snapshots (more than one abandoned trajectory per planned one stops the job).
3. Labels: every member predicts E, F and ε (:meth:`aedistill.models.LoadedModel.predict`,
   the path :mod:`aedistill.labels` uses for the dataset), Σε = E checked per member and
   configuration; the dataset stores the ensemble-mean E and F, the labels file the mean ε
   (Σ mean ε = mean E) with the members' ε.

Files (``results/<run>/augment/``, :mod:`aedistill.paths`, each written atomically):

* ``dataset.h5`` — canonical dataset (:mod:`aedistill.data.canonical`) of the N snapshots,
  source ``teacher-md``, no exact ε;
* ``atom_energies.h5`` — their teacher ε in the layout of ``labels/atom_energies.h5``;
* ``summary.json`` — N, temperatures, trajectories, and the ensemble spread (std over
  members of E/N and of the force components) on these configurations and on the training
  configurations: ``spread.augmented`` vs ``spread.train`` and how many augmented
  configurations exceed the largest spread seen on the training set (the teacher's MD left
  the domain it was trained on).

:func:`augmented_training_data` appends the set to the dataset for training (train ∪ extra,
valid and test unchanged, ``Split.init_train`` = the original training split).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from aedistill.data.canonical import Dataset, from_atoms_list
from aedistill.data.split import Split
from aedistill.errors import UserInputError

log = logging.getLogger(__name__)

#: ``source`` of the augmentation dataset
SOURCE = "teacher-md"


@dataclass(frozen=True)
class AugmentSettings:
    """The ``augmentation`` config section with the temperatures resolved (K, fs, 1/fs)."""

    n_configs: int = 64
    temperatures: tuple[float, ...] = (300.0,)
    snapshots_per_trajectory: int = 4
    equilibration_steps: int = 100
    interval: int = 20
    timestep: float = 2.0
    friction: float = 0.01
    seed: int = 0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> AugmentSettings:
        """From a config with ``augmentation`` and ``dataset.generate.md_temperatures``
        (the default temperatures)."""
        a = config["augmentation"]
        temps = a["temperatures"] or config["dataset"]["generate"]["md_temperatures"]
        return cls(
            n_configs=int(a["n_configs"]),
            temperatures=tuple(float(t) for t in temps),
            snapshots_per_trajectory=int(a["snapshots_per_trajectory"]),
            equilibration_steps=int(a["equilibration_steps"]),
            interval=int(a["interval"]),
            timestep=float(a["timestep"]),
            friction=float(a["friction"]),
            seed=int(a["seed"]),
        )


# --------------------------------------------------------------------------- teacher MD


class EnsembleCalculator(Calculator):
    """The teacher ensemble as one ASE potential: the members' mean energy (eV) and forces
    (eV/Å). ``calcs``: one ASE calculator per member."""

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, calcs: Sequence[Any], **kwargs) -> None:
        super().__init__(**kwargs)
        if not calcs:
            raise ValueError("an ensemble needs at least one member")
        self.calcs = list(calcs)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        energies, forces = [], []
        for calc in self.calcs:
            a = self.atoms.copy()
            a.calc = calc
            energies.append(a.get_potential_energy())
            forces.append(a.get_forces())
        e = float(np.mean(energies))
        self.results = {"energy": e, "free_energy": e, "forces": np.mean(forces, axis=0)}


def ensemble_calculator(model_paths: Sequence[str | os.PathLike[str]]) -> EnsembleCalculator:
    """:class:`EnsembleCalculator` of the member model files (fast calculators, else
    hippynn's)."""
    from aedistill.md import make_timing_calculator
    from aedistill.models import load_model

    calcs = []
    for p in model_paths:
        calc, which = make_timing_calculator(load_model(p), calculator="fast")
        log.info("teacher member %s: %s calculator", p, which)
        calcs.append(calc)
    return EnsembleCalculator(calcs)


@dataclass
class Snapshot:
    """One teacher-MD configuration and where it came from."""

    atoms: Any  # ase.Atoms, wrapped into its cell, no calculator
    temperature: float  # K, the thermostat's
    kinetic_temperature: float  # K, instantaneous (from the velocities)
    trajectory: int
    start_config: int  # index into the dataset
    min_distance: float  # Å, closest pair (inf when none within 3 Å)


def plan_trajectories(settings: AugmentSettings) -> list[tuple[float, int]]:
    """(temperature K, snapshots) of each trajectory: ``snapshots_per_trajectory`` each, the
    last one the rest; temperatures in turn."""
    n, per = settings.n_configs, settings.snapshots_per_trajectory
    counts = [per] * (n // per) + ([n % per] if n % per else [])
    temps = settings.temperatures
    return [(temps[k % len(temps)], c) for k, c in enumerate(counts)]


def teacher_md(
    dataset: Dataset, train: np.ndarray, calc, settings: AugmentSettings
) -> tuple[list[Snapshot], int]:
    """Snapshots of Langevin MD driven by ``calc`` from training configurations ``train``
    (indices into ``dataset``), following :func:`plan_trajectories` (see the module
    docstring). Returns (snapshots in trajectory order, number of abandoned trajectories)."""
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    from aedistill.md import min_distance
    from aedistill.rdf import FUSED_PAIR_DISTANCE_A

    rng = np.random.default_rng(settings.seed)
    plan = plan_trajectories(settings)
    train = np.asarray(train, dtype=np.int64)
    if len(train) == 0:
        raise UserInputError("augmentation: the split has no training configurations to start from")
    starts = list(rng.choice(train, size=len(plan), replace=len(plan) > len(train)))
    queue = list(plan)
    out: list[Snapshot] = []
    abandoned = 0
    k = 0
    while queue:
        temp, count = queue.pop(0)
        start = int(starts[k]) if k < len(starts) else int(rng.choice(train))
        atoms = dataset.to_atoms(start)
        atoms.calc = calc
        MaxwellBoltzmannDistribution(atoms, temperature_K=temp, rng=rng)
        dyn = Langevin(
            atoms,
            settings.timestep * units.fs,
            temperature_K=temp,
            friction=settings.friction / units.fs,
            fixcm=False,
            rng=rng,
        )
        dyn.run(settings.equilibration_steps)
        kept = []
        for _ in range(count):
            dyn.run(settings.interval)
            d = min_distance(atoms, max(3.0, FUSED_PAIR_DISTANCE_A))
            if not np.isfinite(atoms.get_potential_energy()) or d < FUSED_PAIR_DISTANCE_A:
                break
            snap = atoms.copy()
            snap.calc = None
            snap.wrap()
            kept.append(Snapshot(snap, temp, float(atoms.get_temperature()), k, start, float(d)))
        out += kept
        if len(kept) < count:
            abandoned += 1
            log.warning(
                "trajectory %d (%.0f K, from configuration %d): atoms fused (closest pair "
                "%.2f Å, limit %.2f Å) or energy not finite after %d snapshots; replacing "
                "the rest",
                k,
                temp,
                start,
                d,
                FUSED_PAIR_DISTANCE_A,
                len(kept),
            )
            if abandoned > len(plan):
                raise UserInputError(
                    f"augmentation: the teacher's MD fused atoms in {abandoned} trajectories "
                    f"(last at {temp:g} K); the teacher is not usable for MD there "
                    "(augmentation.temperatures, or train the teachers longer)"
                )
            queue.append((temp, count - len(kept)))
        log.info(
            "trajectory %d/%d: %.0f K from configuration %d (%d atoms): %d snapshots, "
            "kinetic T %.0f K, closest pair %.2f Å",
            k + 1,
            len(plan) + abandoned,
            temp,
            start,
            len(atoms),
            len(kept),
            np.mean([s.kinetic_temperature for s in kept]) if kept else math.nan,
            min((s.min_distance for s in kept), default=math.inf),
        )
        k += 1
    return out, abandoned


# --------------------------------------------------------------------------- labels, spread


def member_spread(dataset: Dataset, pred: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per configuration: std over members of E/N (eV/atom) and the RMS over the real atoms'
    force components of the members' std (eV/Å); ddof 0, as ``labels/atom_energies.h5``."""
    n_atoms = dataset.n_atoms
    e_std = pred["energy"].std(axis=0) / n_atoms
    f_var = pred["forces"].var(axis=0).sum(axis=2)  # (n_conf, n_max), padding 0
    f_std = np.sqrt(f_var.sum(axis=1) / (3 * n_atoms))
    return {"energy_std_per_atom_eV": e_std, "force_std_eV_per_A": f_std}


def _stats(x: np.ndarray) -> dict[str, float]:
    x = np.asarray(x, dtype=float)
    return {"mean": float(x.mean()), "max": float(x.max())} if x.size else {}


def label_snapshots(
    snapshots: Sequence[Snapshot], model_paths: Sequence[str | os.PathLike[str]]
) -> tuple[Dataset, dict[str, np.ndarray]]:
    """The snapshots as a canonical dataset with the ensemble-mean E and F, and the member
    predictions (:func:`aedistill.labels.predict_members`) with the mean ε; Σε = E checked
    per member."""
    from aedistill.labels import labels_check, predict_members, raise_on_bad_sums

    frames = [s.atoms for s in snapshots]
    n = len(frames)
    unlabelled = from_atoms_list(frames, np.zeros(n), [np.zeros((len(a), 3)) for a in frames])
    pred = predict_members(model_paths, unlabelled)
    check = labels_check(unlabelled, pred["atom_energies"], pred["energy"])
    raise_on_bad_sums(check, "augmentation")
    mask = unlabelled.species > 0
    mean_eps = pred["atom_energies"].mean(axis=0)
    mean_eps[~mask] = 0.0
    ds = Dataset(
        unlabelled.species,
        unlabelled.positions,
        unlabelled.cell,
        unlabelled.pbc,
        pred["energy"].mean(axis=0),
        pred["forces"].mean(axis=0),
        None,
        SOURCE,
    )
    std_eps = pred["atom_energies"].std(axis=0)
    std_eps[~mask] = 0.0
    return ds, {
        **pred,
        "mean": mean_eps,
        "std": std_eps,
        "max_abs_sum_eps_minus_energy_eV": float(check.abs_diff.max()),
    }


# --------------------------------------------------------------------------- the job


def make_augmentation(
    config: Mapping[str, Any],
    dataset: Dataset,
    split: Split,
    model_paths: Sequence[str | os.PathLike[str]],
    dataset_path: str | os.PathLike[str],
    labels_path: str | os.PathLike[str],
    summary_path: str | os.PathLike[str],
) -> dict[str, Any]:
    """Generate, label and write the augmentation set (see the module docstring); returns
    the summary."""
    from aedistill.data.canonical import save_dataset
    from aedistill.io import write_json
    from aedistill.labels import predict_members, save_labels

    settings = AugmentSettings.from_config(config)
    paths = [str(p) for p in model_paths]
    log.info(
        "augmentation: %d configurations at %s K from %d training configurations, teacher "
        "ensemble of %d",
        settings.n_configs,
        ", ".join(f"{t:g}" for t in settings.temperatures),
        len(split.train),
        len(paths),
    )
    snaps, abandoned = teacher_md(dataset, split.train, ensemble_calculator(paths), settings)
    ds, lab = label_snapshots(snaps, paths)
    log.info(
        "labelled %d configurations (max |Σε − E| %.2e eV)",
        ds.n_conf,
        lab["max_abs_sum_eps_minus_energy_eV"],
    )

    train = dataset.subset(split.train)
    spread_aug = member_spread(ds, lab)
    spread_train = member_spread(train, predict_members(paths, train))
    temps = np.array([s.temperature for s in snaps])
    per_t = []
    for t in settings.temperatures:
        sel = temps == t
        per_t.append(
            {
                "temperature_K": t,
                "n_configs": int(sel.sum()),
                "kinetic_temperature_K_mean": float(
                    np.mean([s.kinetic_temperature for s in snaps if s.temperature == t])
                )
                if sel.any()
                else None,
                "min_distance_A": min(
                    (s.min_distance for s in snaps if s.temperature == t), default=None
                ),
                **{f"{k}_{m}": v for k, a in spread_aug.items() for m, v in _stats(a[sel]).items()},
            }
        )
    train_max = {k: float(v.max()) for k, v in spread_train.items()}
    summary = {
        "n_configs": ds.n_conf,
        "n_atoms": {"min": int(ds.n_atoms.min()), "max": int(ds.n_atoms.max())},
        "temperatures_K": list(settings.temperatures),
        "n_trajectories": len({s.trajectory for s in snaps}),
        "n_abandoned_trajectories": abandoned,
        "settings": asdict(settings),
        "teacher_members": paths,
        "max_abs_sum_eps_minus_energy_eV": lab["max_abs_sum_eps_minus_energy_eV"],
        "spread": {
            "augmented": {k: _stats(v) for k, v in spread_aug.items()},
            "train": {k: _stats(v) for k, v in spread_train.items()},
            "augmented_above_train_max": {
                k: int((spread_aug[k] > train_max[k]).sum()) for k in spread_aug
            },
        },
        "per_temperature": per_t,
        "start_configs": sorted({s.start_config for s in snaps}),
    }
    save_dataset(dataset_path, ds)
    save_labels(labels_path, lab["mean"], lab["std"], lab["atom_energies"], lab["energy"], paths)
    write_json(summary_path, summary)
    sa, st = summary["spread"]["augmented"], summary["spread"]["train"]
    log.info(
        "ensemble spread, augmented vs training configurations: E %.2g vs %.2g meV/atom "
        "(mean; max %.2g vs %.2g), F %.3g vs %.3g eV/Å (mean); %d configurations above the "
        "training set's largest force spread",
        1000 * sa["energy_std_per_atom_eV"]["mean"],
        1000 * st["energy_std_per_atom_eV"]["mean"],
        1000 * sa["energy_std_per_atom_eV"]["max"],
        1000 * st["energy_std_per_atom_eV"]["max"],
        sa["force_std_eV_per_A"]["mean"],
        st["force_std_eV_per_A"]["mean"],
        summary["spread"]["augmented_above_train_max"]["force_std_eV_per_A"],
    )
    return summary


def run(
    config: Mapping[str, Any],
    dataset_path: str | os.PathLike[str],
    split_path: str | os.PathLike[str],
    model_paths: Sequence[str | os.PathLike[str]],
    out_dataset: str | os.PathLike[str],
    out_labels: str | os.PathLike[str],
    out_summary: str | os.PathLike[str],
) -> dict[str, Any]:
    """Workflow entry: load the canonical dataset and split, :func:`make_augmentation`."""
    from aedistill.data.canonical import load_dataset
    from aedistill.data.split import load_split

    ds = load_dataset(dataset_path)
    split = load_split(split_path, n_conf=ds.n_conf)
    return make_augmentation(config, ds, split, model_paths, out_dataset, out_labels, out_summary)


# --------------------------------------------------------------------------- training data


def _pad(a: np.ndarray, n_max: int) -> np.ndarray:
    """``a`` (n_conf, n, ...) padded with zeros to (n_conf, n_max, ...)."""
    if a.shape[1] == n_max:
        return a
    out = np.zeros((a.shape[0], n_max, *a.shape[2:]), dtype=a.dtype)
    out[:, : a.shape[1]] = a
    return out


def concat_datasets(first: Dataset, extra: Dataset) -> Dataset:
    """``first`` then ``extra`` (padded to the larger ``n_max``); ``first``'s source. Exact ε
    and member spreads the extra configurations lack are NaN."""
    n_max = max(first.species.shape[1], extra.species.shape[1])

    def both(name: str) -> np.ndarray:
        a, b = getattr(first, name), getattr(extra, name)
        if a.ndim > 1 and name not in ("cell", "pbc"):
            a, b = _pad(a, n_max), _pad(b, n_max)
        return np.concatenate([a, b])

    def optional(name: str, missing: np.ndarray) -> np.ndarray | None:
        a, b = getattr(first, name), getattr(extra, name)
        if a is None:
            return None
        if b is None:
            b = missing
        if a.ndim > 1:
            a, b = _pad(a, n_max), _pad(b, n_max)
        return np.concatenate([a, b])

    ae = optional("atom_energies", np.where(extra.species > 0, np.nan, 0.0))
    spread = optional("energy_member_std", np.full(extra.n_conf, np.nan))
    return Dataset(
        both("species"),
        both("positions"),
        both("cell"),
        both("pbc"),
        both("energy"),
        both("forces"),
        ae,
        first.source,
        spread,
        dict(first.info),
    )


def augmented_training_data(
    dataset: Dataset,
    split: Split,
    labels: np.ndarray,
    extra: Dataset,
    extra_labels: np.ndarray,
) -> tuple[Dataset, Split, np.ndarray]:
    """What the ``augmented`` role trains on: ``dataset`` then ``extra`` (indices
    ``dataset.n_conf``…), the split with train = train ∪ extra, valid and test unchanged and
    ``init_train`` = the original train (same initial weights as the student and control),
    and the teacher ε of both (n_conf + N, n_max) eV."""
    if labels.shape != dataset.species.shape or extra_labels.shape != extra.species.shape:
        raise UserInputError(
            f"augmentation: labels {labels.shape} / {extra_labels.shape} do not match the "
            f"dataset {dataset.species.shape} / augmentation set {extra.species.shape}"
        )
    combined = concat_datasets(dataset, extra)
    n_max = combined.species.shape[1]
    new = np.arange(dataset.n_conf, combined.n_conf, dtype=np.int64)
    aug_split = Split(
        np.concatenate([np.asarray(split.train, dtype=np.int64), new]),
        split.valid,
        split.test,
        init_train=split.train,
    )
    eps = np.concatenate([_pad(labels, n_max), _pad(extra_labels, n_max)])
    return combined, aug_split, eps


def load_augmented(
    dataset: Dataset,
    split: Split,
    labels: np.ndarray,
    extra_path: str | os.PathLike[str],
    extra_labels_path: str | os.PathLike[str],
    target: str | int = "mean",
) -> tuple[Dataset, Split, np.ndarray]:
    """:func:`augmented_training_data` with the augmentation set read from its files (ε:
    ``labels.target``, as for the dataset)."""
    from aedistill.data.canonical import load_dataset
    from aedistill.labels import load_labels

    extra = load_dataset(extra_path)
    extra_labels = load_labels(extra_labels_path, extra, target=target)
    log.info("augmentation: %d teacher-generated configurations from %s", extra.n_conf, extra_path)
    return augmented_training_data(dataset, split, labels, extra, extra_labels)
