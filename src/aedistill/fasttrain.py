"""Fast CPU training of HIPNN models: cached pair geometry, analytic pair forces, stacked models.

Same model (hippynn ``HipnnVec``/``Hipnn`` with one interaction layer, inverse sensitivities,
cosine cutoff, ResNet blocks, ``HEnergy`` head) and the same loss as
:mod:`aedistill.training` (eq 2 / eq 5 with Lerr = RMSE + MAE)::

    L_m = w_E Lerr(E/N) + w_F Lerr(F) [+ w_A Lerr(ε)] + w_L2 L2 + w_R R

but evaluated without hippynn's graph machinery, for M models of one architecture at once
(a *stack*: e.g. student and control × 4 seeds). Where the time of hippynn's training step
goes (``bench/profile_train_step.py``; L1-W8-S4, batch 4 ≈ 270 atoms ≈ 26 k directed pairs,
~56 ms per step on an idle core): elementwise arithmetic on per-pair arrays — sensitivities,
their stacking with r̂, the environment sum, the force gradient and the double backward of
all of it — (``mul``/``sum``/``div`` ≈ 50 % of self time), gathering the batch from the
sparse pair cache (``index_select`` + ``coalesce`` ≈ 10 %), pair re-indexing; the network
itself is small. What replaces it (``bench/train_throughput.py --mode fast``):

* **Pair geometry is fixed during training** (positions never change), so each
  configuration's directed pairs within the hard cutoff, their unit vectors r̂, 1/d and the
  cosine cutoff with its derivative are computed once (numba cell list of
  :func:`aedistill.fastcalc.half_pairs`). Pairs are stored per atom in padded neighbour slots
  ``(atom, slot)``; a batch is a row gather of these arrays.
* **Fused pair kernels with hand-written first derivatives** (numba, :class:`_SensEnv`,
  :class:`_PairForces`): one pass computes the sensitivities s_k(d), their derivative and
  the environment sums env[i, c, f·K + k] = Σ_q U_c s_k (U = [1, r̂]); G = ∂E/∂env comes from
  autograd on the atom-level network (create_graph); the pair derivative
  ∂E/∂r_q = (Σ_k A_k s'_k) r̂ + (h − (h·r̂) r̂)/d with A = U G, h = s G_vec (as in
  :mod:`aedistill.fastcalc`'s backward kernel) is scattered into F_i += g_q, F_j −= g_q.
  The loss differentiates these kernels only once (their backward kernels), and needs
  second derivatives only of the atom-level network. ``stack_forward(..., fused=False)``
  evaluates the same formulas as plain torch ops (the tests' reference).
* **Stacked models**: all weights carry a leading model axis (M, …); one step runs batched
  matmuls and kernels for every model over a shared batch, so per-op overhead and the
  geometry are paid once per stack. Each model keeps its own loss weights (and schedule),
  its own Adam moments and learning rate, its own ReduceLROnPlateau and termination
  patience, its own best weights; a finished model leaves the stack. The models never
  interact: a stack gives each model what training it alone (same ``order_seed``) gives,
  up to float rounding.

Supported: what this project trains (1 interaction layer, ResNet, softplus, inverse
sensitivities with cosine cutoff, HEnergy over the input and interaction features, any
number of elements, l_max 0 or 1); anything else raises ``NotImplementedError`` (use
:func:`aedistill.training.train_model`).

Batch order: every epoch draws ``torch.randperm(n_train)`` from a generator seeded with
``order_seed`` (then the training-evaluation subsample, as hippynn's loader does with the
global RNG), so every model of a stack sees the same batches; a single model rerun with the
same ``order_seed`` sees them too.

Weights map 1:1 to the hippynn modules of :func:`aedistill.models.build_graph`
(:class:`StackLayout`): a stack is built from the members' initial hippynn modules and the
trained weights are exported back into hippynn state dicts, so ``model.pt``, the Predictor,
ASE and LAMMPS paths are unchanged. Cells are treated as periodic in all directions, as
hippynn's training graph (``periodic=True``) does.

Units: Å, eV, eV/Å throughout (those of the canonical dataset).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as tF
from numba import njit
from torch.autograd.function import once_differentiable

from aedistill.roles import RolePlan, loss_energy
from aedistill.tables import HISTORY_COLUMNS

log = logging.getLogger(__name__)

# history.csv columns: aedistill.training's plus the early-stopping metric (Lerr with the
# role's stop weights on the validation split), which aedistill.convergence reads
STACK_HISTORY_COLUMNS = HISTORY_COLUMNS  # the same history.csv as the hippynn engine

__all__ = [
    "PairGeometry",
    "StackLayout",
    "StackMember",
    "StackSettings",
    "StackTrainer",
    "MemberResult",
    "train_stack",
]


# ----------------------------------------------------------------------------- geometry
@dataclass
class PairGeometry:
    """Directed pairs within the hard cutoff of every configuration, per atom in slots.

    Atoms are the real atoms of all configurations, flattened (configuration ``c`` owns
    atoms ``atom_start[c]:atom_start[c + 1]``, in the dataset's order); ``A`` atoms, ``S``
    slots (the largest neighbour count). For atom ``a`` and slot ``q < count[a]``:

    * ``unit[a, q]`` = (1, r̂_x, r̂_y, r̂_z) of r = R_j + shift − R_a; padding slots are 0;
    * ``inv[a, q]`` = 1/d (1/Å; 1 in padding), ``cut`` = cos²(π d / 2 r_c) and ``dcut`` its
      derivative d cut/dd (1/Å), 0 in padding;
    * ``nbr_species[a, q]`` the element index (0-based, ``species`` order) of j;
    * ``rev_atom[a, q]`` j relative to the configuration's first atom and ``rev_slot[a, q]``
      the slot of the reverse pair (j → a) in j's list (−1 in padding).

    Arrays are numpy (float64 / int64); ``z`` (A,) is every atom's element index.
    """

    atom_start: np.ndarray
    count: np.ndarray
    unit: np.ndarray
    inv: np.ndarray
    cut: np.ndarray
    dcut: np.ndarray
    nbr_species: np.ndarray
    rev_atom: np.ndarray
    rev_slot: np.ndarray
    z: np.ndarray
    n_species: int

    @property
    def n_atoms(self) -> np.ndarray:
        return np.diff(self.atom_start)

    @classmethod
    def build(
        cls, species: np.ndarray, positions: np.ndarray, cell: np.ndarray, elements, rc: float
    ) -> PairGeometry:
        """From padded dataset arrays: species (n, n_max) atomic numbers (0 = padding),
        positions (n, n_max, 3) Å, cell (n, 3, 3) Å; ``elements`` the model's atomic
        numbers; ``rc`` the hard cutoff (Å)."""
        from aedistill.fastcalc import half_pairs

        elements = [int(e) for e in elements]
        lookup = {e: k for k, e in enumerate(elements)}
        n_conf = species.shape[0]
        per_conf = []
        counts = []
        zs = []
        for c in range(n_conf):
            mask = species[c] > 0
            pos = np.asarray(positions[c][mask], dtype=np.float64)
            z = np.array([lookup[int(s)] for s in species[c][mask]], dtype=np.int64)
            cel = np.asarray(cell[c], dtype=np.float64)
            pi, pj, shifts = half_pairs(pos, cel, True, rc)
            r = pos[pj] + shifts @ cel - pos[pi]
            d = np.sqrt((r * r).sum(1))
            keep = d < rc
            pi, pj, r, d = pi[keep], pj[keep], r[keep], d[keep]
            n_half = len(pi)
            # directed entries: (pi -> pj, r) then (pj -> pi, -r); entry e's reverse is e ± P
            own = np.concatenate([pi, pj])
            oth = np.concatenate([pj, pi])
            vec = np.concatenate([r, -r])
            dd = np.concatenate([d, d])
            rev = np.concatenate([np.arange(n_half) + n_half, np.arange(n_half)])
            order = np.argsort(own, kind="stable")
            n = len(pos)
            cnt = np.bincount(own, minlength=n)
            first = np.concatenate([[0], np.cumsum(cnt)[:-1]])
            slot_of = np.empty(2 * n_half, np.int64)
            slot_of[order] = np.arange(2 * n_half) - first[own[order]]
            per_conf.append((own, oth, vec, dd, rev, slot_of, z))
            counts.append(cnt)
            zs.append(z)
        count = np.concatenate(counts) if counts else np.zeros(0, np.int64)
        n_slots = max(int(count.max()) if len(count) else 0, 1)
        n_at = np.array([len(z) for z in zs], dtype=np.int64)
        atom_start = np.concatenate([[0], np.cumsum(n_at)]).astype(np.int64)
        a_tot = int(atom_start[-1])
        unit = np.zeros((a_tot, n_slots, 4))
        inv = np.ones((a_tot, n_slots))
        cut = np.zeros((a_tot, n_slots))
        dcut = np.zeros((a_tot, n_slots))
        nbr = np.zeros((a_tot, n_slots), np.int64)
        rev_atom = np.full((a_tot, n_slots), -1, np.int64)
        rev_slot = np.full((a_tot, n_slots), -1, np.int64)
        half_pi_rc = 0.5 * math.pi / rc
        for c, (own, oth, vec, dd, rev, slot_of, z) in enumerate(per_conf):
            a = own + atom_start[c]
            s = slot_of
            unit[a, s, 0] = 1.0
            unit[a, s, 1:] = vec / dd[:, None]
            inv[a, s] = 1.0 / dd
            ph = half_pi_rc * dd
            cut[a, s] = np.cos(ph) ** 2
            dcut[a, s] = -2.0 * np.cos(ph) * np.sin(ph) * half_pi_rc
            nbr[a, s] = z[oth]
            rev_atom[a, s] = oth
            rev_slot[a, s] = slot_of[rev]
        return cls(
            atom_start,
            count,
            unit,
            inv,
            cut,
            dcut,
            nbr,
            rev_atom,
            rev_slot,
            np.concatenate(zs) if zs else np.zeros(0, np.int64),
            len(elements),
        )


@dataclass
class _Batch:
    """Tensors of one batch of configurations (N atoms, B configurations, S slots)."""

    configs: np.ndarray  # (B,) dataset indices
    atoms: torch.Tensor  # (N,) flat atom indices
    mol: torch.Tensor  # (N,) configuration (0..B-1) of each atom
    n_atoms: torch.Tensor  # (B,) float
    unit: torch.Tensor  # (N, S, 4): (1, r̂) per slot, 0 in padding
    unit_t: torch.Tensor  # (N, C, S): the C = 4 (l_max 1) or 1 (l_max 0) channels of env
    inv: torch.Tensor  # (N, S)
    cut: torch.Tensor  # (N, S)
    dcut: torch.Tensor  # (N, S)
    zj: torch.Tensor | None  # (N, S, n_species) one-hot of the neighbour (None: 1 species)
    z: torch.Tensor  # (N, n_species) one-hot
    rev: torch.Tensor  # (N*S,) flat index of the reverse pair (N*S: a zero row)
    jloc: np.ndarray  # (N, S) int64: batch-local index of each slot's neighbour (−1: padding)
    count: np.ndarray  # (N,) int64: used slots per atom
    zidx: np.ndarray  # (N, S) int64: element index of each slot's neighbour
    nf: int  # number of elements (one-hot width)
    energy: torch.Tensor  # (B,) the loss's energy: eV/atom (loss.energy per_atom) or eV (total)
    forces: torch.Tensor  # (N, 3) eV/Å


# ----------------------------------------------------------------------------- weights
@dataclass(frozen=True)
class _Slot:
    name: str
    get: Callable[[Any], torch.Tensor]  # hippynn ModuleDict -> parameter
    to_stack: Callable[[torch.Tensor], torch.Tensor]
    from_stack: Callable[[torch.Tensor], torch.Tensor]
    l2: bool  # part of hippynn's l2reg(network)


def _t(x: torch.Tensor) -> torch.Tensor:
    return x.t()


def _same(x: torch.Tensor) -> torch.Tensor:
    return x


class StackLayout:
    """1:1 map between one hippynn model (``network`` + ``henergy`` of
    :func:`aedistill.models.build_graph`) and one row of the stacked weights.

    Stacked names and shapes (M models, K sensitivities, n species, W width):
    ``mu``/``sigma`` (M, K) Å; ``int_w`` (M, n·K, W) = int_weights (K, W, n) with row
    f·K + k (element-major; hippynn's own matmul uses k·n + f); ``vecscales`` (M, W); ``self_w`` (M, n, W),
    ``self_b`` (M, W); ``res0_w`` (M, W, W), ``res0_b`` (M, W); ``adj0_w`` (M, n, W) when
    n ≠ W; per atom layer l: ``lin{l}_w``/``res{l}_w`` (M, W, W) and biases (M, W);
    ``head0_w`` (M, n, 1) (no bias, E0 per species), ``head1_w`` (M, W, 1), ``head1_b`` (M, 1).
    Linear weights are stored transposed (input, output) so that ``x @ w`` applies them.
    """

    def __init__(self, modules) -> None:
        from hippynn.layers.hiplayers.interactions import InteractLayer, InteractLayerVec
        from hippynn.layers.hiplayers.sensitivity import CosCutoff, InverseSensitivityModule
        from hippynn.layers.transform import ResNetWrapper

        net, he = modules["network"], modules["henergy"]
        if len(net.blocks) != 1:
            raise NotImplementedError(
                f"fast training supports 1 interaction layer, got {len(net.blocks)}"
            )
        blk = net.blocks[0]
        wrap = blk[0]
        if not isinstance(wrap, ResNetWrapper) or not all(
            isinstance(b, ResNetWrapper) for b in blk
        ):
            raise NotImplementedError("fast training needs resnet=True")
        lay = wrap.base_layer
        if type(lay) not in (InteractLayer, InteractLayerVec):
            raise NotImplementedError(f"unsupported interaction layer {type(lay).__name__}")
        sens = lay.sensitivity
        if type(sens) is not InverseSensitivityModule or type(sens.cutoff) is not CosCutoff:
            raise NotImplementedError("fast training: inverse sensitivities, cosine cutoff only")
        if not isinstance(net.activation, torch.nn.Softplus) or net.activation.beta != 1:
            raise NotImplementedError("fast training: softplus activation only")
        if he.first_is_interacting or len(he.layers) != 2:
            raise NotImplementedError("fast training: HEnergy over input + 1 interaction layer")
        self.vec = type(lay) is InteractLayerVec
        self.cusp_reg = float(lay.cusp_reg) if self.vec else 0.0
        self.n_dist = int(lay.n_dist)
        self.nf_in = int(lay.nf_in)
        self.width = int(lay.nf_out)
        self.n_atom_layers = len(blk) - 1
        self.rc = float(sens.cutoff.hard_max_dist)
        self.elements = [int(z) for z in torch.as_tensor(net.species_set).tolist()][1:]
        K, n = self.n_dist, self.nf_in

        def int_to(w):  # (K, W, n) -> (n*K, W), row f*K + k (element-major)
            return w.permute(2, 0, 1).reshape(n * K, -1)

        def int_from(w):
            return w.reshape(n, K, -1).permute(1, 2, 0).contiguous()

        def row(x):
            return x.reshape(-1)

        slots = [
            _Slot("mu", lambda m: _lay(m).sensitivity.mu, row, lambda x: x.reshape(1, -1), False),
            _Slot(
                "sigma", lambda m: _lay(m).sensitivity.sigma, row, lambda x: x.reshape(1, -1), False
            ),
            _Slot("int_w", lambda m: _lay(m).int_weights, int_to, int_from, True),
        ]
        if self.vec:
            slots.append(_Slot("vecscales", lambda m: _lay(m).vecscales, _same, _same, False))
        slots += [
            _Slot("self_w", lambda m: _lay(m).selfint.weight, _t, _t, True),
            _Slot("self_b", lambda m: _lay(m).selfint.bias, _same, _same, False),
            _Slot("res0_w", lambda m: _blk(m)[0].res_layer.weight, _t, _t, True),
            _Slot("res0_b", lambda m: _blk(m)[0].res_layer.bias, _same, _same, False),
        ]
        if wrap.needs_size_adjust:
            slots.append(_Slot("adj0_w", lambda m: _blk(m)[0].adjust_layer.weight, _t, _t, True))
        for i in range(1, self.n_atom_layers + 1):
            if blk[i].needs_size_adjust:
                raise NotImplementedError("fast training: atom layers of equal width only")
            slots += [
                _Slot(f"lin{i}_w", lambda m, i=i: _blk(m)[i].base_layer.weight, _t, _t, True),
                _Slot(f"lin{i}_b", lambda m, i=i: _blk(m)[i].base_layer.bias, _same, _same, False),
                _Slot(f"res{i}_w", lambda m, i=i: _blk(m)[i].res_layer.weight, _t, _t, True),
                _Slot(f"res{i}_b", lambda m, i=i: _blk(m)[i].res_layer.bias, _same, _same, False),
            ]
        if he.layers[0].bias is not None:
            raise NotImplementedError("fast training: HEnergy's first layer has no bias")
        slots += [
            _Slot("head0_w", lambda m: m["henergy"].layers[0].weight, _t, _t, False),
            _Slot("head1_w", lambda m: m["henergy"].layers[1].weight, _t, _t, False),
            _Slot("head1_b", lambda m: m["henergy"].layers[1].bias, _same, _same, False),
        ]
        self.slots = slots
        n_mapped = sum(s.get(modules).numel() for s in slots)
        n_params = sum(p.numel() for p in modules.parameters())
        if n_mapped != n_params:
            raise NotImplementedError(
                f"fast training maps {n_mapped} of the model's {n_params} weights"
            )
        l2_ids = {id(p) for p in net.regularization_params()}
        if l2_ids != {id(s.get(modules)) for s in slots if s.l2}:
            raise NotImplementedError("fast training: L2 parameters differ from hippynn's")

    def stack(self, modules_list: Sequence[Any], dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """Stacked leaf tensors from hippynn modules, one row per model.

        A weight is trained (``requires_grad``) exactly when it is in the hippynn modules:
        hippynn's E0 initialisation freezes ``head0_w`` (the per-species energies).
        """
        out = {}
        for s in self.slots:
            flags = {bool(s.get(m).requires_grad) for m in modules_list}
            if len(flags) != 1:
                raise ValueError(f"stack members disagree on whether {s.name} is trained")
            rows = [s.to_stack(s.get(m).detach()).to(dtype) for m in modules_list]
            out[s.name] = torch.stack(rows).contiguous().requires_grad_(flags.pop())
        return out

    def export(self, params: Mapping[str, torch.Tensor], row: int, template) -> dict[str, Any]:
        """hippynn state dict (``aedistill.models`` keys) of stack row ``row``; ``template``
        is a ModuleDict of the same architecture (its non-weight state is kept)."""
        from aedistill.models import state_dict_of

        mods = copy.deepcopy(template)
        with torch.no_grad():
            for s in self.slots:
                p = s.get(mods)
                p.copy_(s.from_stack(params[s.name][row].detach()).to(p.dtype))
        return state_dict_of(mods)


def _blk(m):
    return m["network"].blocks[0]


def _lay(m):
    return _blk(m)[0].base_layer


# ----------------------------------------------------------------------------- fused kernels
# The pair-level arithmetic (sensitivities and their distance derivative; pair forces) as
# numba loops over (model, atom, used slot) with hand-written first derivatives: torch would
# run ~40 separate elementwise passes over (M, N, S, K) arrays per step for the same work.
# fastmath without the no-NaN/no-inf assumptions, so that a diverging model still shows NaN.
# Only first derivatives are needed: the loss is differentiated once through these ops
# (∂E/∂env, which needs second derivatives, is an atom-level torch graph).


_FASTMATH = {"reassoc", "contract", "arcp", "nsz"}


@njit(cache=True, fastmath=_FASTMATH)
def _sens_arg(inv, cnt, muinv, sig, arg):
    """arg[m, i, q, k] = −q²/2 with q = (1/d − 1/μ_k) σ_k (0 in padding slots)."""
    M, K = muinv.shape
    S = inv.shape[1]
    for m in range(M):
        for i in range(inv.shape[0]):
            for q in range(cnt[i]):
                x = inv[i, q]
                for k in range(K):
                    t = (x - muinv[m, k]) * sig[m, k]
                    arg[m, i, q, k] = -0.5 * t * t
            for q in range(cnt[i], S):
                for k in range(K):
                    arg[m, i, q, k] = 0.0


@njit(cache=True, fastmath=_FASTMATH)
def _sens_env(base, inv, cut, dcut, unit, cnt, zidx, muinv, sig, s, ds, env):
    """s = base·cut, ds/dd = base·(q σ cut / d² + cut') (0 in padding) and the environment
    env[m, i, c, f_j·K + k] = Σ_q U[i, q, c] s[m, i, q, k] (``env`` zeroed by the caller)."""
    M, K = muinv.shape
    S = inv.shape[1]
    C = env.shape[2]
    for m in range(M):
        for i in range(inv.shape[0]):
            for q in range(cnt[i]):
                x = inv[i, q]
                c = cut[i, q]
                dc = dcut[i, q]
                x2c = x * x * c
                for k in range(K):
                    b = base[m, i, q, k]
                    t = (x - muinv[m, k]) * sig[m, k]
                    s[m, i, q, k] = b * c
                    ds[m, i, q, k] = b * (t * sig[m, k] * x2c + dc)
                fo = zidx[i, q] * K
                for cc in range(C):
                    u = unit[i, q, cc]
                    for k in range(K):
                        env[m, i, cc, fo + k] += u * s[m, i, q, k]
            for q in range(cnt[i], S):
                for k in range(K):
                    s[m, i, q, k] = 0.0
                    ds[m, i, q, k] = 0.0


@njit(cache=True, fastmath=_FASTMATH)
def _sens_env_backward(
    base, inv, cut, dcut, unit, cnt, zidx, muinv, sig, gs, gds, genv, g_muinv, g_sig
):
    """Gradients of Σ gs·s + gds·ds + genv·env with respect to 1/μ and σ, (M, K) each."""
    M, K = muinv.shape
    C = genv.shape[2]
    acc_mi = np.zeros(K, dtype=base.dtype)
    acc_sg = np.zeros(K, dtype=base.dtype)
    g_s = np.zeros(K, dtype=base.dtype)
    for m in range(M):
        acc_mi[:] = 0.0
        acc_sg[:] = 0.0
        for i in range(inv.shape[0]):
            for q in range(cnt[i]):
                x = inv[i, q]
                c = cut[i, q]
                dc = dcut[i, q]
                x2c = x * x * c
                fo = zidx[i, q] * K
                for k in range(K):
                    g_s[k] = gs[m, i, q, k]
                for cc in range(C):
                    u = unit[i, q, cc]
                    for k in range(K):
                        g_s[k] += u * genv[m, i, cc, fo + k]
                for k in range(K):
                    b = base[m, i, q, k]
                    sg = sig[m, k]
                    dx = x - muinv[m, k]
                    t = dx * sg
                    sv = b * c
                    dsv = b * (t * sg * x2c + dc)
                    a = gds[m, i, q, k]
                    gq = g_s[k] * (-t * sv) + a * (b * sg * x2c - t * dsv)
                    acc_mi[k] -= sg * gq
                    acc_sg[k] += gq * dx + a * b * t * x2c
        for k in range(K):
            g_muinv[m, k] += acc_mi[k]
            g_sig[m, k] += acc_sg[k]


@njit(cache=True, fastmath=_FASTMATH)
def _pair_forces(s, ds, G, unit, inv, jloc, cnt, zidx, vec, F):
    """F[m, i] += g and F[m, j] −= g for every used slot (i, q → j), with
    g = ∂E/∂r = (Σ_k A_k s'_k) r̂ + (h − (h·r̂) r̂)/d, A_k = Σ_c U_c G_c,f_j·K+k and
    h_a = Σ_k s_k G_1+a,f_j·K+k (G = ∂E/∂env)."""
    M = s.shape[0]
    K = s.shape[3]
    for m in range(M):
        for i in range(unit.shape[0]):
            for q in range(cnt[i]):
                j = jloc[i, q]
                fo = zidx[i, q] * K
                ux = unit[i, q, 1]
                uy = unit[i, q, 2]
                uz = unit[i, q, 3]
                radial = 0.0
                hx = 0.0
                hy = 0.0
                hz = 0.0
                if vec:
                    for k in range(K):
                        kf = fo + k
                        gx = G[m, i, 1, kf]
                        gy = G[m, i, 2, kf]
                        gz = G[m, i, 3, kf]
                        a = G[m, i, 0, kf] + ux * gx + uy * gy + uz * gz
                        sk = s[m, i, q, k]
                        hx += sk * gx
                        hy += sk * gy
                        hz += sk * gz
                        radial += a * ds[m, i, q, k]
                else:
                    for k in range(K):
                        radial += G[m, i, 0, fo + k] * ds[m, i, q, k]
                hr = hx * ux + hy * uy + hz * uz
                x = inv[i, q]
                fx = radial * ux + (hx - hr * ux) * x
                fy = radial * uy + (hy - hr * uy) * x
                fz = radial * uz + (hz - hr * uz) * x
                F[m, i, 0] += fx
                F[m, i, 1] += fy
                F[m, i, 2] += fz
                F[m, j, 0] -= fx
                F[m, j, 1] -= fy
                F[m, j, 2] -= fz


@njit(cache=True, fastmath=_FASTMATH)
def _pair_forces_backward(s, ds, G, unit, inv, jloc, cnt, zidx, vec, gF, gs, gds, gG):
    """Chain rule of :func:`_pair_forces`: gF (M, N, 3) → gs, gds (M, N, S, K) (every slot
    written) and gG (M, N, C, nf·K) (accumulated; zeroed by the caller)."""
    M = s.shape[0]
    S = s.shape[2]
    K = s.shape[3]
    for m in range(M):
        for i in range(unit.shape[0]):
            for q in range(cnt[i]):
                j = jloc[i, q]
                fo = zidx[i, q] * K
                ux = unit[i, q, 1]
                uy = unit[i, q, 2]
                uz = unit[i, q, 3]
                ex = gF[m, i, 0] - gF[m, j, 0]
                ey = gF[m, i, 1] - gF[m, j, 1]
                ez = gF[m, i, 2] - gF[m, j, 2]
                gr = ex * ux + ey * uy + ez * uz
                x = inv[i, q]
                hx = (ex - gr * ux) * x
                hy = (ey - gr * uy) * x
                hz = (ez - gr * uz) * x
                if vec:
                    for k in range(K):
                        kf = fo + k
                        gx = G[m, i, 1, kf]
                        gy = G[m, i, 2, kf]
                        gz = G[m, i, 3, kf]
                        a = G[m, i, 0, kf] + ux * gx + uy * gy + uz * gz
                        ga = gr * ds[m, i, q, k]
                        sk = s[m, i, q, k]
                        gG[m, i, 0, kf] += ga
                        gG[m, i, 1, kf] += ux * ga + hx * sk
                        gG[m, i, 2, kf] += uy * ga + hy * sk
                        gG[m, i, 3, kf] += uz * ga + hz * sk
                        gs[m, i, q, k] = hx * gx + hy * gy + hz * gz
                        gds[m, i, q, k] = gr * a
                else:
                    for k in range(K):
                        kf = fo + k
                        gG[m, i, 0, kf] += gr * ds[m, i, q, k]
                        gs[m, i, q, k] = 0.0
                        gds[m, i, q, k] = gr * G[m, i, 0, kf]
            for q in range(cnt[i], S):
                for k in range(K):
                    gs[m, i, q, k] = 0.0
                    gds[m, i, q, k] = 0.0


def _np(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().numpy())


class _SensEnv(torch.autograd.Function):
    """(1/μ, σ) (M, K) → env (M, N, C, nf·K), s and ds/dd (M, N, S, K) of a batch's slots
    (numba kernels around torch's SIMD exp)."""

    @staticmethod
    def forward(ctx, muinv, sig, b, n_channels):
        mi, sg = _np(muinv), _np(sig)
        M, K = mi.shape
        N, S = b.inv.shape
        inv, cut, dcut, unit = b.inv.numpy(), b.cut.numpy(), b.dcut.numpy(), b.unit.numpy()
        base = np.empty((M, N, S, K), dtype=mi.dtype)
        _sens_arg(inv, b.count, mi, sg, base)
        torch.from_numpy(base).exp_()  # SIMD exp in place
        s = np.empty_like(base)
        ds = np.empty_like(base)
        env = np.zeros((M, N, n_channels, K * b.nf), dtype=mi.dtype)
        _sens_env(base, inv, cut, dcut, unit, b.count, b.zidx, mi, sg, s, ds, env)
        ctx.saved = (base, inv, cut, dcut, unit, b.count, b.zidx, b.nf, mi, sg)
        return torch.from_numpy(env), torch.from_numpy(s), torch.from_numpy(ds)

    @staticmethod
    @once_differentiable
    def backward(ctx, genv, gs, gds):
        base, inv, cut, dcut, unit, cnt, zidx, nf, mi, sg = ctx.saved
        zero = np.zeros((1, 1, 1, 1), dtype=base.dtype)
        gs = np.broadcast_to(zero, base.shape) if gs is None else _np(gs)
        gds = np.broadcast_to(zero, base.shape) if gds is None else _np(gds)
        M, N = base.shape[:2]
        C = unit.shape[2] if genv is None else genv.shape[2]
        genv = np.zeros((M, N, C, base.shape[3] * nf), base.dtype) if genv is None else _np(genv)
        g_mi = np.zeros_like(mi)
        g_sg = np.zeros_like(sg)
        _sens_env_backward(base, inv, cut, dcut, unit, cnt, zidx, mi, sg, gs, gds, genv, g_mi, g_sg)
        return torch.from_numpy(g_mi), torch.from_numpy(g_sg), None, None


class _PairForces(torch.autograd.Function):
    """Forces (M, N, 3) eV/Å from s, ds (M, N, S, K) and G = ∂E/∂env (M, N, C, nf·K)."""

    @staticmethod
    def forward(ctx, s, ds, G, b, vec):
        sn, dsn, Gn = _np(s), _np(ds), _np(G)
        unit, inv = b.unit.numpy(), b.inv.numpy()
        F = np.zeros((sn.shape[0], unit.shape[0], 3), dtype=sn.dtype)
        _pair_forces(sn, dsn, Gn, unit, inv, b.jloc, b.count, b.zidx, vec, F)
        ctx.saved = (sn, dsn, Gn, unit, inv, b.jloc, b.count, b.zidx, vec)
        return torch.from_numpy(F)

    @staticmethod
    @once_differentiable
    def backward(ctx, gF):
        sn, dsn, Gn, unit, inv, jloc, cnt, zidx, vec = ctx.saved
        gs = np.empty_like(sn)
        gds = np.empty_like(dsn)
        gG = np.zeros_like(Gn)
        _pair_forces_backward(sn, dsn, Gn, unit, inv, jloc, cnt, zidx, vec, _np(gF), gs, gds, gG)
        return torch.from_numpy(gs), torch.from_numpy(gds), torch.from_numpy(gG), None, None


# ----------------------------------------------------------------------------- model math
@dataclass
class _Outputs:
    energy: torch.Tensor  # (M, B) eV
    atom_energies: torch.Tensor  # (M, N) eV
    hier_per_atom: torch.Tensor  # (M, B)
    forces: torch.Tensor  # (M, N, 3) eV/Å


def _network_energy(L: StackLayout, P: Mapping[str, torch.Tensor], env, b: _Batch):
    """Atom energies (M, N), hierarchicality per configuration (M, B) from env (M,N,C,n·K)."""
    M = env.shape[0]
    N = b.z.shape[0]
    e0 = env[:, :, 0]
    out = torch.bmm(e0, P["int_w"])
    if L.vec:
        ev = env[:, :, 1:].reshape(M, N * 3, -1)
        fv = torch.bmm(ev, P["int_w"]).reshape(M, N, 3, L.width)
        fv = torch.sqrt(torch.square(fv).sum(dim=2) + L.cusp_reg)
        out = out + fv * P["vecscales"].unsqueeze(1)
    z = b.z
    out = out + (torch.matmul(z, P["self_w"]) + P["self_b"].unsqueeze(1))
    x_in = torch.matmul(z, P["adj0_w"]) if "adj0_w" in P else z
    x = torch.baddbmm(P["res0_b"].unsqueeze(1), tF.softplus(out), P["res0_w"]) + x_in
    for i in range(1, L.n_atom_layers + 1):
        h = tF.softplus(torch.baddbmm(P[f"lin{i}_b"].unsqueeze(1), x, P[f"lin{i}_w"]))
        x = torch.baddbmm(P[f"res{i}_b"].unsqueeze(1), h, P[f"res{i}_w"]) + x
    p0 = torch.matmul(z, P["head0_w"])[..., 0]  # (M, N)
    p1 = torch.baddbmm(P["head1_b"].unsqueeze(1), x, P["head1_w"])[..., 0]
    atom_en = p0 + p1
    B = b.n_atoms.shape[0]
    energy = atom_en.new_zeros(M, B).index_add_(1, b.mol, atom_en)
    s0, s1 = torch.square(p0), torch.square(p1)
    hier = atom_en.new_zeros(M, B).index_add_(1, b.mol, s1 / (s1 + s0))
    return energy, atom_en, hier / b.n_atoms


def _sensitivities(P, b: _Batch):
    """Torch reference: s, ds/dd (M, N, S, n·K) of the batch's slots (1/Å), the
    neighbour's one-hot element folded into the sensitivity axis."""
    muinv = 1.0 / P["mu"]  # (M, K)
    sig = P["sigma"]
    inv = b.inv.unsqueeze(-1)  # (N, S, 1)
    q = (inv - muinv[:, None, None, :]) * sig[:, None, None, :]  # (M, N, S, K)
    base = torch.exp(-0.5 * torch.square(q))
    cut = b.cut.unsqueeze(-1)
    s = base * cut
    ds = base * (q * sig[:, None, None, :] * torch.square(inv) * cut + b.dcut.unsqueeze(-1))
    if b.zj is not None:  # fold the neighbour's one-hot element in: index f·K + k
        zj = b.zj.unsqueeze(-1)  # (N, S, n, 1)
        s = (zj * s.unsqueeze(-2)).flatten(-2)
        ds = (zj * ds.unsqueeze(-2)).flatten(-2)
    return s, ds


def stack_forward(
    L: StackLayout,
    P: Mapping[str, torch.Tensor],
    b: _Batch,
    create_graph: bool,
    fused: bool = True,
) -> _Outputs:
    """Energies, ε, hierarchicality and forces of every model of the stack on batch ``b``.

    ``create_graph``: keep the graph of the forces (training: the force loss is
    differentiated with respect to the weights). ``fused``: the numba kernels for the pair
    arithmetic (False: the same formulas as plain torch ops, a reference for tests).
    """
    if fused:
        n_channels = 4 if L.vec else 1
        env, s, ds = _SensEnv.apply(1.0 / P["mu"], P["sigma"], b, n_channels)
    else:
        s, ds = _sensitivities(P, b)
    if not create_graph:
        s, ds = s.detach(), ds.detach()
    with torch.enable_grad():
        if not fused:
            env = torch.matmul(b.unit_t, s)  # (M, N, C, n·K)
        elif not create_graph:
            env = env.detach()
        if not create_graph:
            env.requires_grad_(True)
        energy, atom_en, hier = _network_energy(L, P, env, b)
        (G,) = torch.autograd.grad(energy.sum(), env, create_graph=create_graph)
    if fused:
        forces = _PairForces.apply(s, ds, G.contiguous(), b, L.vec)
        if not create_graph:
            energy, atom_en, hier, forces = (t.detach() for t in (energy, atom_en, hier, forces))
        return _Outputs(energy, atom_en, hier, forces)
    A = torch.matmul(b.unit[..., : G.shape[2]], G)  # (M, N, S, n·K)
    radial = (A * ds).sum(-1, keepdim=True)  # (M, N, S, 1): Σ_k A_k s'_k
    rhat = b.unit[..., 1:]
    if L.vec:
        h = torch.matmul(s, G[:, :, 1:].transpose(-1, -2))  # (M, N, S, 3)
        hr = (h * rhat).sum(-1, keepdim=True)
        g = radial * rhat + (h - hr * rhat) * b.inv.unsqueeze(-1)
    else:
        g = radial * rhat
    M, N, S, _ = g.shape
    flat = torch.cat([g.reshape(M, N * S, 3), g.new_zeros(M, 1, 3)], dim=1)
    g_rev = flat.index_select(1, b.rev).reshape(M, N, S, 3)
    forces = (g - g_rev).sum(2)
    if not create_graph:
        energy, atom_en, hier, forces = (t.detach() for t in (energy, atom_en, hier, forces))
    return _Outputs(energy, atom_en, hier, forces)


# ----------------------------------------------------------------------------- members
@dataclass
class StackMember:
    """One model of a stack.

    ``modules``: hippynn ModuleDict (``network``, ``henergy``) holding the initial weights
    (after the E0 initialisation); ``plan``: the role's loss weights/schedule/stopping;
    ``labels``: per-atom energy labels (n_conf, n_max) eV for roles with an ε term, else
    None; ``max_epochs``: the epoch limit of this model.
    """

    name: str
    modules: Any
    plan: RolePlan
    labels: np.ndarray | None
    max_epochs: int


@dataclass(frozen=True)
class StackSettings:
    """Training settings shared by a stack (``training`` and ``loss`` of the config)."""

    learning_rate: float
    lr_factor: float
    lr_patience: int
    termination_patience: int
    batch_size: int
    w_L2: float
    w_R: float
    fraction_train_eval: float
    eval_atoms_slots: int = 2_000_000  # evaluation chunk: atoms × slots × n·K × models
    energy: str = "per_atom"  # loss.energy: the energy term on E/N (per_atom) or E (total)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], n_train: int) -> StackSettings:
        tr, loss = config["training"], config["loss"]
        return cls(
            learning_rate=float(tr["learning_rate"]),
            lr_factor=float(tr["lr_factor"]),
            lr_patience=int(tr["lr_patience"]),
            termination_patience=int(tr["termination_patience"]),
            batch_size=int(tr["batch_size"]),
            w_L2=float(loss["w_L2"]),
            w_R=float(loss["w_R"]),
            fraction_train_eval=min(1.0, max(0.1, 50.0 / max(n_train, 1))),
            energy=loss_energy(config),
        )


class _Control:
    """hippynn's PatienceController (with aedistill's ``min_epochs``: no plateau step and no
    patience before it, as :func:`aedistill.training._controller_class`) for one model, with
    torch's ReduceLROnPlateau on a one-parameter stand-in optimiser (its lr is the model's).
    Epochs are 0-based here, as in hippynn."""

    def __init__(self, lr: float, s: StackSettings, max_epochs: int, min_epochs: int) -> None:
        self._opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self._opt, mode="min", factor=s.lr_factor, patience=s.lr_patience
        )
        self.patience = s.termination_patience
        self._max_epochs = int(max_epochs)
        self.min_epochs = min(int(min_epochs), int(max_epochs))
        self.boredom = 0
        self.current_epoch = 0
        self.last_best = 0

    @property
    def lr(self) -> float:
        return float(self._opt.param_groups[0]["lr"])

    @property
    def max_epochs(self) -> int:
        # the patience counts from epoch min_epochs (1-based) at the earliest
        first = max(self.last_best, self.min_epochs - 1)
        patience_limit = min(first + self.patience + 1, self._max_epochs)
        return max(min(self.min_epochs, self._max_epochs), patience_limit)

    def push_epoch(self, epoch: int, better: bool, metric: float) -> bool:
        if better:
            self.boredom = 0
            self.last_best = epoch
        else:
            self.boredom += 1
        self.current_epoch += 1
        if self.current_epoch >= self.min_epochs:  # no plateau steps inside a loss schedule
            self.scheduler.step(metric)
        return self.current_epoch < self.max_epochs

    def state_dict(self) -> dict[str, Any]:
        keys = ("boredom", "current_epoch", "last_best", "_max_epochs", "min_epochs")
        return {
            **{k: getattr(self, k) for k in keys},
            "scheduler": self.scheduler.state_dict(),
            "lr": self.lr,
        }

    def load_state_dict(self, st: Mapping[str, Any]) -> None:
        for k in ("boredom", "current_epoch", "last_best", "min_epochs"):
            setattr(self, k, int(st[k]))
        self.scheduler.load_state_dict(st["scheduler"])
        self._opt.param_groups[0]["lr"] = float(st["lr"])


@dataclass
class MemberResult:
    """What a stack member's training gives: per-epoch ``history`` (columns
    :data:`STACK_HISTORY_COLUMNS`; ``wall_s`` = the stack's wall time, ``valid_loss`` the
    validation Lerr that selects the best epoch),
    ``best_state`` (hippynn state dict of the best validation epoch), ``best_epoch``
    (1-based), ``epochs`` run, ``stop_reason`` (``termination_patience`` or ``max_epochs``).
    """

    name: str
    history: pd.DataFrame
    best_state: dict[str, Any] | None
    best_epoch: int
    epochs: int
    stop_reason: str


@dataclass
class _MemberState:
    member: StackMember
    control: _Control
    rows: list[dict[str, float]] = field(default_factory=list)
    best_value: float = math.inf
    best_state: dict[str, Any] | None = None
    best_epoch: int = 0
    stop_reason: str | None = None


# ----------------------------------------------------------------------------- trainer
class StackTrainer:
    """Train a stack of same-architecture models on one dataset and split (see module doc).

    ``dataset``: :class:`aedistill.data.canonical.Dataset`; ``split`` with ``train``/
    ``valid`` index arrays; ``members`` share the architecture of their ``modules``.
    ``dtype``: floating type (default: torch's default dtype, as hippynn training uses).
    """

    def __init__(
        self,
        members: Sequence[StackMember],
        dataset,
        split,
        settings: StackSettings,
        order_seed: int,
        dtype: torch.dtype | None = None,
    ) -> None:
        if not members:
            raise ValueError("a stack needs at least one member")
        self.dtype = dtype or torch.get_default_dtype()
        self.settings = settings
        self.layout = StackLayout(members[0].modules)
        for m in members[1:]:
            other = StackLayout(m.modules)
            if [(s.name, tuple(s.get(m.modules).shape)) for s in other.slots] != [
                (s.name, tuple(s.get(members[0].modules).shape)) for s in self.layout.slots
            ] or (other.vec, other.rc) != (self.layout.vec, self.layout.rc):
                raise ValueError(f"stack member {m.name!r} has another architecture")
        self.templates = [copy.deepcopy(m.modules) for m in members]
        self.params = self.layout.stack([m.modules for m in members], self.dtype)
        self._trained = {k: v.requires_grad for k, v in self.params.items()}
        self.exp_avg = {k: torch.zeros_like(v) for k, v in self.params.items()}
        self.exp_avg_sq = {k: torch.zeros_like(v) for k, v in self.params.items()}
        self.n_steps = 0
        self.states = [
            _MemberState(
                m,
                _Control(settings.learning_rate, settings, m.max_epochs, m.plan.min_epochs),
            )
            for m in members
        ]
        self.active = list(range(len(members)))  # member index of each stack row
        self.train_idx = np.asarray(split.train, dtype=np.int64)
        self.valid_idx = np.asarray(split.valid, dtype=np.int64)
        self.generator = torch.Generator().manual_seed(int(order_seed))
        self.epoch = 0  # epochs done (1-based epoch numbers in history rows)
        self.wall_prev = 0.0
        self._t0 = time.perf_counter()
        self._prepare_data(dataset, members)
        self._valid_batches: list[_Batch] | None = None

    # -- data
    def _prepare_data(self, ds, members: Sequence[StackMember]) -> None:
        L = self.layout
        geo = PairGeometry.build(ds.species, ds.positions, ds.cell, L.elements, L.rc)
        self.geo = geo
        dt = self.dtype
        mask = ds.species > 0
        self._unit = torch.as_tensor(geo.unit, dtype=dt)
        self._channels = 4 if L.vec else 1
        self._inv = torch.as_tensor(geo.inv, dtype=dt)
        self._cut = torch.as_tensor(geo.cut, dtype=dt)
        self._dcut = torch.as_tensor(geo.dcut, dtype=dt)
        self._z = tF.one_hot(torch.as_tensor(geo.z), geo.n_species).to(dt)
        self._nbr = torch.as_tensor(geo.nbr_species)
        self._n_atoms = geo.n_atoms
        energy = ds.energy / geo.n_atoms if self.settings.energy == "per_atom" else ds.energy
        self._energy = torch.as_tensor(energy, dtype=dt)
        self._forces = torch.as_tensor(ds.forces[mask], dtype=dt)
        self._labels = [
            None if m.labels is None else torch.as_tensor(np.asarray(m.labels)[mask], dtype=dt)
            for m in members
        ]
        for m in members:
            if (m.plan.labels is None) != (m.labels is None):
                raise ValueError(f"{m.name}: labels must be given exactly when the role has ε")

    def _batch(self, configs: np.ndarray) -> _Batch:
        g = self.geo
        cnt = self._n_atoms[configs]
        starts = g.atom_start[configs]
        n = int(cnt.sum())
        local_start = np.concatenate([[0], np.cumsum(cnt)[:-1]])
        atoms = np.repeat(starts - local_start, cnt) + np.arange(n)
        offset = np.repeat(local_start, cnt)
        n_slots = max(int(g.count[atoms].max()), 1)
        ra = g.rev_atom[atoms, :n_slots]
        rs = g.rev_slot[atoms, :n_slots]
        rev = np.where(rs >= 0, (ra + offset[:, None]) * n_slots + rs, n * n_slots).reshape(-1)
        jloc = np.ascontiguousarray(np.where(rs >= 0, ra + offset[:, None], -1))
        at = torch.from_numpy(atoms)
        unit = self._unit[at, :n_slots]
        zj = None
        if g.n_species > 1:
            zj = tF.one_hot(self._nbr[at, :n_slots], g.n_species).to(self.dtype)
        return _Batch(
            configs=configs,
            atoms=at,
            mol=torch.from_numpy(np.repeat(np.arange(len(configs)), cnt)),
            n_atoms=torch.as_tensor(cnt, dtype=self.dtype),
            unit=unit,
            unit_t=unit[..., : self._channels].transpose(1, 2),
            inv=self._inv[at, :n_slots],
            cut=self._cut[at, :n_slots],
            dcut=self._dcut[at, :n_slots],
            zj=zj,
            z=self._z[at],
            rev=torch.from_numpy(rev),
            jloc=jloc,
            count=np.ascontiguousarray(g.count[atoms]),
            zidx=np.ascontiguousarray(g.nbr_species[atoms, :n_slots]),
            nf=int(g.n_species),
            energy=self._energy[torch.from_numpy(configs)],
            forces=self._forces[at],
        )

    def _eval_batches(self, configs: np.ndarray) -> list[_Batch]:
        """Chunks of ``configs`` small enough for :attr:`StackSettings.eval_atoms_slots`."""
        L = self.layout
        per_atom = max(int(self.geo.count.max()), 1) * L.n_dist * L.nf_in * len(self.active)
        budget = max(1, self.settings.eval_atoms_slots // per_atom)
        out, cur, n = [], [], 0
        for c in configs:
            k = int(self._n_atoms[c])
            if cur and n + k > budget:
                out.append(self._batch(np.array(cur, dtype=np.int64)))
                cur, n = [], 0
            cur.append(int(c))
            n += k
        if cur:
            out.append(self._batch(np.array(cur, dtype=np.int64)))
        return out

    # -- loss
    def _weights(self, attr: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rows = []
        for i in self.active:
            st = self.states[i]
            w = (
                st.member.plan.weights_at(self.epoch + 1)
                if attr == "now"
                else st.member.plan.stop_weights
            )
            rows.append((w.w_E, w.w_F, w.w_A))
        t = torch.tensor(rows, dtype=self.dtype)
        return t[:, 0], t[:, 1], t[:, 2]

    def _l2(self, P: Mapping[str, torch.Tensor]) -> torch.Tensor:
        terms = [torch.square(P[s.name]).flatten(1).sum(1) for s in self.layout.slots if s.l2]
        return sum(terms[1:], terms[0])

    def _energy_error(self, energy: torch.Tensor, b: _Batch) -> torch.Tensor:
        """(M, B) error of the loss's energy: E/N (eV/atom) or E (eV), ``loss.energy``."""
        if self.settings.energy == "per_atom":
            return energy / b.n_atoms - b.energy
        return energy - b.energy

    def _label_rows(self) -> list[int]:
        return [r for r, i in enumerate(self.active) if self._labels[i] is not None]

    def batch_loss(
        self, b: _Batch, weights: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Training loss (M,) of every active model on batch ``b`` (weights of the current
        epoch unless ``weights`` = (w_E, w_F, w_A), each (M,)) and its terms (M,) each."""
        P = self.params
        out = stack_forward(self.layout, P, b, create_graph=True)
        wE, wF, wA = weights if weights is not None else self._weights("now")
        de = self._energy_error(out.energy, b)
        df = (out.forces - b.forces).flatten(1)
        terms = {
            "E-RMSE": torch.sqrt(torch.mean(torch.square(de), 1)),
            "E-MAE": torch.mean(torch.abs(de), 1),
            "F-RMSE": torch.sqrt(torch.mean(torch.square(df), 1)),
            "F-MAE": torch.mean(torch.abs(df), 1),
            "L2": self._l2(P),
            "R": torch.mean(out.hier_per_atom, 1),
        }
        loss = wE * (terms["E-RMSE"] + terms["E-MAE"]) + wF * (terms["F-RMSE"] + terms["F-MAE"])
        rows = self._label_rows()
        if rows:
            r_t = torch.tensor(rows)
            lab = torch.stack([self._labels[self.active[r]][b.atoms] for r in rows])
            da = out.atom_energies.index_select(0, r_t) - lab
            a_rmse = torch.sqrt(torch.mean(torch.square(da), 1))
            a_mae = torch.mean(torch.abs(da), 1)
            a_term = torch.zeros_like(loss).index_add(
                0, r_t, wA.index_select(0, r_t) * (a_rmse + a_mae)
            )
            loss = loss + a_term
            terms["A-RMSE"], terms["A-MAE"] = a_rmse, a_mae
        loss = loss + self.settings.w_L2 * terms["L2"] + self.settings.w_R * terms["R"]
        terms["Loss"] = loss
        return loss, terms

    def _adam_step(self) -> None:
        """torch.optim.Adam (betas 0.9/0.999, eps 1e-8) with a learning rate per model."""
        b1, b2, eps = 0.9, 0.999, 1e-8
        self.n_steps += 1
        bc1 = 1 - b1**self.n_steps
        bc2_sqrt = math.sqrt(1 - b2**self.n_steps)
        lr = torch.tensor([self.states[i].control.lr for i in self.active], dtype=torch.float64)
        step_size = (-lr / bc1).to(self.dtype)
        with torch.no_grad():
            for k, p in self.params.items():
                if not p.requires_grad:
                    continue
                g = p.grad
                m, v = self.exp_avg[k], self.exp_avg_sq[k]
                m.lerp_(g, 1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                denom = (v.sqrt() / bc2_sqrt).add_(eps)
                shape = (-1,) + (1,) * (p.dim() - 1)
                p.addcmul_(m / denom, step_size.reshape(shape))
                p.grad = None

    def train_step(self, configs: np.ndarray) -> torch.Tensor:
        """One optimiser step of every active model on ``configs``; returns the losses (M,)."""
        b = self._batch(configs)
        loss, _ = self.batch_loss(b)
        loss.sum().backward()
        self._adam_step()
        return loss.detach()

    # -- evaluation
    def evaluate(self, configs: np.ndarray | list[_Batch]) -> dict[str, np.ndarray]:
        """Metrics (one value per active model) over all ``configs`` at once, as hippynn's
        evaluator computes them on the concatenated predictions: E-RMSE/E-MAE (eV/atom),
        F-RMSE/F-MAE (eV/Å over the real atoms' components), A-RMSE/A-MAE (eV, NaN
        without labels), R, L2, and Lerr (stop weights, the early-stopping metric)."""
        batches = configs if isinstance(configs, list) else self._eval_batches(configs)
        P = {k: v.detach() for k, v in self.params.items()}
        M = len(self.active)
        acc = {
            k: torch.zeros(M, dtype=torch.float64)
            for k in ("e2", "e1", "f2", "f1", "a2", "a1", "r")
        }
        n_conf = n_comp = n_atoms = 0
        rows = self._label_rows()
        r_t = torch.tensor(rows, dtype=torch.int64)
        for b in batches:
            out = stack_forward(self.layout, P, b, create_graph=False)
            de = self._energy_error(out.energy, b).double()
            df = (out.forces - b.forces).flatten(1).double()
            acc["e2"] += torch.square(de).sum(1)
            acc["e1"] += torch.abs(de).sum(1)
            acc["f2"] += torch.square(df).sum(1)
            acc["f1"] += torch.abs(df).sum(1)
            acc["r"] += out.hier_per_atom.double().sum(1)
            if rows:
                lab = torch.stack([self._labels[self.active[r]][b.atoms] for r in rows])
                da = (out.atom_energies.index_select(0, r_t) - lab).double()
                acc["a2"].index_add_(0, r_t, torch.square(da).sum(1))
                acc["a1"].index_add_(0, r_t, torch.abs(da).sum(1))
            n_conf += len(b.configs)
            n_comp += df.shape[1]
            n_atoms += b.z.shape[0]
        res = {
            "E-RMSE": torch.sqrt(acc["e2"] / n_conf),
            "E-MAE": acc["e1"] / n_conf,
            "F-RMSE": torch.sqrt(acc["f2"] / n_comp),
            "F-MAE": acc["f1"] / n_comp,
            "R": acc["r"] / n_conf,
            "L2": self._l2(P).double(),
        }
        has = torch.zeros(M, dtype=torch.bool)
        has[r_t] = True
        nan = torch.full((M,), math.nan, dtype=torch.float64)
        res["A-RMSE"] = torch.where(has, torch.sqrt(acc["a2"] / n_atoms), nan)
        res["A-MAE"] = torch.where(has, acc["a1"] / n_atoms, nan)
        wE, wF, wA = (w.double() for w in self._weights("stop"))
        lerr = wE * (res["E-RMSE"] + res["E-MAE"]) + wF * (res["F-RMSE"] + res["F-MAE"])
        res["Lerr"] = lerr + torch.where(has, wA * (res["A-RMSE"] + res["A-MAE"]), 0.0)
        return {k: v.numpy() for k, v in res.items()}

    # -- epochs
    @property
    def wall_s(self) -> float:
        return self.wall_prev + time.perf_counter() - self._t0

    @property
    def finished(self) -> bool:
        return not self.active

    def run_epoch(self) -> None:
        """One epoch of every active model: shuffled batches, evaluation, controllers."""
        if self.finished:
            return
        s = self.settings
        n = len(self.train_idx)
        lrs = [self.states[i].control.lr for i in self.active]
        perm = torch.randperm(n, generator=self.generator).numpy()
        for start in range(0, n, s.batch_size):
            self.train_step(self.train_idx[perm[start : start + s.batch_size]])
        # hippynn's train-evaluation subsample (same draw as BatchedDatabase.make_generator)
        k = max(1, int(n * s.fraction_train_eval)) if s.fraction_train_eval else n
        sub = torch.argsort(torch.rand(n, generator=self.generator))[:k].numpy()
        tm = self.evaluate(self.train_idx[sub])
        if self._valid_batches is None:
            self._valid_batches = self._eval_batches(self.valid_idx)
        vm = self.evaluate(self._valid_batches)
        epoch = self.epoch + 1
        wall = round(self.wall_s, 3)
        done = []
        for r, i in enumerate(self.active):
            st = self.states[i]
            for name, mm in (("train", tm), ("valid", vm)):
                bad = [
                    f"'{k}'={v[r]}"
                    for k, v in mm.items()
                    if not math.isfinite(v[r]) and not k.startswith("A-")
                ]
                if bad:
                    from aedistill.errors import UserInputError

                    raise UserInputError(
                        f"{st.member.name}: training diverged at epoch {epoch}: {name} loss "
                        f"terms {', '.join(bad)} (check the data for NaN/inf, or lower "
                        "training.learning_rate)"
                    )
            w = st.member.plan.weights_at(epoch)
            st.rows.append(
                {
                    "epoch": epoch,
                    "lr": lrs[r],
                    "w_E": w.w_E,
                    "w_F": w.w_F,
                    "w_A": w.w_A if st.member.plan.labels is not None else 0.0,
                    "train_e_rmse": float(tm["E-RMSE"][r]),
                    "train_f_rmse": float(tm["F-RMSE"][r]),
                    "train_f_mae": float(tm["F-MAE"][r]),
                    "valid_e_rmse": float(vm["E-RMSE"][r]),
                    "valid_f_rmse": float(vm["F-RMSE"][r]),
                    "valid_f_mae": float(vm["F-MAE"][r]),
                    "train_eps_rmse": float(tm["A-RMSE"][r]),
                    "valid_eps_rmse": float(vm["A-RMSE"][r]),
                    "wall_s": wall,
                    "valid_loss": float(vm["Lerr"][r]),
                }
            )
            metric = float(vm["Lerr"][r])
            better = st.best_value > metric
            if better:
                st.best_value = metric
                st.best_state = self.layout.export(self.params, r, self.templates[i])
                st.best_epoch = epoch
            if not st.control.push_epoch(epoch - 1, better, metric):
                ctl = st.control
                st.stop_reason = (
                    "max_epochs" if ctl.current_epoch >= ctl._max_epochs else "termination_patience"
                )
                done.append(r)
        self.epoch = epoch
        if done:
            self._drop_rows(done)

    def _drop_rows(self, rows: Sequence[int]) -> None:
        keep = [r for r in range(len(self.active)) if r not in set(rows)]
        idx = torch.tensor(keep, dtype=torch.int64)
        self.active = [self.active[r] for r in keep]
        if not keep:
            return
        for d in (self.params, self.exp_avg, self.exp_avg_sq):
            for k in list(d):
                d[k] = d[k].detach().index_select(0, idx).contiguous()
        for k, s in self._trained.items():
            self.params[k].requires_grad_(s)

    def train(self, callback: Callable[[StackTrainer], None] | None = None) -> list[MemberResult]:
        """Run epochs until every member stops; ``callback(self)`` after each epoch."""
        while not self.finished:
            self.run_epoch()
            if callback is not None:
                callback(self)
        return self.results()

    def results(self) -> list[MemberResult]:
        return [
            MemberResult(
                st.member.name,
                pd.DataFrame(st.rows, columns=STACK_HISTORY_COLUMNS),
                st.best_state,
                st.best_epoch,
                len(st.rows),
                st.stop_reason or "running",
            )
            for st in self.states
        ]

    def current_state(self, member: int) -> dict[str, Any]:
        """hippynn state dict of the current weights of ``member`` (must be active)."""
        return self.layout.export(self.params, self.active.index(member), self.templates[member])

    # -- checkpoint
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (plain containers and tensors)."""
        return {
            "params": {k: v.detach().clone() for k, v in self.params.items()},
            "exp_avg": {k: v.clone() for k, v in self.exp_avg.items()},
            "exp_avg_sq": {k: v.clone() for k, v in self.exp_avg_sq.items()},
            "n_steps": self.n_steps,
            "active": list(self.active),
            "epoch": self.epoch,
            "wall_s": self.wall_s,
            "generator": self.generator.get_state(),
            "members": [
                {
                    "control": st.control.state_dict(),
                    "rows": list(st.rows),
                    "best_value": st.best_value,
                    "best_state": st.best_state,
                    "best_epoch": st.best_epoch,
                    "stop_reason": st.stop_reason,
                }
                for st in self.states
            ],
        }

    def load_state_dict(self, sd: Mapping[str, Any]) -> None:
        self.params = {
            k: v.clone().requires_grad_(self._trained[k]) for k, v in sd["params"].items()
        }
        self.exp_avg = {k: v.clone() for k, v in sd["exp_avg"].items()}
        self.exp_avg_sq = {k: v.clone() for k, v in sd["exp_avg_sq"].items()}
        self.n_steps = int(sd["n_steps"])
        self.active = [int(i) for i in sd["active"]]
        self.epoch = int(sd["epoch"])
        self.wall_prev = float(sd["wall_s"])
        self._t0 = time.perf_counter()
        self.generator.set_state(sd["generator"])
        for st, m in zip(self.states, sd["members"], strict=True):
            st.control.load_state_dict(m["control"])
            st.rows = list(m["rows"])
            st.best_value = float(m["best_value"])
            st.best_state = m["best_state"]
            st.best_epoch = int(m["best_epoch"])
            st.stop_reason = m["stop_reason"]


# ----------------------------------------------------------------------------- entry point
def initial_modules(config: Mapping[str, Any], arch, seed: int, dataset, split):
    """hippynn modules of ``arch`` seeded with ``seed`` and E0-initialised on the training
    split (``split.for_initialisation()``) exactly as
    :func:`aedistill.training.prepare_training` does (no pair cache)."""
    import contextlib

    from hippynn.pretraining import hierarchical_energy_initialization

    from aedistill.arch import Arch
    from aedistill.database import make_database
    from aedistill.models import DB_ENERGY, DB_SPECIES, ModelSpec, build_training_graph
    from aedistill.training import _LogStream, _quiet_hippynn

    _quiet_hippynn()
    spec = ModelSpec.from_config(config, arch if isinstance(arch, Arch) else Arch.from_slug(arch))
    graph = build_training_graph(spec, seed)
    with contextlib.redirect_stdout(_LogStream()):
        db = make_database(dataset, split.for_initialisation(), None, [DB_SPECIES], [DB_ENERGY])
        hierarchical_energy_initialization(
            graph.henergy, db, energy_name=DB_ENERGY, species_name=DB_SPECIES, decay_factor=1e-2
        )
    return spec, graph.modules


def train_stack(
    members: Sequence[StackMember],
    dataset,
    split,
    settings: StackSettings,
    order_seed: int = 0,
    dtype: torch.dtype | None = None,
    callback: Callable[[StackTrainer], None] | None = None,
) -> list[MemberResult]:
    """Train ``members`` as one stack until each stops (see :class:`StackTrainer`)."""
    return StackTrainer(members, dataset, split, settings, order_seed, dtype).train(callback)


def member_for_role(
    config: Mapping[str, Any],
    role: str,
    arch,
    seed: int,
    dataset,
    split,
    labels: np.ndarray | None = None,
    max_epochs: int | None = None,
) -> tuple[Any, StackMember]:
    """(ModelSpec, StackMember) of ``role``/``arch``/``seed`` with the same initial weights,
    plan, labels and epoch limit as :func:`aedistill.training.train_model` would use."""
    from aedistill.arch import Arch
    from aedistill.database import role_labels
    from aedistill.loss import check_plan_weights
    from aedistill.roles import plan_role

    plan = plan_role(config, role)
    check_plan_weights(plan, torch.get_default_dtype())
    arch_obj = Arch.parse(arch)
    eps = role_labels(plan, dataset, labels, f"{role} {arch_obj.slug} seed {seed}")
    spec, modules = initial_modules(config, arch_obj, seed, dataset, split)
    n_epochs = int(max_epochs or plan.max_epochs)
    name = f"{role}/{arch_obj.slug}/seed{seed}"
    return spec, StackMember(name, modules, plan, eps, n_epochs)
