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
