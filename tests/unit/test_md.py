"""Fast calculator vs hippynn's, forces vs finite differences, neighbour list vs ASE, timing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.neighborlist import neighbor_list

from aedistill import models
from aedistill.arch import Arch
from aedistill.fastcalc import FastHipnnCalculator
from aedistill.md import (
    MDBlowUpError,
    TimingSettings,
    drift_meV_per_atom_ps,
    run_nve_timing,
    time_model,
)
from aedistill.neighbours import half_pairs
from tests.helpers import assert_forces_are_minus_gradient


def _graph(slug: str, l_max: int = 1, interaction_layers: int = 1, seed: int = 0):
    spec = models.ModelSpec(
        arch=Arch.from_slug(slug), species=(13,), l_max=l_max, interaction_layers=interaction_layers
    )
    return spec, models.build_training_graph(spec, seed)


def _triclinic_al() -> Atoms:
    # a small skewed periodic cell: the 7.5 Å cutoff reaches several periodic images
    atoms = bulk("Al", "fcc", a=4.05).repeat((3, 2, 2))
    atoms.rattle(0.15, seed=3)
    return atoms


@pytest.mark.parametrize(
    "slug,l_max,n_int",
    [("L1-W8-S4", 1, 1), ("L2-W16-S8", 1, 2), ("L2-W16-S8", 0, 2)],
)
def test_fast_calculator_matches_hippynn(slug, l_max, n_int):
    import ase.units
    from hippynn.interfaces.ase_interface import HippynnCalculator

    _, g = _graph(slug, l_max, n_int)
    atoms = _triclinic_al()
    ref = HippynnCalculator(g.energy, en_unit=ase.units.eV)
    ref.to(torch.float64)
    a_ref = atoms.copy()
    a_ref.calc = ref
    e_ref, f_ref = a_ref.get_potential_energy(), a_ref.get_forces()
    fast = FastHipnnCalculator.from_modules(g.modules, dtype=torch.float64)
    atoms.calc = fast
    e, f = atoms.get_potential_energy(), atoms.get_forces()
    scale = np.abs(f_ref).max()
    assert scale > 1e-3  # a non-trivial force field
    # hippynn's numba kernels (if active) accumulate in lower precision: 1e-6 relative
    assert abs(e - e_ref) <= 1e-6 * max(abs(e_ref), 1.0)
    assert np.abs(f - f_ref).max() <= 1e-6 * scale
    # per-atom energies sum to the energy
    assert atoms.get_potential_energies().sum() == pytest.approx(e, rel=1e-10, abs=1e-10)


def test_fast_forces_are_minus_energy_gradient():
    _, g = _graph("L1-W8-S4")
    atoms = _triclinic_al()
    atoms.calc = FastHipnnCalculator.from_modules(g.modules, dtype=torch.float64, skin=0.0)
    assert_forces_are_minus_gradient(atoms, [(0, 0), (3, 1), (7, 2)], h=1e-5, rel=1e-5, abs=1e-7)


def test_float32_network_close_to_float64():
    _, g = _graph("L1-W16-S8")
    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat(2)
    atoms.rattle(0.1, seed=1)
    atoms.calc = FastHipnnCalculator.from_modules(g.modules, dtype=torch.float64)
    f64 = atoms.get_forces()
    a32 = atoms.copy()
    a32.calc = FastHipnnCalculator.from_modules(g.modules, dtype=torch.float32)
    assert np.abs(a32.get_forces() - f64).max() <= 1e-5 * np.abs(f64).max()


@pytest.mark.parametrize("pbc", [(True, True, True), (True, False, True), (False, False, False)])
def test_half_pairs_match_ase_neighbor_list(pbc):
    atoms = _triclinic_al()
    atoms.pbc = pbc
    rcut = 6.3
    i, j, s = half_pairs(atoms.positions, atoms.cell.array, atoms.pbc, rcut)
    d = np.linalg.norm(atoms.positions[j] + s @ atoms.cell.array - atoms.positions[i], axis=1)
    assert (d < rcut).all()
    ai, aj, ad = neighbor_list("ijd", atoms, rcut)  # both directions
    assert 2 * len(i) == len(ai)
    np.testing.assert_allclose(np.sort(np.concatenate([d, d])), np.sort(ad), atol=1e-12)
    # each unordered pair once: per-atom coordination from half pairs equals ASE's
    coord = np.bincount(np.concatenate([i, j]), minlength=len(atoms))
    np.testing.assert_array_equal(coord, np.bincount(ai, minlength=len(atoms)))


def test_verlet_list_rebuilds_only_after_half_skin():
    _, g = _graph("L1-W8-S4")
    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat(2)
    calc = FastHipnnCalculator.from_modules(g.modules, skin=1.0)
    atoms.calc = calc
    f0 = atoms.get_forces()
    atoms.positions[0, 0] += 0.4  # < skin/2: same list
    atoms.get_forces()
    assert calc.n_builds == 1
    atoms.positions[0, 0] += 0.2  # 0.6 > skin/2: rebuilt
    atoms.get_forces()
    assert calc.n_builds == 2
    atoms.positions[0, 0] -= 0.6
    np.testing.assert_allclose(atoms.get_forces(), f0, atol=1e-12)


def test_drift_fit_recovers_slope():
    t = np.arange(100.0)  # fs
    e = 50 * (1.0 + 2.5e-6 * t)  # 50 atoms, +2.5e-6 eV/atom per fs = 2.5 meV/atom/ps
    assert drift_meV_per_atom_ps(t, e * 50, 50) == pytest.approx(2.5 * 50)
    assert drift_meV_per_atom_ps(t, np.full(100, 7.0), 50) == pytest.approx(0.0, abs=1e-9)


def test_nve_drift_of_emt_within_bound():
    # Stated bound: velocity Verlet at 1 fs, fcc Al at 300 K, 150 steps: |drift| < 1 meV/atom/ps
    from asap3 import EMT

    s = TimingSettings(supercell=3, warmup_steps=5, steps_per_block=50, blocks=3)
    rec = run_nve_timing(EMT(), s)
    assert abs(rec["drift_meV_per_atom_ps"]) < 1.0


def test_nve_drift_of_fast_calculator_within_bound():
    # smooth untrained network, float64: the same 1 meV/atom/ps bound over 150 steps of 0.5 fs
    _, g = _graph("L1-W8-S4")
    calc = FastHipnnCalculator.from_modules(g.modules, dtype=torch.float64)
    s = TimingSettings(supercell=2, timestep=0.5, warmup_steps=5, steps_per_block=50, blocks=3)
    rec = run_nve_timing(calc, s)
    assert abs(rec["drift_meV_per_atom_ps"]) < 1.0


def test_blow_up_is_reported_with_the_step():
    from asap3 import EMT

    s = TimingSettings(
        supercell=2, timestep=40.0, temperature=3000, warmup_steps=0, steps_per_block=20, blocks=5
    )
    with pytest.raises(MDBlowUpError, match=r"step \d+"):
        run_nve_timing(EMT(), s)


def test_time_model_record(tmp_path):
    from aedistill.config import validate_config

    spec, g = _graph("L1-W8-S4")
    path = tmp_path / "model.pt"
    models.save_model(path, spec, g)
    cfg = validate_config(
        {"efficiency": {"supercell": 2, "warmup_steps": 2, "steps_per_block": 4, "blocks": 3}}
    )
    rec = time_model(path, cfg, "student", "L1-W8-S4", 0)
    for key in (
        "time_per_step_per_atom_s",
        "time_per_step_per_atom_iqr_s",
        "drift_meV_per_atom_ps",
    ):
        assert math.isfinite(rec[key]), key
    assert rec["time_per_step_per_atom_s"] > 0
    assert rec["time_per_step_per_atom_iqr_s"] >= 0
    assert rec["n_atoms"] == 32
    assert rec["n_weights"] == sum(p.numel() for p in g.modules.parameters())
    assert rec["calculator"] == "fast"
    for key in (
        "device",
        "threads",
        "torch_version",
        "kernel",
        "machine",
        "cpu_model",
        "role",
        "arch",
        "seed",
    ):
        assert key in rec
    assert len(rec["block_times_s"]) == 3
