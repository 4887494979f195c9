"""Small shared test data."""

from __future__ import annotations

import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT

from aedistill.data.canonical import from_atoms_list


def tiny_emt(n: int = 6, seed: int = 0, lattice_jitter: float = 0.0):
    """Rattled fcc Al cells of 4 and 8 atoms labelled by EMT (with exact ε).

    ``lattice_jitter`` is the relative standard deviation of the lattice constant.
    """
    rng = np.random.default_rng(seed)
    frames, e, f, eps = [], [], [], []
    for i in range(n):
        a0 = 4.05 * (1 + lattice_jitter * rng.standard_normal()) if lattice_jitter else 4.05
        a = bulk("Al", "fcc", a=a0, cubic=True).repeat((1, 1, 1 + i % 2))
        a.rattle(0.08, seed=int(rng.integers(1 << 30)))
        a.calc = EMT()
        e.append(a.get_potential_energy())
        f.append(a.get_forces())
        eps.append(a.get_potential_energies())
        frames.append(a.copy())
    return from_atoms_list(frames, e, f, eps, source="emt")
