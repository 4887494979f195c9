"""A fast ASE calculator for HIPNN models (CPU): fused numba pair kernels + Verlet lists.
This module holds :class:`FastHipnnCalculator`, :func:`fast_calculator` and the torch glue
(interaction-layer drop-in, shared network set-up and energy evaluation) that the LAMMPS-side
:class:`aedistill.fastpair.FastPairModel` builds on; the kernels are in
:mod:`aedistill.pairkernels`.

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
from typing import TYPE_CHECKING

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes

from aedistill.densekernels import DenseHipnn, dense_supported
from aedistill.neighbours import half_pairs
from aedistill.pairkernels import (
    env_backward,
    env_backward_single,
    env_forward,
    env_forward_single,
    pair_terms,
)

if TYPE_CHECKING:
    from aedistill.fastpair import _DirectedPairs

__all__ = ["FastHipnnCalculator", "fast_calculator"]


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


def fast_calculator(path_or_loaded, **kwargs) -> FastHipnnCalculator:
    """Fast calculator for an ``aedistill.models`` model file or ``LoadedModel`` (eV, Å)."""
    from aedistill import models

    loaded = models._as_loaded(path_or_loaded)
    return FastHipnnCalculator.from_modules(loaded.modules, **kwargs)


# ----------------------------------------------------------------------------- old pickles
_MOVED_TO_FASTPAIR = ("FastPairModel", "_DirectedInteract", "_DirectedPairs", "_DirectedEnvSum")


def __getattr__(name: str):
    """LAMMPS exports (``*.mliap.pt``) pickled before the LAMMPS side moved to
    :mod:`aedistill.fastpair` name ``aedistill.fastcalc.FastPairModel`` and
    ``aedistill.fastcalc._DirectedInteract``: resolve them there (lazily: fastpair imports
    this module)."""
    if name in _MOVED_TO_FASTPAIR:
        from aedistill import fastpair

        return getattr(fastpair, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
