"""The augmented role: teacher MD, ensemble labels (Σε = E, the ensemble's mean energy and
forces), train ∪ extra with valid/test unchanged, paired initial weights, both engines."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ase.calculators.emt import EMT

from aedistill.augment import (
    AugmentSettings,
    EnsembleCalculator,
    Snapshot,
    augmented_training_data,
    label_snapshots,
    member_spread,
    teacher_md,
)
from aedistill.config import validate_config
from aedistill.data.canonical import Dataset
from aedistill.data.emt import rattled_fcc_emt
from aedistill.data.split import Split, make_split
from aedistill.errors import UserInputError
from aedistill.evaluation import evaluate_model
from aedistill.fastcalc import fast_calculator
from aedistill.hippynn_train import prepare_training
from aedistill.initial import initial_graph
from aedistill.roles import plan_role
from aedistill.training import train_model

ARCH = "L1-W6-S4"


def cfg(**training):
    return validate_config(
        {
            "model": {"cutoff_soft_max": 3.5, "cutoff_hard_max": 4.0},
            "training": {"max_epochs": 1, "batch_size": 4, **training},
            "grid": {"roles": ["student", "control", "augmented"]},
        }
    )


def teacher_like(ds: Dataset) -> np.ndarray:
    """Teacher-like ε: exact ε plus a smooth per-atom offset (0 on padding)."""
    lab = ds.atom_energies + 0.02 * np.cos(np.arange(ds.species.shape[1]))[None, :]
    lab[ds.species == 0] = 0
    return lab


@pytest.fixture(scope="module")
def data():
    """A dataset (4- and 8-atom cells), its split and teacher-like ε, and three 'teacher'
    configurations (32 atoms: a larger n_max, and other energies per atom) without exact ε."""
    ds = rattled_fcc_emt(12, lattice_jitter=0.02)
    split = make_split(ds.n_conf, 0.5, 0.25, 0.25, seed=0)
    emt = rattled_fcc_emt(3, seed=1, repeat=2, rattle=0.2)
    extra = Dataset(emt.species, emt.positions, emt.cell, emt.pbc, emt.energy, emt.forces)
    return ds, split, teacher_like(ds), extra, teacher_like(emt)


def test_augmented_role_is_a_student_that_trains_on_teacher_data():
    c = cfg()
    aug, student = plan_role(c, "augmented"), plan_role(c, "student")
    assert aug.augmented and aug.labels == "teacher"
    assert (aug.weights, aug.stop_weights, aug.max_epochs, aug.schedule) == (
        student.weights,
        student.stop_weights,
        student.max_epochs,
        student.schedule,
    )
    assert not any(plan_role(c, r).augmented for r in ("student", "control", "teacher"))


def test_augmented_training_set_is_train_plus_extra_with_valid_and_test_unchanged(data):
    ds, split, labels, extra, extra_labels = data
    comb, s2, eps = augmented_training_data(ds, split, labels, extra, extra_labels)
    n, n_max = ds.n_conf, ds.species.shape[1]
    assert comb.n_conf == n + 3 and comb.species.shape[1] == extra.species.shape[1] > n_max
    np.testing.assert_array_equal(s2.train, [*split.train, n, n + 1, n + 2])
    np.testing.assert_array_equal(s2.init_train, split.train)
    for part in ("valid", "test"):
        np.testing.assert_array_equal(getattr(s2, part), getattr(split, part))
    # the same configurations, not only the same indices (padding added is empty)
    for part in ("train", "valid", "test"):
        idx = getattr(split, part)
        got, want = comb.subset(idx), ds.subset(idx)
        for name in ("species", "positions", "forces", "atom_energies"):
            a = getattr(got, name)
            np.testing.assert_array_equal(a[:, :n_max], getattr(want, name), err_msg=name)
            assert not np.any(a[:, n_max:]), name
        np.testing.assert_array_equal(got.energy, want.energy)
        np.testing.assert_array_equal(got.cell, want.cell)
        np.testing.assert_array_equal(eps[idx, :n_max], labels[idx])
        assert not np.any(eps[idx, n_max:])
    new = comb.subset(s2.train[-3:])
    for name in ("species", "positions", "forces", "energy", "cell", "pbc"):
        np.testing.assert_array_equal(getattr(new, name), getattr(extra, name), err_msg=name)
    np.testing.assert_array_equal(eps[n:], extra_labels)
    # the teacher's configurations have no exact ε: NaN on their atoms, never a fake value
    assert np.isnan(comb.atom_energies[n:][extra.species > 0]).all()
    with pytest.raises(UserInputError, match="do not match"):
        augmented_training_data(ds, split, labels[1:], extra, extra_labels)


def test_augmented_role_starts_from_its_students_weights(data):
    """Paired seeds: the E0 initialisation uses the original training configurations, in
    both engines' initialisers (else the teacher's energies would shift E0)."""
    ds, split, labels, extra, extra_labels = data
    comb, s2, eps = augmented_training_data(ds, split, labels, extra, extra_labels)
    c = cfg()

    def same(a, b) -> bool:
        return all(torch.equal(a[k], b[k]) for k in a if isinstance(a[k], torch.Tensor))

    student = initial_graph(c, ARCH, 3, ds, split)[1].modules
    aug = initial_graph(c, ARCH, 3, comb, s2)[1].modules
    assert same(student.state_dict(), aug.state_dict())
    st = prepare_training(c, "student", ARCH, 3, ds, split, labels).initial_state
    ag = prepare_training(c, "augmented", ARCH, 3, comb, s2, eps).initial_state
    assert same(st, ag) and same(st, student.state_dict())
    # not vacuous: fitted to train ∪ extra, E0 would differ
    unpaired = initial_graph(c, ARCH, 3, comb, Split(s2.train, s2.valid, s2.test))[1].modules
    assert not same(student.state_dict(), unpaired.state_dict())


@pytest.mark.parametrize("engine", ["fast", "hippynn"])
def test_augmented_training_sees_more_configurations_and_the_same_test_set(data, tmp_path, engine):
    ds, split, labels, extra, extra_labels = data
    comb, s2, eps = augmented_training_data(ds, split, labels, extra, extra_labels)
    c = cfg(engine=engine)
    res = train_model(c, "augmented", ARCH, 0, comb, s2, tmp_path, labels=eps)
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["role"] == "augmented" and m["epochs"] == 1
    assert (m["n_train"], m["n_test"]) == (len(split.train) + 3, len(split.test))
    # its test metrics are those of the original dataset's test configurations
    direct = evaluate_model(res.model_path, ds, split.test)
    assert m["test_f_rmse"] == pytest.approx(direct["test_f_rmse"], rel=1e-12)
    assert m["test_e_rmse"] == pytest.approx(direct["test_e_rmse"], rel=1e-12)
    assert m["test_eps_true_rmse"] == pytest.approx(direct["test_eps_true_rmse"], rel=1e-12)
    # without its extra configurations the role refuses to train (it would be a student)
    with pytest.raises(UserInputError, match="augmented_training_data"):
        train_model(c, "augmented", ARCH, 0, ds, split, tmp_path / "plain", labels=labels)


def md_settings(**kw) -> AugmentSettings:
    base = dict(
        n_configs=5,
        temperatures=(300.0, 600.0),
        snapshots_per_trajectory=2,
        equilibration_steps=4,
        interval=3,
    )
    return AugmentSettings(**(base | kw))


def test_teacher_md_samples_the_planned_temperatures_from_training_configurations(data):
    ds, split, *_ = data
    snaps, abandoned = teacher_md(ds, split.train, EMT(), md_settings())
    assert abandoned == 0 and len(snaps) == 5
    assert [s.temperature for s in snaps] == [300, 300, 600, 600, 300]
    assert [s.trajectory for s in snaps] == [0, 0, 1, 1, 2]
    for s in snaps:
        assert s.start_config in split.train
        start = ds.to_atoms(s.start_config)
        assert len(s.atoms) == len(start)
        np.testing.assert_array_equal(s.atoms.cell[:], start.cell[:])  # NVT in its own cell
        assert s.kinetic_temperature > 0 and s.min_distance > 2.0
    # a trajectory moves: consecutive snapshots differ
    assert not np.allclose(snaps[0].atoms.positions, snaps[1].atoms.positions)
    again, _ = teacher_md(ds, split.train, EMT(), md_settings())  # seeded
    for a, b in zip(snaps, again, strict=True):
        np.testing.assert_array_equal(a.atoms.positions, b.atoms.positions)


def test_teacher_md_that_fuses_atoms_stops_with_one_line(data, monkeypatch):
    import aedistill.rdf

    ds, split, *_ = data
    # every fcc nearest-neighbour pair (2.86 Å) counts as fused: no trajectory survives
    monkeypatch.setattr(aedistill.rdf, "FUSED_PAIR_DISTANCE_A", 2.95)
    with pytest.raises(UserInputError, match="fused atoms in 4 trajectories"):
        teacher_md(ds, split.train, EMT(), md_settings())


def test_labels_are_the_ensemble_mean_and_atomic_energies_sum_to_it(data, members):
    ds, *_ = data
    snaps = [Snapshot(ds.to_atoms(i), 300.0, 300.0, 0, i, 2.5) for i in range(4)]
    out, lab = label_snapshots(snaps, members)
    mask = out.species > 0
    assert out.source == "teacher-md" and out.atom_energies is None
    # Σε = E for every configuration: the mean ε sum to the ensemble-mean energy
    np.testing.assert_allclose(lab["mean"].sum(axis=1), out.energy, atol=1e-4 * mask.sum(1).max())
    assert not np.any(lab["mean"][~mask])
    # E and F are the ensemble's mean, also by another path: the fast ASE calculators
    calc = EnsembleCalculator([fast_calculator(p) for p in members])
    for i, s in enumerate(snaps):
        a = s.atoms.copy()
        a.calc = calc
        n = len(a)
        assert out.energy[i] == pytest.approx(a.get_potential_energy(), abs=1e-4 * n)
        np.testing.assert_allclose(out.forces[i, :n], a.get_forces(), atol=1e-4)
    spread = member_spread(out, lab)
    assert (spread["energy_std_per_atom_eV"] > 0).all() and (spread["force_std_eV_per_A"] > 0).all()
    # an ensemble of one model twice has no spread
    _, same = label_snapshots(snaps, [members[0], members[0]])
    copies = member_spread(out, same)
    assert not copies["energy_std_per_atom_eV"].any() and not copies["force_std_eV_per_A"].any()
