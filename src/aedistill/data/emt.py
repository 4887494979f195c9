"""Offline default reference: aluminium labelled by ASE's EMT (exact per-atom energies).

One EMT implementation only (ASE's) for MD sampling and labels alike. asap3's faster EMT
refuses cells shorter than twice its cutoff (the 32-atom cells and thin slabs here).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from aedistill.data.canonical import Dataset, from_atoms_list
from aedistill.data.generate import generate_configurations, label


def emt_calculator():
    """ASE's EMT (Jacobsen et al.), which provides exact per-atom energies."""
    from ase.calculators.emt import EMT

    return EMT()


def build_emt_dataset(config: Mapping[str, Any]) -> Dataset:
    """Generate and label the EMT aluminium dataset from ``config['dataset']['generate']``."""
    frames = generate_configurations(config["dataset"]["generate"], emt_calculator)
    energies, forces, eps = label(frames, emt_calculator())
    ds = from_atoms_list(frames, energies, forces, eps, source="emt")
    sums = np.array([e.sum() for e in eps])
    assert np.allclose(sums, ds.energy, atol=1e-8 * ds.n_atoms.max()), "EMT: Σε ≠ E"
    return ds


def rattled_fcc_emt(
    n_conf: int,
    seed: int = 0,
    repeat: int | None = None,
    rattle: float = 0.08,
    lattice_jitter: float = 0.0,
) -> Dataset:
    """``n_conf`` rattled fcc Al cells labelled by EMT (with exact ε): small data for tests and
    benches, seeded.

    ``repeat``: every cell is the cubic 4-atom cell repeated ``repeat`` times along each axis;
    None alternates 4- and 8-atom cells (1×1×1, 1×1×2). ``rattle``: standard deviation of the
    displacements (Å); ``lattice_jitter``: relative standard deviation of the lattice constant
    (4.05 Å).
    """
    from ase.build import bulk

    rng = np.random.default_rng(seed)
    frames, energies, forces, eps = [], [], [], []
    for i in range(n_conf):
        a0 = 4.05 * (1 + lattice_jitter * rng.standard_normal()) if lattice_jitter else 4.05
        reps = (repeat,) * 3 if repeat is not None else (1, 1, 1 + i % 2)
        atoms = bulk("Al", "fcc", a=a0, cubic=True).repeat(reps)
        atoms.rattle(rattle, seed=int(rng.integers(1 << 30)))
        atoms.calc = emt_calculator()
        energies.append(atoms.get_potential_energy())
        forces.append(atoms.get_forces())
        eps.append(atoms.get_potential_energies())
        frames.append(atoms.copy())
    return from_atoms_list(frames, energies, forces, eps, source="emt")
