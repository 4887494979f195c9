"""The user's own data: any ASE-readable file with energies and forces (extxyz, ...)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from aedistill.data.canonical import Dataset, from_atoms_list
from aedistill.errors import UserInputError

ATOM_ENERGY_KEYS = ("energies", "atom_energies", "per_atom_energy")


def read_labelled_file(path: str | os.PathLike[str]) -> Dataset:
    """Read every frame of ``path`` with ASE; energies and forces must be present.

    Per-atom energies are taken from the calculator's ``energies`` or a per-atom array named
    one of :data:`ATOM_ENERGY_KEYS`, when every frame has them.
    """
    import ase.io

    p = Path(path)
    if not p.exists():
        raise UserInputError(f"{p}: dataset file not found (dataset.path)")
    try:
        frames = ase.io.read(p, index=":")
    except Exception as exc:  # ASE raises many types for malformed files
        raise UserInputError(f"{p}: cannot be read by ASE ({type(exc).__name__}: {exc})") from exc
    if not frames:
        raise UserInputError(f"{p}: contains no configurations")
    energies, forces, eps = [], [], []
    for i, a in enumerate(frames):
        try:
            energies.append(float(a.get_potential_energy()))
            forces.append(np.asarray(a.get_forces()))
        except Exception as exc:
            raise UserInputError(f"{p}: configuration {i} has no energy or forces ({exc})") from exc
        e = _atom_energies(a)
        eps.append(e)
    have_eps = all(e is not None for e in eps)
    return from_atoms_list(frames, energies, forces, eps if have_eps else None, source="extxyz")


def _atom_energies(atoms) -> np.ndarray | None:
    calc = atoms.calc
    if calc is not None and "energies" in getattr(calc, "results", {}):
        return np.asarray(calc.results["energies"], dtype=float)
    for key in ATOM_ENERGY_KEYS:
        if key in atoms.arrays:
            return np.asarray(atoms.arrays[key], dtype=float)
    return None


def write_labelled_file(path: str | os.PathLike[str], ds: Dataset) -> None:
    """Write a dataset as extxyz (energy, forces, per-atom energies if any)."""
    import ase.io
    from ase.calculators.singlepoint import SinglePointCalculator

    from aedistill.io import atomic_path

    frames = []
    for i in range(ds.n_conf):
        a = ds.to_atoms(i)
        mask = ds.species[i] > 0
        res = {"energy": float(ds.energy[i]), "forces": ds.forces[i][mask]}
        if ds.atom_energies is not None:
            res["energies"] = ds.atom_energies[i][mask]
        a.calc = SinglePointCalculator(a, **res)
        frames.append(a)
    with atomic_path(path) as tmp:
        ase.io.write(tmp, frames, format="extxyz")
