"""The canonical dataset: one HDF5 file every model downstream reads.

Layout of ``dataset.h5`` (configurations padded to ``n_max`` atoms, padding has species 0):

==================  ======================  =====================================
dataset             shape                   meaning / unit
==================  ======================  =====================================
``species``         (n_conf, n_max) int64   atomic numbers, 0 = padding
``positions``       (n_conf, n_max, 3)      Å
``cell``            (n_conf, 3, 3)          Å, rows are lattice vectors
``pbc``             (n_conf, 3) bool        periodic directions
``energy``          (n_conf,)               total energy, eV
``forces``          (n_conf, n_max, 3)      eV/Å
``atom_energies``   (n_conf, n_max)         optional: exact per-atom energies, eV
``energy_member_``  (n_conf,)               optional: std of the total energy over
``std``                                     the reference ensemble's members, eV
==================  ======================  =====================================

File attributes: ``source`` (emt, meam, ani-al, ani-al-model, extxyz), ``units`` ("eV, Å").
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from aedistill.errors import UserInputError
from aedistill.io import atomic_path

MAX_ABS_ENERGY_PER_ATOM = 1000.0  # eV; above this the energies are surely in another unit


@dataclass
class Dataset:
    """Padded arrays of a set of labelled configurations (see module docstring for units)."""

    species: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    energy: np.ndarray
    forces: np.ndarray
    atom_energies: np.ndarray | None = None
    source: str = "unknown"
    #: (n_conf,) eV: spread of the reference's ensemble members (ani-al-model), else None
    energy_member_std: np.ndarray | None = None
    #: facts about how the data was made, merged into ``summary.json`` (not stored in HDF5)
    info: dict = field(default_factory=dict)

    @property
    def n_conf(self) -> int:
        return int(self.species.shape[0])

    @property
    def n_atoms(self) -> np.ndarray:
        """Number of real atoms per configuration, shape (n_conf,)."""
        return (self.species > 0).sum(axis=1)

    def subset(self, idx: np.ndarray) -> Dataset:
        """Configurations ``idx`` (same padding)."""
        ae = None if self.atom_energies is None else self.atom_energies[idx]
        spread = None if self.energy_member_std is None else self.energy_member_std[idx]
        return Dataset(
            self.species[idx],
            self.positions[idx],
            self.cell[idx],
            self.pbc[idx],
            self.energy[idx],
            self.forces[idx],
            ae,
            self.source,
            spread,
            dict(self.info),
        )

    def to_atoms(self, i: int):
        """Configuration ``i`` as an :class:`ase.Atoms` (no calculator)."""
        from ase import Atoms

        mask = self.species[i] > 0
        return Atoms(
            numbers=self.species[i][mask],
            positions=self.positions[i][mask],
            cell=self.cell[i],
            pbc=self.pbc[i],
        )


def from_atoms_list(
    frames: Sequence,
    energies: Sequence[float],
    forces: Sequence[np.ndarray],
    atom_energies: Sequence[np.ndarray] | None = None,
    source: str = "unknown",
) -> Dataset:
    """Pad a list of ASE Atoms with labels into a :class:`Dataset`."""
    n = len(frames)
    if n == 0:
        raise UserInputError(f"{source}: no configurations")
    n_max = max(len(a) for a in frames)
    species = np.zeros((n, n_max), dtype=np.int64)
    pos = np.zeros((n, n_max, 3))
    frc = np.zeros((n, n_max, 3))
    ae = None if atom_energies is None else np.zeros((n, n_max))
    cell = np.zeros((n, 3, 3))
    pbc = np.zeros((n, 3), dtype=bool)
    for i, a in enumerate(frames):
        k = len(a)
        species[i, :k] = a.numbers
        pos[i, :k] = a.positions
        if np.size(forces[i]) != 3 * k:
            raise UserInputError(
                f"{source}: configuration {i}: forces have {np.size(forces[i])} values "
                f"for {k} atoms (expected {3 * k})"
            )
        frc[i, :k] = np.asarray(forces[i]).reshape(k, 3)
        if ae is not None:
            ae[i, :k] = np.asarray(atom_energies[i]).reshape(k)
        cell[i] = np.asarray(a.cell[:])
        pbc[i] = a.pbc
    return Dataset(
        species, pos, cell, pbc, np.asarray(energies, dtype=float).reshape(n), frc, ae, source
    )


def validate_dataset(ds: Dataset, where: str, allowed_species: Sequence[int]) -> None:
    """Check a dataset at the boundary; raise :class:`UserInputError` naming ``where`` + index.

    Checks: non-empty, consistent shapes, finite values, species within ``allowed_species``,
    a non-degenerate cell for periodic configurations, plausible energy unit
    (|E/atom| ≤ 1000 eV).
    """
    n = ds.n_conf
    if n == 0:
        raise UserInputError(f"{where}: dataset is empty")
    n_max = ds.species.shape[1]
    expected = {
        "positions": (n, n_max, 3),
        "forces": (n, n_max, 3),
        "cell": (n, 3, 3),
        "pbc": (n, 3),
        "energy": (n,),
    }
    if ds.atom_energies is not None:
        expected["atom_energies"] = (n, n_max)
    if ds.energy_member_std is not None:
        expected["energy_member_std"] = (n,)
    for name, shape in expected.items():
        got = getattr(ds, name).shape
        if got != shape:
            raise UserInputError(f"{where}: {name} has shape {got}, expected {shape}")
    n_atoms = ds.n_atoms
    allowed = set(int(z) for z in allowed_species)
    for i in range(n):
        if n_atoms[i] == 0:
            raise UserInputError(f"{where}: configuration {i} has no atoms")
        mask = ds.species[i] > 0
        bad = set(np.unique(ds.species[i][mask]).tolist()) - allowed
        if bad:
            raise UserInputError(
                f"{where}: configuration {i} has elements {sorted(bad)} not in the configured "
                f"species {sorted(allowed)} (dataset.species)"
            )
        arrays = {
            "positions": ds.positions[i][mask],
            "forces": ds.forces[i][mask],
            "energy": ds.energy[i],
        }
        if ds.atom_energies is not None:
            arrays["atom_energies"] = ds.atom_energies[i][mask]
        for name, arr in arrays.items():
            if not np.all(np.isfinite(arr)):
                raise UserInputError(f"{where}: configuration {i}: {name} contains NaN or inf")
        if ds.pbc[i].any():
            vol = abs(np.linalg.det(ds.cell[i]))
            if not np.isfinite(vol) or vol < 1e-6:
                raise UserInputError(
                    f"{where}: configuration {i} is periodic ({ds.pbc[i].tolist()}) but has no cell"
                )
        e_per_atom = abs(ds.energy[i]) / n_atoms[i]
        if e_per_atom > MAX_ABS_ENERGY_PER_ATOM:
            raise UserInputError(
                f"{where}: configuration {i}: |E|/atom = {e_per_atom:.3g} eV > "
                f"{MAX_ABS_ENERGY_PER_ATOM:g} eV (energies must be in eV)"
            )


def save_dataset(path: str | os.PathLike[str], ds: Dataset) -> None:
    """Write the canonical HDF5 file atomically."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["source"] = ds.source
            f.attrs["units"] = "energy eV, length Å, forces eV/Å"
            f.create_dataset("species", data=ds.species.astype(np.int64))
            for name in ("positions", "cell", "energy", "forces"):
                f.create_dataset(name, data=np.asarray(getattr(ds, name), dtype=np.float64))
            f.create_dataset("pbc", data=ds.pbc.astype(bool))
            if ds.atom_energies is not None:
                f.create_dataset("atom_energies", data=ds.atom_energies.astype(np.float64))
            if ds.energy_member_std is not None:
                f.create_dataset(
                    "energy_member_std", data=np.asarray(ds.energy_member_std, dtype=np.float64)
                )


def load_dataset(path: str | os.PathLike[str]) -> Dataset:
    """Read a canonical dataset written by :func:`save_dataset`."""
    p = Path(path)
    if not p.exists():
        raise UserInputError(f"{p}: dataset file not found")
    try:
        with h5py.File(p, "r") as f:
            ae = f["atom_energies"][()] if "atom_energies" in f else None
            spread = f["energy_member_std"][()] if "energy_member_std" in f else None
            return Dataset(
                species=f["species"][()],
                positions=f["positions"][()],
                cell=f["cell"][()],
                pbc=f["pbc"][()],
                energy=f["energy"][()],
                forces=f["forces"][()],
                atom_energies=ae,
                source=str(f.attrs.get("source", "unknown")),
                energy_member_std=spread,
            )
    except (OSError, KeyError) as exc:
        raise UserInputError(f"{p}: not a readable canonical dataset ({exc})") from exc
