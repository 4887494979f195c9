"""Offline many-body reference: aluminium labelled by LAMMPS' MEAM (angular terms).

The potential is the aluminium part of the 2NN MEAM Al-Si-Mg-Cu-Fe potential of Jelinek et
al., Phys. Rev. B 85, 245102 (2012), shipped in ``aedistill/data/potentials/`` (copied from
LAMMPS' ``potentials/`` directory; see the README there). Measured with this module: fcc
lattice constant 4.050 Å, cohesive energy 3.353 eV/atom, stable NVT MD at 300-1500 K,
liquid first RDF peak ≈ 2.73 Å at 1200 K and 2.375 g/cm³.

:class:`MeamCalculator` is an ASE calculator around one LAMMPS instance (``pair_style
meam``), reused for every call: energies (eV), forces (eV/Å) and exact per-atom energies
(``compute pe/atom``; Σε = E is checked on every call). The configuration families are those
of :mod:`aedistill.data.generate` (the same as the EMT reference), so the two references
differ only in the potential.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from aedistill.data.canonical import Dataset, from_atoms_list
from aedistill.errors import UserInputError
from aedistill.lammps import (
    box_commands,
    extract_by_id,
    import_lammps,
    lammps_box,
    new_lammps,
    wrapped_lammps_positions,
)

log = logging.getLogger(__name__)

AL_MASS = 26.9815  # g/mol
#: MEAM parameter sets shipped with the package: name -> (library file, element, parameter file)
POTENTIALS = {
    "Al_Jelinek2012": ("AlS_library.meam", "AlS", "Al_Jelinek2012.meam"),
}
DEFAULT_POTENTIAL = "Al_Jelinek2012"
SUM_TOLERANCE_PER_ATOM = 1e-6  # eV; |Σε − E| allowed per atom


def potential_dir() -> Path:
    """Directory of the MEAM parameter files shipped in the package."""
    return Path(str(resources.files("aedistill.data") / "potentials"))


def meam_pair_commands(potential: str = DEFAULT_POTENTIAL) -> list[str]:
    """LAMMPS ``pair_style``/``pair_coeff`` lines of a shipped MEAM potential (one Al type)."""
    if potential not in POTENTIALS:
        raise UserInputError(
            f"dataset.meam.potential: unknown MEAM potential {potential!r} "
            f"(expected one of {sorted(POTENTIALS)})"
        )
    lib, elem, par = POTENTIALS[potential]
    pdir = potential_dir()
    return ["pair_style meam", f"pair_coeff * * {pdir / lib} {elem} {pdir / par} {elem}"]


class MeamCalculator(Calculator):
    """ASE calculator: LAMMPS ``pair_style meam`` for aluminium, one reused LAMMPS instance.

    Properties: ``energy``/``free_energy`` (eV), ``forces`` (eV/Å), ``energies`` (per-atom
    energies ε from ``compute pe/atom``, eV; ``get_potential_energies()``). Only periodic
    cells of aluminium are supported (slabs carry vacuum inside a periodic cell).
    """

    implemented_properties = ["energy", "free_energy", "forces", "energies"]

    def __init__(self, potential: str = DEFAULT_POTENTIAL, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        meam_pair_commands(potential)  # validates the name
        self.potential = potential
        self._lmp = None
        self._box_key: tuple | None = None
        self._rot = np.eye(3)

    # -- LAMMPS instance -------------------------------------------------------------------
    def _lammps(self):
        if self._lmp is None:
            self._lmp = new_lammps(mliap=False)
        return self._lmp

    def _setup(self, atoms) -> None:
        """(Re)create the box and atoms for ``atoms`` (new size, cell or pbc)."""
        if not np.all(atoms.numbers == 13):
            raise UserInputError("MEAM reference: only aluminium (Z = 13) is supported")
        if not np.all(atoms.pbc):
            raise UserInputError(
                "MEAM reference: configurations must be periodic in x, y and z "
                "(put slabs in a periodic cell with vacuum)"
            )
        lcell, rot = lammps_box(atoms.cell[:])
        lmp = self._lammps()
        lmp.command("clear")
        lmp.commands_string(
            "\n".join(
                [
                    "units metal",
                    "atom_style atomic",
                    "atom_modify map array sort 0 0.0",
                    *box_commands(lcell, 1),
                    f"mass 1 {AL_MASS}",
                    *meam_pair_commands(self.potential),
                    "compute eatom all pe/atom",
                    "compute esum all reduce sum c_eatom",
                    "thermo_style custom step pe c_esum",
                    "thermo_modify norm no",
                ]
            )
        )
        n = len(atoms)
        x = wrapped_lammps_positions(atoms.positions, rot, lcell)
        lmp.create_atoms(n, list(range(1, n + 1)), [1] * n, x.ravel().tolist())
        if lmp.get_natoms() != n:
            raise RuntimeError(f"LAMMPS kept {lmp.get_natoms()} of {n} atoms")
        self._rot = rot
        self._lcell = lcell
        self._box_key = (n, atoms.cell[:].tobytes())

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        a = self.atoms
        key = (len(a), a.cell[:].tobytes())
        if key != self._box_key or "numbers" in system_changes or "pbc" in system_changes:
            self._setup(a)
        lmp = self._lmp
        n = len(a)
        x = wrapped_lammps_positions(a.positions, self._rot, self._lcell)
        ids = lmp.numpy.extract_atom("id")[:n].copy()
        xl = lmp.numpy.extract_atom("x")
        xl[:n] = x[ids - 1]
        lmp.command("run 0 post no")
        energy = float(lmp.get_thermo("pe"))
        f = extract_by_id(lmp, "f", n) @ self._rot.T
        lammps = import_lammps()
        eatom = lmp.numpy.extract_compute("eatom", lammps.LMP_STYLE_ATOM, lammps.LMP_TYPE_VECTOR)
        ids = np.asarray(lmp.numpy.extract_atom("id")[:n])
        eps = np.array(eatom[:n])[np.argsort(ids)]
        if abs(eps.sum() - energy) > SUM_TOLERANCE_PER_ATOM * n:
            raise RuntimeError(f"MEAM: Σε = {eps.sum():.8f} eV ≠ E = {energy:.8f} eV")
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": f,
            "energies": eps,
        }

    def close(self) -> None:
        if self._lmp is not None:
            self._lmp.close()
            self._lmp = None
            self._box_key = None

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass


def meam_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """``dataset.meam`` with defaults (the schema fills them; this keeps old configs working)."""
    return {"potential": DEFAULT_POTENTIAL, **dict(config["dataset"].get("meam", {}) or {})}


def build_meam_dataset(config: Mapping[str, Any]) -> Dataset:
    """Generate the configuration families and label them with MEAM aluminium.

    Deterministic from ``dataset.generate.seed``: the MD snapshots are drawn with the same
    MEAM calculator that labels them. Σε = E is checked for every configuration.
    """
    from aedistill.data.generate import generate_configurations, label

    potential = meam_settings(config)["potential"]
    calc = MeamCalculator(potential)
    frames = generate_configurations(config["dataset"]["generate"], lambda: calc)
    energies, forces, eps = label(frames, calc)
    calc.close()
    ds = from_atoms_list(frames, energies, forces, eps, source="meam")
    n = ds.n_atoms
    sums = np.array([e.sum() for e in eps])
    bad = np.abs(sums - ds.energy) > SUM_TOLERANCE_PER_ATOM * n
    if bad.any():
        raise RuntimeError(f"MEAM: Σε ≠ E for configurations {np.flatnonzero(bad).tolist()}")
    log.info(
        "MEAM (%s): %d configurations, E/atom %.3f..%.3f eV",
        potential,
        ds.n_conf,
        float((ds.energy / n).min()),
        float((ds.energy / n).max()),
    )
    return ds
