"""The LAMMPS side of the fast calculator: :class:`FastPairModel`, a one-interaction-layer
HIPNN evaluated on a directed neighbour list with ghost atoms (as LAMMPS' ML-IAP gives it,
wrapped for LAMMPS by :mod:`aedistill.mliap_model`), with its pair list
(:class:`_DirectedPairs`), environment sum (:class:`_DirectedEnvSum`) and interaction layer
(:class:`_DirectedInteract`) over :mod:`aedistill.directedkernels`; the network set-up and
energy evaluation are :mod:`aedistill.fastcalc`'s. Units: eV, Å.
"""

from __future__ import annotations

import numpy as np
import torch

from aedistill.densekernels import DenseHipnn, dense_supported
from aedistill.directedkernels import (
    directed_terms,
    env_backward_directed,
    env_backward_directed_single,
    env_forward_directed,
    env_forward_directed_single,
    forces_directed_single,
)
from aedistill.fastcalc import _FastHipnn, _FastInteract
from aedistill.pairkernels import env_backward_single, env_forward_single

__all__ = ["FastPairModel"]


class _DirectedPairs:
    """A full (``half``: half) neighbour list of one evaluation (numpy): i (a local atom),
    j (local or ghost) as listed, r_ij = R_j − R_i (Å), the owner of every atom (−1: unknown),
    the one-hot species of every atom, and, filled by :func:`directed_terms` for the kept
    entries, the partner ``pj`` whose environment the reverse term feeds where ``both``.
    ``comm`` (a half list whose ghosts keep their own rows): ``reverse_comm(a)`` adds the
    ghost rows of an (atoms, columns) array to their owners', ``forward_comm(a)`` copies the
    owners' rows to their ghosts' (LAMMPS' ``MLIAPDataPy`` has both)."""

    def __init__(
        self,
        pi,
        pj_list,
        rij,
        owner,
        z_all,
        n_first,
        half=False,
        comm=None,
        buffers=None,
        positions=None,
        list_key=None,
    ):
        self.pi = pi
        self.positions = positions
        self.half = half
        self.comm = comm
        self.pj_list = pj_list
        self.rij = rij
        self.owner = owner
        self.z_all = z_all
        self.n_first = n_first
        n = len(pi)
        # a half list from positions under a key (LAMMPS' raw pairs: one per neighbour-list
        # build): each entry feeds i and the owner of j (or j's own row with ``comm``); those
        # partners are computed once per key, not on every step
        self.fixed = positions is not None and half and list_key is not None
        if self.fixed:
            have = None if buffers is None else buffers.get("partners")
            if have is None or have[0] != list_key or len(have[1]) != n:
                pj_all = np.asarray(pj_list, dtype=np.int64)
                k = np.where(pj_all < n_first, pj_all, owner[pj_all])
                have = (list_key, k, np.ones(n, np.bool_))
                if buffers is not None:
                    buffers["partners"] = have
            self.pj, self.both = have[1], have[2]
            return
        have = None if buffers is None else buffers.get("pairs")
        if have is None or len(have[0]) < n:  # ``buffers``: reused from call to call
            have = (np.empty(n + n // 4, np.int64), np.empty(n + n // 4, np.bool_))
            if buffers is not None:
                buffers["pairs"] = have
        self.pj = have[0][:n]
        self.both = have[1][:n]


class _DirectedEnvSum(torch.autograd.Function):
    """Environment sum over directed pairs; gradient with respect to each pair vector."""

    @staticmethod
    def forward(ctx, rij, pairs, n_first, mu_inv, sigma, rc, vec):
        st = pairs
        sel, unit, sens, dsens, m = directed_terms(st, mu_inv, sigma, rc)
        nf = st.z_all.shape[1]
        # with ``comm`` a ghost's row collects its pairs' terms; they then reach the owner
        n_rows = len(st.z_all) if st.comm is not None else n_first
        env = np.zeros((n_rows, nf, len(mu_inv), 4 if vec else 1))
        env_forward_directed(st.pi, st.pj, st.both, sel, unit, sens, m, st.z_all, vec, env)
        if st.comm is not None:
            st.comm.reverse_comm(env.reshape(n_rows, -1))
            env = env[:n_first]
        ctx.state = st
        ctx.saved = (sel, unit, sens, dsens, m, vec)
        return torch.from_numpy(env).permute(0, 3, 2, 1).to(rij.dtype)

    @staticmethod
    def backward(ctx, grad_env):
        sel, unit, sens, dsens, m, vec = ctx.saved
        st = ctx.state
        g = np.ascontiguousarray(grad_env.detach().to(torch.float64).permute(0, 3, 2, 1).numpy())
        if st.comm is not None:  # dE/d(env) of each ghost = its owner's
            n_rows = len(st.z_all)
            g_all = np.zeros((n_rows, *g.shape[1:]))
            g_all[: len(g)] = g
            st.comm.forward_comm(g_all.reshape(n_rows, -1))
            g = g_all
        # entries not kept (mirrors, beyond the cutoff) get dE/dr = 0; none in a half list
        grad_pair = np.empty_like(st.rij) if m == len(st.rij) else np.zeros_like(st.rij)
        env_backward_directed(
            st.pi, st.pj, st.both, sel, unit, sens, dsens, m, st.z_all, vec, g, grad_pair
        )
        return torch.from_numpy(grad_pair), None, None, None, None, None, None


class _DirectedInteract(_FastInteract):
    """:class:`_FastInteract` over a full (directed) neighbour list with ghost atoms, as
    LAMMPS' ML-IAP gives it. Only valid as the *first* interaction layer: the features of
    the second atoms are their one-hot species (``holder.pairs.z_all``)."""

    def environment(self, in_features):
        h = self.holder
        return _DirectedEnvSum.apply(
            h.rij, h.pairs, in_features.shape[0], self.mu_inv, self.sigma, self.rc, self.vec
        )


class FastPairModel(_FastHipnn):
    """A one-interaction-layer HIPNN evaluated on a full, directed neighbour list.

    This is the form LAMMPS' ML-IAP "unified" interface gives: pairs (i, j) with i one of
    the ``n_first`` local atoms and j a local or ghost atom, their vectors
    r_ij = R_j − R_i (Å) and the element index of every atom. :meth:`evaluate` returns the
    local atoms' energies (eV) and a pair force f_ij per pair (eV/Å), from which LAMMPS adds
    F_i += f_ij and F_j −= f_ij. A local-local pair listed twice is evaluated once, its
    (i < j) entry carries the whole dE/dr_ij and the (j, i) entry 0; given each ghost's
    owner atom, a pair to a ghost and its periodic mirror likewise (else f_ij = dE/dr_ij of
    the directed pair, each side evaluated). Same network code and pair kernels as
    :class:`FastHipnnCalculator`, so the same energies and forces.

    Only one interaction layer: a second layer would need the ghost atoms' first-layer
    features, which a local neighbour list cannot give (hence ``NotImplementedError``).
    """

    def __init__(self, network, henergy, dtype=torch.float64, dense: bool | None = None):
        n_int = len(network.interaction_layers)
        if n_int != 1:
            raise NotImplementedError(
                f"directed-pair evaluation needs exactly 1 interaction layer, got {n_int}"
            )
        super().__init__(network, henergy, dtype, _DirectedInteract)
        self.n_weights = sum(p.numel() for p in (*network.parameters(), *henergy.parameters()))
        if dense is None:
            dense = dtype == torch.float64 and dense_supported(network, henergy)
        if dense and dtype != torch.float64:
            raise ValueError("the dense path (dense=True) runs in float64")
        # numpy dense layers as in FastHipnnCalculator (models pickled before they existed
        # lack the attribute: the torch path)
        self.dense = DenseHipnn(network, henergy) if dense else None

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_buffers", None)  # scratch arrays of the last evaluation
        state.pop("_lay", None)  # a reference into ``network``
        return state

    def __setstate__(self, state):
        state.setdefault("dense", None)
        self.__dict__.update(state)

    @property
    def comm_columns(self) -> int:
        """Doubles per atom of the environment sum (species × sensitivities × 1 or 4
        components): what a half-list evaluation with ``ghost_comm`` communicates per atom."""
        layer = self._interaction()
        return (len(self.species_set) - 1) * len(layer.mu_inv) * (4 if layer.vec else 1)

    def _interaction(self) -> _DirectedInteract:
        """The one interaction layer (looked up once: a walk over the modules costs ~0.1 ms)."""
        lay = self.__dict__.get("_lay")
        if lay is None:
            (lay,) = [m for m in self.network.modules() if isinstance(m, _DirectedInteract)]
            self._lay = lay
        return lay

    def evaluate(
        self,
        elems: np.ndarray,
        pair_i: np.ndarray,
        pair_j: np.ndarray,
        rij: np.ndarray,
        n_first: int,
        owner: np.ndarray | None = None,
        half: bool = False,
        ghost_comm=None,
        forces: np.ndarray | None = None,
        positions: np.ndarray | None = None,
        list_key=None,
        ghost_rows: bool = False,
    ) -> tuple[np.ndarray, float, np.ndarray | None]:
        """(ε of atoms 0..n_first−1 (eV), their sum (eV), dE/dr_ij (n_pairs, 3) eV/Å).

        The dE/dr_ij array may be a buffer that the next call overwrites (copy it to keep it).
        ``forces`` (optional, (atoms, 3) float64, ghosts included, e.g. LAMMPS' ``f``): add
        the pair forces to it instead (F_i += dE/dr_ij, F_j −= dE/dr_ij) and return None for
        dE/dr_ij; a single-species model on the dense path only (else ``ValueError``).

        ``elems``: element index (0-based, in ``species_set[1:]`` order) of every atom.
        ``owner`` (optional, one per atom): the local atom a ghost is an image of, −1 where
        unknown; with it each pair to a ghost is evaluated once instead of from both sides
        (its kept entry carries the whole dE/dr, the mirror entry 0). ``half``: the pairs are a
        half list (each physical pair once, as LAMMPS gives a model that asks for one); needs
        the owner of every ghost, or ``ghost_comm``.

        ``ghost_comm`` (with ``half``; atoms ``n_first`` on are ghosts): an object whose
        ``reverse_comm(a)`` adds each ghost's row of an (atoms, columns) float64 array to its
        owner's row and ``forward_comm(a)`` copies owners' rows to their ghosts' (LAMMPS' ML-IAP
        data, patched: ``scripts/lammps-mliap.patch``). A ghost's environment terms then reach
        its owner wherever that is, on this process or another; the owner's dE/d(environment)
        comes back the same way. Both are called once per evaluation, also with no pairs (they
        are collective across processes).

        ``positions`` (optional, (atoms, 3) float64, ghosts included, e.g. LAMMPS' ``x``):
        r_ij = positions[j] − positions[i] instead of ``rij`` (then None), so that the list may
        hold every pair of a Verlet list, those beyond the cutoff included (they are dropped);
        with ``forces`` only (the pair forces go to the atoms, there is no dE/dr_ij to return).
        ``list_key`` (with ``positions`` and ``half``): a value that changes whenever the
        pairs or the owners do (LAMMPS: once per neighbour-list build); while it equals the
        previous call's, each pair's partner atom is taken from that call.
        ``ghost_rows`` (with ``forces``): a pair's force on a ghost goes to the ghost's own row
        of ``forces``, also where the ghost's owner is known, so that Σ F·R over owned and
        ghost atoms is the virial (LAMMPS' F dot r pressure); else, with the owners, it may
        go to the owner's row (the same forces once LAMMPS adds ghosts' forces to owners).
        """
        n_all = len(elems)
        buffers = self.__dict__.setdefault("_buffers", {})
        z_all = buffers.get("z_all")  # the species of a list_key's atoms do not change
        if list_key is None or z_all is None or z_all[0] != list_key or len(z_all[1]) != n_all:
            z_all = (list_key, np.zeros((n_all, len(self.species_set) - 1)))
            z_all[1][np.arange(n_all), np.asarray(elems, dtype=np.int64)] = 1.0
            buffers["z_all"] = z_all
        z_all = z_all[1]
        n_pairs = len(pair_i)
        if ghost_comm is not None:
            if not half:
                raise ValueError("ghost_comm is for a half neighbour list (half=True)")
            owner = np.arange(n_all, dtype=np.int64)  # a ghost's terms go to its own row
        if owner is None:
            owner = np.full(n_all, -1, dtype=np.int64)
        if half and n_all > n_first and int(np.min(owner[n_first:])) < 0:
            raise ValueError(
                "a half neighbour list needs the local owner of every ghost atom "
                "(in LAMMPS: atom IDs, atom_modify id yes)"
            )
        # A full list holds every pair twice, (i, j) and (j, i) or its periodic mirror: each
        # is evaluated once into both environments where the partner is known; the dropped
        # entries keep dE/dr = 0. A half list holds each pair once
        # (aedistill.directedkernels._directed_geometry)
        if positions is not None:
            if forces is None or not self.direct_forces:
                raise ValueError(
                    "positions= needs forces= (a single-species model on the dense path)"
                )
            positions = np.ascontiguousarray(positions, dtype=np.float64).reshape(n_all, 3)
            rij64 = np.zeros((n_pairs, 0))  # never read: r_ij comes from the positions
        else:
            rij64 = np.ascontiguousarray(rij, dtype=np.float64).reshape(n_pairs, 3)
        pairs = _DirectedPairs(
            _index_array(pair_i),
            _index_array(pair_j),
            rij64,
            np.ascontiguousarray(owner, dtype=np.int64),
            z_all,
            n_first,
            half,
            ghost_comm,
            buffers,
            positions,
            list_key,
        )
        if forces is not None and not self.direct_forces:
            raise ValueError("forces= needs a single-species model on the dense path")
        if getattr(self, "dense", None) is not None:
            eps, grad_np = self._dense_evaluate(pairs, n_first, n_pairs, forces, ghost_rows)
            return eps, float(eps.sum()), grad_np
        rij_t = torch.from_numpy(rij64).requires_grad_(True)
        z = torch.from_numpy(z_all[:n_first]).to(self.dtype)
        # with ghost_comm the backward pass runs also without pairs: it communicates
        wrt = rij_t if n_pairs or ghost_comm is not None else None
        atom_en, energy, grad = self._energy(z, wrt, pairs=pairs, rij=rij_t)
        grad_np = grad.numpy() if n_pairs else np.zeros((0, 3))
        return atom_en.double().numpy()[:, 0], float(energy), grad_np

    @property
    def direct_forces(self) -> bool:
        """Whether :meth:`evaluate` can add pair forces to per-atom forces (``forces=``)."""
        return getattr(self, "dense", None) is not None and len(self.species_set) == 2

    def _dense_evaluate(
        self, st: _DirectedPairs, n_first: int, n_pairs: int, forces=None, ghost_rows=False
    ):
        """:meth:`evaluate`'s (ε, dE/dr_ij) by the directed pair kernels and the numpy dense
        layers (:mod:`aedistill.densekernels`); the same steps as :class:`_DirectedEnvSum`."""
        lay = self._interaction()
        buffers = self.__dict__.setdefault("_buffers", {})
        nf = st.z_all.shape[1]
        terms = directed_terms(st, lay.mu_inv, lay.sigma, lay.rc, buffers)
        sel, unit, sens, dsens, m = terms
        n_rows = len(st.z_all) if st.comm is not None else n_first
        if forces is not None:
            grad_pair = None
        elif nf == 1:  # every row written by env_backward_directed_single: a reused buffer
            have = buffers.get("grad_pair")
            if have is None or len(have) < n_pairs:
                have = buffers["grad_pair"] = np.empty((n_pairs + n_pairs // 4, 3))
            grad_pair = have[:n_pairs]
        else:
            grad_pair = np.zeros_like(st.rij)

        n_s, nc = len(lay.mu_inv), 4 if lay.vec else 1
        single = nf == 1  # one species: z ≡ 1, component-major kernels

        # a half list feeds both atoms of every pair (j: a local atom, or with ``comm`` a
        # ghost row): the ASE calculator's half-list kernels, faster than the directed ones
        # with their per-pair ``both`` (L1-W8-S4, 4,000 atoms: 3.6 → 3.0 ms per step forward,
        # 3.1 → 2.4 backward with forces)
        half_single = single and st.half

        def env_sum(_b, _x):
            if single:
                env = np.zeros((n_rows, nc, n_s))
                if half_single:
                    env_forward_single(st.pi, st.pj, sel, unit, sens, m, lay.vec, env)
                else:
                    env_forward_directed_single(
                        st.pi, st.pj, st.both, sel, unit, sens, m, lay.vec, env
                    )
            else:
                env = np.zeros((n_rows, nf, n_s, nc))
                env_forward_directed(
                    st.pi, st.pj, st.both, sel, unit, sens, m, st.z_all, lay.vec, env
                )
            if st.comm is not None:  # ghosts' rows reach their owners
                st.comm.reverse_comm(env.reshape(n_rows, -1))
                env = env[:n_first]
            if single:
                return env.reshape(len(env), nc, 1, n_s).transpose(0, 2, 3, 1)
            return env

        def env_grad(_b, g, _need_dx):
            if single:
                g = g[:, 0].transpose(0, 2, 1)
            if st.comm is not None:  # dE/d(env) of each ghost = its owner's
                g_all = np.zeros((n_rows, *g.shape[1:]))
                g_all[:n_first] = g
                st.comm.forward_comm(g_all.reshape(n_rows, -1))
                g = g_all
            g = np.ascontiguousarray(g)
            # a ghost's own row needed (ghost_rows) and the rows are owners': the directed
            # force kernel, which adds each pair's force to its listed partner
            owner_rows = st.comm is None
            if half_single and forces is not None and not (ghost_rows and owner_rows):
                # dE/dR of the rows, then F −= dE/dR
                grad_r = np.zeros((n_rows, 3))
                env_backward_single(st.pi, st.pj, sel, unit, sens, dsens, m, lay.vec, g, grad_r)
                forces[:n_rows] -= grad_r
            elif forces is not None:
                forces_directed_single(
                    st.pi, st.pj_list, st.pj, st.both, sel, unit, sens, dsens, m, lay.vec, g, forces
                )
            elif single:
                env_backward_directed_single(
                    st.pi, st.pj, st.both, sel, unit, sens, dsens, m, lay.vec, g, grad_pair
                )
            else:
                env_backward_directed(
                    st.pi,
                    st.pj,
                    st.both,
                    sel,
                    unit,
                    sens,
                    dsens,
                    m,
                    st.z_all,
                    lay.vec,
                    g,
                    grad_pair,
                )

        eps = self.dense.energy(st.z_all[:n_first], env_sum, env_grad)
        if forces is not None:
            return eps, None
        return eps, grad_pair if n_pairs else np.zeros((0, 3))


def _index_array(a) -> np.ndarray:
    """Pair indices as the kernels take them: int32 (as LAMMPS passes them) or int64, kept
    without a copy where already contiguous; anything else as int64."""
    a = np.asarray(a)
    dtype = a.dtype if a.dtype in (np.int32, np.int64) else np.int64
    return np.ascontiguousarray(a, dtype=dtype)
