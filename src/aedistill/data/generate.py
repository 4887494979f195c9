"""Configuration families for the offline aluminium references (EMT, MEAM).

Families (all periodic, 32-256 atoms): strained + rattled fcc bulk, vacancies, (100)/(110)/
(111) surface slabs with vacuum, and Langevin MD snapshots from ~300 K to above melting
(the 1200 K liquid RDF needs liquid-like configurations). The labelling calculator is passed
in, so MD snapshots are drawn from the same potential that labels them.

Optionally (``dataset.generate.n_compressed``; absent = none, the datasets made before the
key), compressed cells with one short pair (:func:`compressed_configs`). In the default
config (``config/config.yaml``) no other family has a pair below 2.04 Å (static families
≥ 2.52 Å, MD 2.04-2.61 Å, its 1500 K liquid the shortest), so a model learns no repulsion
below that and its 1200 K liquid can fuse atoms (closest pair 0.37 Å for a default-run
teacher, issue 25).

Everything is drawn from one ``numpy.random.Generator`` seeded by ``dataset.generate.seed``,
so the same config gives the same configurations.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.build import bulk, fcc100, fcc110, fcc111
from ase.calculators.calculator import Calculator
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

from aedistill.lammps import lattice_constant_for_density

log = logging.getLogger(__name__)

MD_TIMESTEP_FS = 2.0
MELT_TEMPERATURE_K = 933.0  # Al melting point; MD above it is first melted at 2500 K


def fcc_supercell(a: float, n: int) -> Atoms:
    """Cubic fcc Al supercell with 4 n³ atoms and lattice constant ``a`` (Å)."""
    return bulk("Al", "fcc", a=a, cubic=True).repeat((n, n, n))


def _strain(atoms: Atoms, rng: np.random.Generator, max_strain: float) -> None:
    eps = rng.uniform(-max_strain, max_strain, size=(3, 3))
    eps = 0.5 * (eps + eps.T)
    atoms.set_cell(atoms.cell[:] @ (np.eye(3) + eps), scale_atoms=True)


def _rattle(atoms: Atoms, rng: np.random.Generator, stdev: float) -> None:
    atoms.positions += rng.normal(0.0, stdev, size=atoms.positions.shape)


def bulk_configs(g: Mapping[str, Any], rng: np.random.Generator) -> list[Atoms]:
    out = []
    for _ in range(g["n_bulk"]):
        n = int(rng.choice(g["supercells"]))
        atoms = fcc_supercell(g["lattice_constant"] * (1 + rng.uniform(-0.02, 0.02)), n)
        _strain(atoms, rng, g["max_strain"])
        _rattle(atoms, rng, g["rattle"])
        out.append(atoms)
    return out


def vacancy_configs(g: Mapping[str, Any], rng: np.random.Generator) -> list[Atoms]:
    out = []
    for _ in range(g["n_vacancy"]):
        n = int(rng.choice(g["supercells"]))
        atoms = fcc_supercell(g["lattice_constant"], n)
        n_vac = int(rng.integers(1, 3))
        del atoms[sorted(rng.choice(len(atoms), size=n_vac, replace=False).tolist())]
        _strain(atoms, rng, 0.5 * g["max_strain"])
        _rattle(atoms, rng, g["rattle"])
        out.append(atoms)
    return out


def surface_configs(g: Mapping[str, Any], rng: np.random.Generator) -> list[Atoms]:
    builders = (fcc100, fcc110, fcc111)
    out = []
    for _ in range(g["n_surface"]):
        build = builders[int(rng.integers(len(builders)))]
        side = int(rng.integers(2, 4))
        layers = int(rng.integers(4, 7))
        atoms = build("Al", size=(side, side, layers), a=g["lattice_constant"], vacuum=5.0)
        atoms.pbc = True  # periodic in-plane; vacuum separates the slab's images along z
        _rattle(atoms, rng, g["rattle"])
        out.append(atoms)
    return out


#: closest pair (Å) of the compressed family, drawn uniformly: reaching below the pairs of
#: every other family (default config: ≥ 2.04 Å) and of the teachers' 1200 K liquids (EMT,
#: MEAM, ANI-Al: 2.08-2.19 Å, README), and above the models' default cutoff_soft_min
#: (1.5 Å), below which their sensitivities fade out
SHORT_PAIR_A = (1.7, 2.3)
#: compression of the compressed family's fcc lattice (fraction of lattice_constant)
COMPRESSION = (0.90, 0.97)


def compressed_configs(g: Mapping[str, Any], rng: np.random.Generator) -> list[Atoms]:
    """``n_compressed`` fcc cells, the lattice compressed to 90-97 % and rattled, in which one
    atom pair (an atom and its nearest neighbour, moved symmetrically along their bond) is
    set to a distance drawn from :data:`SHORT_PAIR_A`: the closest pair of the cell. These
    sample the short-range repulsion that a 1200 K liquid reaches only rarely but must not
    pass. ``n_compressed`` absent = 0 (no draws from ``rng``)."""
    out = []
    for _ in range(int(g.get("n_compressed") or 0)):
        n = int(rng.choice(g["supercells"]))
        atoms = fcc_supercell(g["lattice_constant"] * rng.uniform(*COMPRESSION), n)
        _rattle(atoms, rng, g["rattle"])
        i = int(rng.integers(len(atoms)))
        vec = atoms.get_distances(i, range(len(atoms)), mic=True, vector=True)
        dist = np.linalg.norm(vec, axis=1)
        dist[i] = np.inf
        j = int(np.argmin(dist))
        target = rng.uniform(*SHORT_PAIR_A)
        shift = 0.5 * (dist[j] - target) * vec[j] / dist[j]
        atoms.positions[i] += shift
        atoms.positions[j] -= shift
        atoms.wrap()
        out.append(atoms)
    return out


def md_configs(
    g: Mapping[str, Any],
    rng: np.random.Generator,
    make_calculator: Callable[[], Calculator],
) -> list[Atoms]:
    """Langevin snapshots: ``n_md`` spread evenly over temperatures and supercell sizes.

    Each (temperature, supercell) trajectory equilibrates for ``md_steps`` steps (above the
    melting point it first melts at 2500 K for ``md_steps``), then yields a snapshot every
    ``md_interval`` steps. Below the melting point the cell is the thermally expanded
    crystal; above it, the liquid at ``liquid_density`` (g/cm³, the liquid RDF run's
    density), so the models are trained on the liquid they are tested on.
    """
    jobs = [(float(t), int(n)) for t in g["md_temperatures"] for n in g["supercells"]]
    counts = np.full(len(jobs), g["n_md"] // len(jobs))
    counts[: g["n_md"] % len(jobs)] += 1
    calc = make_calculator()
    out: list[Atoms] = []
    for (temp, n), count in zip(jobs, counts, strict=True):
        if count == 0:
            continue
        if temp > MELT_TEMPERATURE_K:  # liquid at the density the RDF run simulates
            a = lattice_constant_for_density(float(g["liquid_density"]))
        else:  # solid, ~1 % thermal expansion per 1000 K
            a = g["lattice_constant"] * (1 + 0.01 * temp / 1000)
        atoms = fcc_supercell(a, n)
        _rattle(atoms, rng, g["rattle"])
        atoms.calc = calc
        if temp > MELT_TEMPERATURE_K:
            _langevin(atoms, 2500.0, g["md_steps"], rng)
        dyn = _langevin(atoms, temp, g["md_steps"], rng)
        for _ in range(count):
            dyn.run(g["md_interval"])
            snap = atoms.copy()
            snap.calc = None
            snap.wrap()
            out.append(snap)
        log.info("MD %6.0f K, %3d atoms: %d snapshots", temp, len(atoms), count)
    return out


def _langevin(atoms: Atoms, temp: float, steps: int, rng: np.random.Generator) -> Langevin:
    """Run ``steps`` Langevin steps at ``temp`` (K) from fresh Maxwell-Boltzmann velocities."""
    MaxwellBoltzmannDistribution(atoms, temperature_K=temp, rng=rng)
    dyn = Langevin(
        atoms,
        MD_TIMESTEP_FS * units.fs,
        temperature_K=temp,
        friction=0.02,
        fixcm=False,
        rng=rng,
    )
    dyn.run(steps)
    return dyn


def generate_configurations(
    g: Mapping[str, Any], make_calculator: Callable[[], Calculator]
) -> list[Atoms]:
    """All families in a fixed order (bulk, vacancy, surface, MD, then the optional
    compressed cells), from ``g["seed"]``: a config without ``n_compressed`` gives the same
    configurations as before that key, and one with it the same ones followed by the
    compressed cells."""
    rng = np.random.default_rng(g["seed"])
    frames = bulk_configs(g, rng) + vacancy_configs(g, rng) + surface_configs(g, rng)
    log.info("static configurations: %d", len(frames))
    frames += md_configs(g, rng, make_calculator)
    compressed = compressed_configs(g, rng)
    if compressed:
        log.info("compressed configurations (one short pair each): %d", len(compressed))
    frames += compressed
    log.info("all configurations: %d", len(frames))
    return frames


def label(frames: list[Atoms], calc: Calculator, per_atom: bool = True):
    """Energies (eV), forces (eV/Å) and per-atom energies (eV) of ``frames`` under ``calc``."""
    energies, forces, atom_energies = [], [], []
    for atoms in frames:
        a = atoms.copy()
        a.calc = calc
        energies.append(a.get_potential_energy())
        forces.append(a.get_forces().copy())
        if per_atom:
            atom_energies.append(a.get_potential_energies().copy())
    return energies, forces, (atom_energies if per_atom else None)
