"""The directed-pair (LAMMPS ML-IAP layout) evaluation of a HIPNN against hippynn's own
ASE calculator, with pairs and ghost atoms from ASE's neighbour list (an independent path)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.neighborlist import neighbor_list

from aedistill import models
from aedistill.arch import Arch
from aedistill.fastcalc import FastHipnnCalculator
from aedistill.fastpair import FastPairModel


def _graph(slug: str, l_max: int = 1, interaction_layers: int = 1, seed: int = 0):
    spec = models.ModelSpec(
        arch=Arch.from_slug(slug), species=(13,), l_max=l_max, interaction_layers=interaction_layers
    )
    return models.build_training_graph(spec, seed)


def _lammps_layout(atoms, cutoff: float):
    """Full neighbour list as LAMMPS builds it: local atoms first, each periodic image that
    is a neighbour becomes a ghost atom; pairs (i local, j local or ghost), r_ij = R_j − R_i.
    Also the entries of a half list (each physical pair once: i < j, or an atom and its own
    image with a positive shift)."""
    i, j, shifts = neighbor_list("ijS", atoms, cutoff)
    n = len(atoms)
    ghost_of: dict[tuple[int, int, int, int], int] = {}
    ghosts_src = []
    pair_j = np.empty_like(j)
    for p, (jj, s) in enumerate(zip(j, shifts, strict=True)):
        if not s.any():
            pair_j[p] = jj
            continue
        key = (int(jj), *map(int, s))
        if key not in ghost_of:
            ghost_of[key] = n + len(ghosts_src)
            ghosts_src.append(jj)
        pair_j[p] = ghost_of[key]
    rij = atoms.positions[j] + shifts @ atoms.cell.array - atoms.positions[i]
    elems = np.zeros(n + len(ghosts_src), dtype=np.int64)  # one element: Al
    positive = [tuple(s) > (0, 0, 0) for s in shifts]
    half = (i < j) | ((i == j) & np.asarray(positive, dtype=bool))
    return elems, i, pair_j, rij, ghosts_src, half


class _GhostComm:
    """LAMMPS' ghost communication in one process: a ghost row is an image of row
    ``owner[g]``; reverse adds ghost rows to their owners', forward copies owners' rows to
    their ghosts'. Counts the calls (collective in LAMMPS: exactly one each per step)."""

    def __init__(self, owner: np.ndarray, n_local: int):
        self.owner, self.n = owner, n_local
        self.calls = {"reverse": 0, "forward": 0}

    def reverse_comm(self, a: np.ndarray) -> None:
        assert a.flags.c_contiguous and a.dtype == np.float64 and len(a) == len(self.owner)
        np.add.at(a, self.owner[self.n :], a[self.n :])
        self.calls["reverse"] += 1

    def forward_comm(self, a: np.ndarray) -> None:
        assert a.flags.c_contiguous and a.dtype == np.float64 and len(a) == len(self.owner)
        a[self.n :] = a[self.owner[self.n :]]
        self.calls["forward"] += 1


@pytest.mark.parametrize("mode", ["directed-ghosts", "ghost-owners", "half-list", "half-comm"])
@pytest.mark.parametrize("slug,l_max", [("L1-W8-S4", 1), ("L2-W16-S8", 1), ("L2-W16-S8", 0)])
def test_pair_model_equals_hippynn_calculator(slug, l_max, mode):
    import ase.units
    from hippynn.interfaces.ase_interface import HippynnCalculator

    g = _graph(slug, l_max)
    atoms = bulk("Al", "fcc", a=4.05).repeat((3, 2, 2))
    atoms.rattle(0.15, seed=3)
    ref = HippynnCalculator(g.energy, en_unit=ase.units.eV)
    ref.to(torch.float64)
    atoms.calc = ref
    e_ref, f_ref = atoms.get_potential_energy(), atoms.get_forces()

    model = FastPairModel(g.modules["network"], g.modules["henergy"])
    elems, pi, pj, rij, ghosts, half = _lammps_layout(atoms, model.rc)
    assert len(ghosts) > len(atoms)  # the small cell really needs ghost atoms
    owner = np.concatenate([np.arange(len(atoms)), np.asarray(ghosts, dtype=np.int64)])
    with_owner = mode == "ghost-owners"
    if mode.startswith("half"):  # as the patched ML-IAP gives it: each pair once, self-images too
        assert half.sum() * 2 == len(pi) and (owner[pj[half]] == pi[half]).any()
        pi, pj, rij = pi[half], pj[half], rij[half]
    # half-comm: a ghost's terms go to its own row and reach the owner by communication
    comm = _GhostComm(owner, len(atoms)) if mode == "half-comm" else None
    eps, energy, grad = model.evaluate(
        elems,
        pi,
        pj,
        rij,
        len(atoms),
        owner=None if mode in ("directed-ghosts", "half-comm") else owner,
        half=mode.startswith("half"),
        ghost_comm=comm,
    )
    if comm is not None:
        assert comm.calls == {"reverse": 1, "forward": 1}
    if with_owner:  # every pair to a ghost that is not a self-image is evaluated once
        ghost_pair = pj >= len(atoms)
        mirrored = ghost_pair & (owner[pj] != pi)
        assert mirrored.sum() > 0
        assert (np.abs(grad[mirrored]).sum(axis=1) == 0).sum() == mirrored.sum() // 2
    # LAMMPS' update_pair_forces: F_i += dE/dr_ij, F_j -= dE/dr_ij; ghosts fold back
    f = np.zeros((len(elems), 3))
    np.add.at(f, pi, grad)
    np.add.at(f, pj, -grad)
    forces = np.zeros((len(atoms), 3))
    np.add.at(forces, owner, f)

    scale = np.abs(f_ref).max()
    assert scale > 1e-3
    assert energy == pytest.approx(e_ref, rel=1e-9)
    assert np.abs(forces - f_ref).max() <= 1e-6 * scale
    # per-atom energies: those of the half-list ASE calculator (its own neighbour list)
    half = atoms.copy()
    half.calc = FastHipnnCalculator.from_modules(g.modules, dtype=torch.float64)
    np.testing.assert_allclose(eps, half.get_potential_energies(), rtol=0, atol=1e-9)
    assert np.abs(forces - f_ref).max() <= 1e-6 * scale


def test_pair_model_refuses_two_interaction_layers():
    g = _graph("L1-W8-S4", 1, interaction_layers=2)
    with pytest.raises(NotImplementedError, match="exactly 1 interaction layer"):
        FastPairModel(g.modules["network"], g.modules["henergy"])


def test_pair_model_without_pairs_gives_self_energies():
    g = _graph("L1-W8-S4")
    model = FastPairModel(g.modules["network"], g.modules["henergy"])
    none = np.zeros(0, dtype=np.int64)
    eps, energy, grad = model.evaluate(np.zeros(2, dtype=np.int64), none, none, np.zeros((0, 3)), 2)
    assert grad.shape == (0, 3)
    assert eps[0] == pytest.approx(eps[1]) and energy == pytest.approx(2 * eps[0])


def test_pair_model_communicates_without_pairs():
    """A rank whose atoms have no pairs in its half list still takes part in both
    communications (collective in LAMMPS) and gets its atoms' environments from them."""
    g = _graph("L1-W8-S4")
    model = FastPairModel(g.modules["network"], g.modules["henergy"])
    none = np.zeros(0, dtype=np.int64)
    comm = _GhostComm(np.array([0, 1, 0]), 2)  # two local atoms, one ghost (of atom 0)
    eps, energy, grad = model.evaluate(
        np.zeros(3, dtype=np.int64), none, none, np.zeros((0, 3)), 2, half=True, ghost_comm=comm
    )
    assert comm.calls == {"reverse": 1, "forward": 1} and grad.shape == (0, 3)
    assert eps[0] == pytest.approx(eps[1]) and energy == pytest.approx(2 * eps[0])


def test_pair_model_half_list_needs_ghost_owners():
    """Without owners a half list would lose the ghost side of each pair: refused."""
    g = _graph("L1-W8-S4")
    model = FastPairModel(g.modules["network"], g.modules["henergy"])
    atoms = bulk("Al", "fcc", a=4.05).repeat((3, 2, 2))
    elems, pi, pj, rij, _, half = _lammps_layout(atoms, model.rc)
    with pytest.raises(ValueError, match="owner of every ghost"):
        model.evaluate(elems, pi[half], pj[half], rij[half], len(atoms), half=True)


@pytest.mark.parametrize("mode", ["directed-ghosts", "half-comm"])
def test_pair_model_direct_forces_equal_pair_forces(mode):
    """evaluate(forces=f) adds to f what LAMMPS' update_pair_forces adds from dE/dr_ij."""
    g = _graph("L1-W8-S4", 1)
    atoms = bulk("Al", "fcc", a=4.05).repeat((3, 2, 2))
    atoms.rattle(0.15, seed=3)
    model = FastPairModel(g.modules["network"], g.modules["henergy"])
    assert model.direct_forces
    elems, pi, pj, rij, ghosts, half = _lammps_layout(atoms, model.rc)
    owner = np.concatenate([np.arange(len(atoms)), np.asarray(ghosts, dtype=np.int64)])
    if mode == "half-comm":
        pi, pj, rij = pi[half], pj[half], rij[half]
    pi, pj = pi.astype(np.int32), pj.astype(np.int32)  # as LAMMPS passes them

    def run(forces):
        comm = _GhostComm(owner, len(atoms)) if mode == "half-comm" else None
        return model.evaluate(
            elems, pi, pj, rij, len(atoms), half=comm is not None, ghost_comm=comm, forces=forces
        )

    eps, energy, grad = run(None)
    grad = grad.copy()
    f_ref = np.zeros((len(elems), 3))
    np.add.at(f_ref, pi, grad)
    np.add.at(f_ref, pj, -grad)
    f = np.ones((len(elems), 3))  # added to, not overwritten
    eps2, energy2, none = run(f)
    assert none is None and energy2 == energy
    np.testing.assert_allclose(f - 1.0, f_ref, rtol=0, atol=1e-12 * np.abs(f_ref).max())


def test_pair_model_pickled_under_old_module_loads():
    """LAMMPS exports written before FastPairModel moved from aedistill.fastcalc to
    aedistill.fastpair name the old module; they still load and give the same energies."""
    import pickle

    g = _graph("L1-W8-S4")
    model = FastPairModel(g.modules["network"], g.modules["henergy"])
    new = pickle.dumps(model, protocol=2)  # torch.save's protocol: GLOBAL module\nname
    old = new.replace(b"aedistill.fastpair", b"aedistill.fastcalc")  # same length
    assert b"aedistill.fastcalc\nFastPairModel" in old
    assert b"aedistill.fastcalc\n_DirectedInteract" in old
    loaded = pickle.loads(old)
    assert type(loaded) is FastPairModel
    none = np.zeros(0, dtype=np.int64)
    args = (np.zeros(2, dtype=np.int64), none, none, np.zeros((0, 3)), 2)
    assert loaded.evaluate(*args)[1] == model.evaluate(*args)[1]
