"""A fast ASE calculator for HIPNN models (CPU): fused numba pair kernels + Verlet lists.

Same model, same energies and forces as hippynn's ``HippynnCalculator`` (tested to round-off),
about an order of magnitude faster on a CPU for the small models of this project. Where the
time went in the reference calculator, and what replaced it (measured, see ``bench/``):

* **Pair work in many small torch ops.** hippynn evaluates the sensitivities, the tensor
  stacking and the environment sum as ~20 separate tensor ops on every (directed) pair, plus
  their autograd graph. Here one numba kernel walks each *unordered* pair once, evaluates the
  sensitivities s_ν(r) and the unit vector once, and scatters into both atoms' environments
  (the vector part with opposite signs); a second kernel applies the analytic chain rule for
  the backward pass (recomputing the sensitivities rather than storing P×S arrays, so memory
  stays O(atoms)). Atoms beyond the hard cutoff are skipped in the kernel.
* **Neighbour list.** ASE's ``primitive_neighbor_list`` costs ~400 µs per atom per build. Here
  the numba cell list of :mod:`aedistill.neighbours` (any cell, periodic or not) builds *half*
  pairs within cutoff + skin; it is rebuilt only when an atom moved more than skin/2 since the
  last build (Verlet list), so the pair vectors are recomputed from the current positions
  each step.
* **Everything else** (the interaction layers' weights, the vector-norm invariants, the
  ResNet wrappers, activations, atom layers and the HEnergy head) runs in float64 numpy with
  a hand-written backward (:mod:`aedistill.densekernels`, ``dense``, the default where
  supported), or as torch modules copied from the model (``torch.autograd`` gives
  dE/d(environment); float32 or other activations). No stress and no strain graph is built
  (NVE at a fixed cell does not need it). ``check_state`` compares positions, numbers, cell
  and pbc exactly (ASE's generic one cost ~1 µs per atom-step).

Only what this project trains is supported: ``Hipnn``/``HipnnVec`` networks with the inverse
sensitivity and the cosine cutoff, any number of interaction layers, with or without ResNet.
Anything else raises ``NotImplementedError`` so that callers can fall back to hippynn's
calculator.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes

from aedistill.densekernels import DenseHipnn, dense_supported
from aedistill.neighbours import half_pairs
from aedistill.pairkernels import (
    directed_terms,
    env_backward,
    env_backward_directed,
    env_backward_directed_single,
    env_backward_single,
    env_forward,
    env_forward_directed,
    env_forward_directed_single,
    env_forward_single,
    forces_directed_single,
    pair_terms,
)

__all__ = ["FastHipnnCalculator", "FastPairModel", "fast_calculator"]


class _PairState:
    """Geometry shared by every interaction layer of one evaluation (numpy, float64)."""

    def __init__(self, r_pos, shiftvec, pi, pj):
        self.r_pos = r_pos
        self.shiftvec = shiftvec
        self.pi = pi
        self.pj = pj


class _EnvSum(torch.autograd.Function):
    """Environment sum of one interaction layer; gradients to features and positions."""

    @staticmethod
    def forward(ctx, z, r_pos, state, mu_inv, sigma, rc, vec):
        st = state
        n_s = len(mu_inv)
        sel, unit, sens, dsens, m = pair_terms(
            st.r_pos, st.shiftvec, st.pi, st.pj, mu_inv, sigma, rc
        )
        z64 = np.ascontiguousarray(z.detach().to(torch.float64).numpy())
        n, nf = z64.shape
        env = np.zeros((n, nf, n_s, 4 if vec else 1))
        env_forward(st.pi, st.pj, sel, unit, sens, m, z64, vec, env)
        ctx.state = st
        ctx.saved = (sel, unit, sens, dsens, m, z64, vec)
        ctx.z_dtype = z.dtype
        # hippynn's layout (atom, component, sensitivity, feature)
        return torch.from_numpy(env).permute(0, 3, 2, 1).to(z.dtype)

    @staticmethod
    def backward(ctx, grad_env):
        sel, unit, sens, dsens, m, z64, vec = ctx.saved
        st = ctx.state
        g = np.ascontiguousarray(grad_env.detach().to(torch.float64).permute(0, 3, 2, 1).numpy())
        need_gz = bool(ctx.needs_input_grad[0])
        grad_r = np.zeros_like(st.r_pos)
        grad_z = np.zeros_like(z64) if need_gz else np.zeros((1, 1))
        env_backward(st.pi, st.pj, sel, unit, sens, dsens, m, z64, vec, g, need_gz, grad_r, grad_z)
        gz = torch.from_numpy(grad_z).to(ctx.z_dtype) if need_gz else None
        return gz, torch.from_numpy(grad_r), None, None, None, None, None


class _FastInteract(torch.nn.Module):
    """Drop-in for hippynn's InteractLayer / InteractLayerVec; pairs come from ``holder``."""

    def __init__(self, layer, holder):
        super().__init__()
        from hippynn.layers.hiplayers.interactions import InteractLayer, InteractLayerVec
        from hippynn.layers.hiplayers.sensitivity import CosCutoff, InverseSensitivityModule

        if type(layer) not in (InteractLayer, InteractLayerVec):
            raise NotImplementedError(
                f"fast path: unsupported interaction layer {type(layer).__name__}"
            )
        sens = layer.sensitivity
        if type(sens) is not InverseSensitivityModule or type(sens.cutoff) is not CosCutoff:
            raise NotImplementedError("fast path: only inverse sensitivities with cosine cutoff")
        self.layer = layer
        self.vec = type(layer) is InteractLayerVec
        self.holder = holder
        self.mu_inv = (1.0 / sens.mu.detach().double().reshape(-1)).numpy().copy()
        self.sigma = sens.sigma.detach().double().reshape(-1).numpy().copy()
        self.rc = float(sens.cutoff.hard_max_dist)

    def environment(self, in_features):
        """Environment sums (atom, component, sensitivity, feature) of the holder's pairs."""
        st = self.holder.state
        return _EnvSum.apply(
            in_features, self.holder.r_pos, st, self.mu_inv, self.sigma, self.rc, self.vec
        )

    def forward(self, in_features, *_ignored):
        lay = self.layer
        n = in_features.shape[0]
        env = self.environment(in_features)
        weights_rs = torch.reshape(
            lay.int_weights.permute(0, 2, 1), (lay.n_dist * lay.nf_in, lay.nf_out)
        )
        out = torch.mm(env[:, 0].reshape(n, lay.n_dist * lay.nf_in), weights_rs)
        if self.vec:
            ev = env[:, 1:].reshape(n * 3, lay.n_dist * lay.nf_in)
            fv = torch.mm(ev, weights_rs).reshape(n, 3, lay.nf_out)
            fv = torch.sqrt(torch.square(fv).sum(dim=1) + lay.cusp_reg)
            out = out + fv * lay.vecscales.unsqueeze(0)
        return out + lay.selfint(in_features)


class _DirectedPairs:
    """A full (``half``: half) neighbour list of one evaluation (numpy): i (a local atom),
    j (local or ghost) as listed, r_ij = R_j − R_i (Å), the owner of every atom (−1: unknown),
    the one-hot species of every atom, and, filled by :func:`directed_terms` for the kept
    entries, the partner ``pj`` whose environment the reverse term feeds where ``both``.
    ``comm`` (a half list whose ghosts keep their own rows): ``reverse_comm(a)`` adds the
    ghost rows of an (atoms, columns) array to their owners', ``forward_comm(a)`` copies the
    owners' rows to their ghosts' (LAMMPS' ``MLIAPDataPy`` has both)."""

    def __init__(
        self, pi, pj_list, rij, owner, z_all, n_first, half=False, comm=None, buffers=None
    ):
        self.pi = pi
        self.half = half
        self.comm = comm
        self.pj_list = pj_list
        self.rij = rij
        self.owner = owner
        self.z_all = z_all
        self.n_first = n_first
        n = len(pi)
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


class _Holder:
    state: _PairState | None = None
    r_pos: torch.Tensor | None = None
    pairs: _DirectedPairs | None = None
    rij: torch.Tensor | None = None


def _replace_interactions(network, holder, layer_class=_FastInteract):
    from hippynn.layers.transform import ResNetWrapper

    for block in network.blocks:
        first = block[0]
        if isinstance(first, ResNetWrapper):
            first.base_layer = layer_class(first.base_layer, holder)
        else:
            block[0] = layer_class(first, holder)


# ----------------------------------------------------------------------------- shared base
class _FastHipnn:
    """A HIPNN's network and energy head (deep copies, frozen, in ``dtype``) whose interaction
    layers are ``layer_class`` (fused pair kernels), fed with pairs through ``self.holder``.

    The set-up and the per-call evaluation shared by :class:`FastHipnnCalculator` (ASE) and
    :class:`FastPairModel` (LAMMPS ML-IAP); they differ in where the pairs come from.
    """

    def __init__(self, network, henergy, dtype, layer_class) -> None:
        from hippynn.networks.hipnn import HipnnVec

        self.holder = _Holder()
        self.network = copy.deepcopy(network).to(dtype).eval()
        self.henergy = copy.deepcopy(henergy).to(dtype).eval()
        for p in (*self.network.parameters(), *self.henergy.parameters()):
            p.requires_grad_(False)
        _replace_interactions(self.network, self.holder, layer_class)
        self._vec = isinstance(network, HipnnVec)
        self.species_set = [int(z) for z in torch.as_tensor(network.species_set).tolist()]
        self.rc = float(network.dist_hard_max)
        self.dtype = dtype

    def _energy(self, z: torch.Tensor, wrt: torch.Tensor | None, **pairs):
        """(ε per atom (n, 1) eV, E eV, dE/d``wrt`` or None) of the atoms with one-hot
        species ``z``; the interaction layers read ``pairs`` (fields of ``self.holder``,
        cleared afterwards)."""
        for name, value in pairs.items():
            setattr(self.holder, name, value)
        empty = torch.zeros(0, dtype=self.dtype)
        empty_i = torch.zeros(0, dtype=torch.long)
        try:
            with torch.enable_grad():
                args = (z, empty_i, empty_i, empty)
                if self._vec:
                    args = (*args, torch.zeros((0, 3), dtype=self.dtype))
                feats = self.network(*args)
                he = self.henergy
                if he.first_is_interacting:
                    feats = feats[1:]
                atom_en = sum(lay(x) for x, lay in zip(feats, he.layers, strict=True))
                energy = atom_en.sum()
                grad = None if wrt is None else torch.autograd.grad(energy, wrt)[0]
        finally:
            for name in pairs:
                setattr(self.holder, name, None)
        return atom_en.detach(), energy.detach(), grad


# ----------------------------------------------------------------------------- calculator
class FastHipnnCalculator(_FastHipnn, Calculator):
    """ASE calculator for a hippynn ``Hipnn``/``HipnnVec`` + ``HEnergy`` model (energies in eV).

    ``network`` and ``henergy`` are the torch modules (they are deep-copied, so training the
    originals later does not change this calculator). ``skin`` (Å) is the Verlet-list skin;
    ``dtype`` the floating type of the network part (the pair kernels always use float64).
    ``dense``: run the layers after the environment sums in float64 numpy
    (:mod:`aedistill.densekernels`) instead of torch autograd; ``None`` (default): where
    supported (float64 and hippynn's default activation), else torch.
    Properties: ``energy``/``free_energy`` (eV), ``forces`` (eV/Å), ``energies`` (per-atom ε).
    """

    implemented_properties = ["energy", "free_energy", "forces", "energies"]

    def __init__(
        self,
        network,
        henergy,
        skin: float = 1.0,
        dtype=torch.float64,
        en_unit: float = 1.0,
        dense: bool | None = None,
        **kwargs,
    ):
        Calculator.__init__(self, **kwargs)
        if skin < 0:
            raise ValueError("skin must be non-negative")
        _FastHipnn.__init__(self, network, henergy, dtype, _FastInteract)
        self.skin = float(skin)
        self.en_unit = float(en_unit)
        self._nl_key = None
        self.n_builds = 0
        if dense is None:
            dense = dtype == torch.float64 and dense_supported(network, henergy)
        if dense and dtype != torch.float64:
            raise ValueError("the dense path (dense=True) runs in float64")
        self.dense = DenseHipnn(network, henergy) if dense else None
        # the interaction layers in block order, and per layer its reused pair buffers
        self._interactions = [m for m in self.network.modules() if isinstance(m, _FastInteract)]
        self._buffers = [{} for _ in self._interactions]

    @classmethod
    def from_modules(cls, modules, **kwargs) -> FastHipnnCalculator:
        """From a ``ModuleDict`` with ``network`` and ``henergy`` (aedistill.models layout)."""
        return cls(modules["network"], modules["henergy"], **kwargs)

    # -- neighbour list with skin
    def _update_pairs(self, atoms) -> None:
        pos = atoms.positions
        cell = atoms.cell.array
        key = (len(atoms), cell.tobytes(), tuple(bool(x) for x in atoms.pbc))
        if self._nl_key == key:
            disp = np.sqrt(((pos - self._nl_pos) ** 2).sum(1)).max() if len(pos) else 0.0
            if disp <= 0.5 * self.skin:
                return
        pi, pj, shifts = half_pairs(pos, cell, atoms.pbc, self.rc + self.skin)
        self._pi, self._pj = pi, pj
        self._shiftvec = np.ascontiguousarray(shifts @ cell, dtype=np.float64)
        self._nl_pos = pos.copy()
        self._nl_key = key
        self.n_builds += 1

    def _one_hot(self, numbers: np.ndarray) -> torch.Tensor:
        z = np.zeros((len(numbers), len(self.species_set) - 1))
        for f, sp in enumerate(self.species_set[1:]):
            z[numbers == sp, f] = 1.0
        unknown = ~np.isin(numbers, self.species_set[1:])
        if unknown.any():
            raise ValueError(
                f"species {sorted(set(numbers[unknown].tolist()))} not known to the model {self.species_set[1:]}"
            )
        return torch.from_numpy(z).to(self.dtype)

    def check_state(self, atoms, tol=1e-15):
        """What changed since the last calculation among what the energy depends on
        (positions, numbers, cell, pbc), compared exactly: ASE's generic check, which also
        compares every other per-atom array with a tolerance, cost ~1 µs per atom-step."""
        old = self.atoms
        if old is None or len(old) != len(atoms):
            return list(all_changes)
        changes = []
        if not np.array_equal(old.positions, atoms.positions):
            changes.append("positions")
        if not np.array_equal(old.numbers, atoms.numbers):
            changes.append("numbers")
        if not np.array_equal(old.cell.array, atoms.cell.array):
            changes.append("cell")
        if not np.array_equal(old.pbc, atoms.pbc):
            changes.append("pbc")
        return changes

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        self._update_pairs(atoms)
        r_np = np.ascontiguousarray(atoms.positions, dtype=np.float64)
        if self.dense is not None:
            eps, grad = self._dense_energy(r_np, atoms.numbers)
        else:
            r_pos = torch.from_numpy(r_np.copy()).requires_grad_(True)
            state = _PairState(r_np, self._shiftvec, self._pi, self._pj)
            z = self._one_hot(atoms.numbers)
            atom_en, _, grad_t = self._energy(z, r_pos, state=state, r_pos=r_pos)
            eps, grad = atom_en.double().numpy()[:, 0], grad_t.double().numpy()
        e = float(eps.sum()) * self.en_unit
        self.results["energy"] = e
        self.results["free_energy"] = e
        self.results["energies"] = eps * self.en_unit
        self.results["forces"] = -grad * self.en_unit

    def _dense_energy(self, r: np.ndarray, numbers: np.ndarray):
        """(ε (n,) eV, dE/dR (n, 3) eV/Å) by the pair kernels and the numpy dense layers."""
        n = len(r)
        key = numbers.tobytes()
        if getattr(self, "_z_key", None) != key:
            self._z, self._z_key = self._one_hot(numbers).numpy(), key
        z = self._z
        grad_r = np.zeros((n, 3))
        pi, pj, shiftvec = self._pi, self._pj, self._shiftvec
        terms, inputs = {}, {}

        def env_sum(b, x):
            lay = self._interactions[b]
            t = pair_terms(r, shiftvec, pi, pj, lay.mu_inv, lay.sigma, lay.rc, self._buffers[b])
            sel, unit, sens, _, m = t
            nc, n_s = 4 if lay.vec else 1, len(lay.mu_inv)
            terms[b], inputs[b] = t, x
            if b == 0 and x.shape[1] == 1:  # one species: z ≡ 1, component-major kernels
                env = np.zeros((n, nc, n_s))
                env_forward_single(pi, pj, sel, unit, sens, m, lay.vec, env)
                return env.reshape(n, nc, 1, n_s).transpose(0, 2, 3, 1)
            env = np.zeros((n, x.shape[1], n_s, nc))
            env_forward(pi, pj, sel, unit, sens, m, x, lay.vec, env)
            return env

        def env_grad(b, g_env, need_dx):
            sel, unit, sens, dsens, m = terms[b]
            x = inputs[b]
            vec = self._interactions[b].vec
            if b == 0 and x.shape[1] == 1:
                g = np.ascontiguousarray(g_env[:, 0].transpose(0, 2, 1))
                env_backward_single(pi, pj, sel, unit, sens, dsens, m, vec, g, grad_r)
                return None
            grad_x = np.zeros_like(x) if need_dx else np.zeros((1, 1))
            env_backward(pi, pj, sel, unit, sens, dsens, m, x, vec, g_env, need_dx, grad_r, grad_x)
            return grad_x if need_dx else None

        eps = self.dense.energy(z, env_sum, env_grad)
        return eps, grad_r


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
        return state

    def __setstate__(self, state):
        state.setdefault("dense", None)
        self.__dict__.update(state)

    @property
    def comm_columns(self) -> int:
        """Doubles per atom of the environment sum (species × sensitivities × 1 or 4
        components): what a half-list evaluation with ``ghost_comm`` communicates per atom."""
        (layer,) = [m for m in self.network.modules() if isinstance(m, _DirectedInteract)]
        return (len(self.species_set) - 1) * len(layer.mu_inv) * (4 if layer.vec else 1)

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
        """
        n_all = len(elems)
        z_all = np.zeros((n_all, len(self.species_set) - 1))
        z_all[np.arange(n_all), np.asarray(elems, dtype=np.int64)] = 1.0
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
        # entries keep dE/dr = 0. A half list holds each pair once (aedistill.pairkernels._directed_geometry)
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
            self.__dict__.setdefault("_buffers", {}),
        )
        if forces is not None and not self.direct_forces:
            raise ValueError("forces= needs a single-species model on the dense path")
        if getattr(self, "dense", None) is not None:
            eps, grad_np = self._dense_evaluate(pairs, n_first, n_pairs, forces)
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

    def _dense_evaluate(self, st: _DirectedPairs, n_first: int, n_pairs: int, forces=None):
        """:meth:`evaluate`'s (ε, dE/dr_ij) by the directed pair kernels and the numpy dense
        layers (:mod:`aedistill.densekernels`); the same steps as :class:`_DirectedEnvSum`."""
        (lay,) = [m for m in self.network.modules() if isinstance(m, _DirectedInteract)]
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

        def env_sum(_b, _x):
            if single:
                env = np.zeros((n_rows, nc, n_s))
                env_forward_directed_single(st.pi, st.pj, st.both, sel, unit, sens, m, lay.vec, env)
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
            if forces is not None:
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


def fast_calculator(path_or_loaded, **kwargs) -> FastHipnnCalculator:
    """Fast calculator for an ``aedistill.models`` model file or ``LoadedModel`` (eV, Å)."""
    from aedistill import models

    loaded = models._as_loaded(path_or_loaded)
    return FastHipnnCalculator.from_modules(loaded.modules, **kwargs)
