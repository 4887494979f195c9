"""The dense part of a HIPNN in float64 numpy: atom layers, the interaction layers' weights
and the hierarchical energy head, forward and backward (dE/d features), without torch.

After the environment sums (the numba pair kernels of :mod:`aedistill.pairkernels`) the rest
of a HIPNN is a few small dense layers per atom. Run as torch modules under autograd, their
per-call overhead (graph building, ~60 small tensor ops, the backward engine) was ~3 ms per
step at 864 atoms for L1-W8-S4 (bench/classical_floor.py) — as much as all pair kernels
together; as numpy arrays with a hand-written backward it is ~0.2 ms. Same arithmetic as
hippynn's modules (tests/unit/test_dense.py: energies and forces equal the torch path to
~1e-12 relative, forces equal −finite differences of the energy).

What is supported (:func:`dense_supported`): hippynn's ``Hipnn``/``HipnnVec`` with the
activation hippynn uses by default (``Softplus(beta=1, threshold=20)``), with or without
ResNet, and an ``HEnergy`` head; anything else stays on the torch path.

Shapes: n atoms; features (n, nf); an environment sum (n, nf_in, n_sens, 1 or 4) in
:mod:`aedistill.pairkernels`' layout (atom, feature, sensitivity, component). Units: eV.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numba import njit

__all__ = ["DenseHipnn", "dense_supported"]


@njit(cache=True)
def _softplus_fwd(x: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """torch's Softplus(beta=1, threshold=20) of ``x`` (x above 20, else log(1 + eˣ)) and,
    into ``grad``, its derivative as torch's backward computes it (eˣ/(eˣ + 1); 1 above the
    threshold): one exponential per value."""
    out = np.empty_like(x)
    xf = x.ravel()
    of = out.ravel()
    gf = grad.ravel()
    for a in range(xf.shape[0]):
        v = xf[a]
        if v > 20.0:
            of[a] = v
            gf[a] = 1.0
        else:
            e = math.exp(v)
            of[a] = math.log1p(e)
            gf[a] = e / (e + 1.0)
    return out


def _is_default_softplus(act) -> bool:
    import torch

    if act is torch.nn.functional.softplus:
        return True
    return type(act) is torch.nn.Softplus and act.beta == 1.0 and act.threshold == 20.0


def _np(t) -> np.ndarray:
    return np.ascontiguousarray(t.detach().double().cpu().numpy())


class _Linear:
    """y = x Wᵀ + b (torch.nn.Linear's weights, float64)."""

    def __init__(self, lay) -> None:
        self.wt = _np(lay.weight).T.copy()  # (in, out)
        self.w = _np(lay.weight)  # (out, in)
        self.b = None if lay.bias is None else _np(lay.bias)
        self.nf_out = self.w.shape[0]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y = x @ self.wt
        if self.b is not None:
            y += self.b
        return y

    def grad_in(self, g: np.ndarray) -> np.ndarray:
        return g @ self.w


class _Interaction:
    """The dense part of hippynn's InteractLayer(Vec): environment sums × weights, the
    vector norm (√(Σ_c v_c² + cusp_reg) × vecscales) and the self-interaction; the
    environment sum itself comes from outside (``env`` in :meth:`DenseHipnn.energy`)."""

    def __init__(self, lay, vec: bool) -> None:
        w = _np(lay.int_weights)  # (n_sens, nf_out, nf_in)
        n_s, nf_out, nf_in = w.shape
        # rows in the env layout's order (feature, sensitivity)
        self.w2 = np.ascontiguousarray(w.transpose(2, 0, 1).reshape(nf_in * n_s, nf_out))
        self.w2t = np.ascontiguousarray(self.w2.T)
        self.selfint = _Linear(lay.selfint)
        self.vec = vec
        self.nf_in, self.n_s, self.nf_out = nf_in, n_s, nf_out
        if vec:
            self.vecscales = _np(lay.vecscales)
            self.cusp = float(lay.cusp_reg)

    def forward(self, x: np.ndarray, env: np.ndarray):
        n = len(x)
        nc = 4 if self.vec else 1
        e = env.reshape(n, self.nf_in * self.n_s, nc).transpose(0, 2, 1).reshape(n * nc, -1)
        t = (e @ self.w2).reshape(n, nc, self.nf_out)
        out = t[:, 0] + self.selfint(x)
        norm = None
        if self.vec:
            v = t[:, 1:]
            norm = np.sqrt(np.einsum("ncf,ncf->nf", v, v) + self.cusp)
            out += norm * self.vecscales
        return out, (t, norm)

    def backward(self, g: np.ndarray, saved) -> tuple[np.ndarray, np.ndarray]:
        """(dE/d env (n, nf_in, n_sens, 1 or 4), dE/dx through the self-interaction)."""
        t, norm = saved
        n = len(g)
        nc = 4 if self.vec else 1
        gt = np.empty_like(t)
        gt[:, 0] = g
        if self.vec:
            gt[:, 1:] = (g * self.vecscales / norm)[:, None, :] * t[:, 1:]
        ge = (gt.reshape(n * nc, self.nf_out) @ self.w2t).reshape(n, nc, self.nf_in * self.n_s)
        g_env = np.ascontiguousarray(ge.transpose(0, 2, 1)).reshape(n, self.nf_in, self.n_s, nc)
        return g_env, self.selfint.grad_in(g)


class _Block:
    """One HIPNN block entry: a base layer (interaction or Linear), optionally inside a
    ResNetWrapper (y = res(softplus(base(x))) + adjust(x)), else y = softplus(base(x))."""

    def __init__(self, lay, vec: bool) -> None:
        from hippynn.layers.transform import ResNetWrapper

        self.resnet = isinstance(lay, ResNetWrapper)
        base = lay.base_layer if self.resnet else lay
        self.interaction = not isinstance(base, _torch_linear())
        self.base = _Interaction(base, vec) if self.interaction else _Linear(base)
        if self.resnet:
            self.res = _Linear(lay.res_layer)
            self.adjust = _Linear(lay.adjust_layer) if lay.needs_size_adjust else None
        last = self.res if self.resnet else self.base
        self.nf_out = last.nf_out

    def forward(self, x, env):
        if self.interaction:
            a, saved = self.base.forward(x, env)
        else:
            a, saved = self.base(x), None
        dh = np.empty_like(a)
        h = _softplus_fwd(a, dh)
        if not self.resnet:
            return h, (dh, saved)
        y = self.res(h)
        y += x if self.adjust is None else self.adjust(x)
        return y, (dh, saved)

    def backward(self, g, state):
        """(dE/dx, dE/d env or None) from dE/dy."""
        dh, saved = state
        g_h = self.res.grad_in(g) if self.resnet else g
        g_a = g_h * dh
        if self.interaction:
            g_env, g_x = self.base.backward(g_a, saved)
        else:
            g_env, g_x = None, self.base.grad_in(g_a)
        if self.resnet:
            g_x += g if self.adjust is None else self.adjust.grad_in(g)
        return g_x, g_env


def _torch_linear():
    import torch

    return torch.nn.Linear


def dense_supported(network, henergy) -> bool:
    """Whether :class:`DenseHipnn` reproduces ``network`` + ``henergy`` (else use torch)."""
    from hippynn.layers.hiplayers.interactions import InteractLayer, InteractLayerVec
    from hippynn.layers.targets import HEnergy
    from hippynn.layers.transform import ResNetWrapper
    from hippynn.networks.hipnn import Hipnn, HipnnVec

    if type(network) not in (Hipnn, HipnnVec) or type(henergy) is not HEnergy:
        return False
    if not _is_default_softplus(network.activation):
        return False
    for block in network.blocks:
        for pos, lay in enumerate(block):
            if isinstance(lay, ResNetWrapper):
                if not _is_default_softplus(lay.activation):
                    return False
                lay = lay.base_layer
            elif network.resnet:
                return False
            want = (InteractLayer, InteractLayerVec) if pos == 0 else (_torch_linear(),)
            if type(lay) not in want:
                return False
    return all(type(lay) is _torch_linear() and lay.out_features == 1 for lay in henergy.layers)


class DenseHipnn:
    """A HIPNN's dense layers (float64 numpy copies of ``network``'s and ``henergy``'s
    weights): :meth:`energy` runs the network around externally computed environment sums
    and returns the per-atom energies and, by the chain rule, dE/d(environment sums)."""

    def __init__(self, network, henergy) -> None:
        from hippynn.networks.hipnn import HipnnVec

        if not dense_supported(network, henergy):
            raise NotImplementedError("dense path: unsupported network or energy head")
        vec = isinstance(network, HipnnVec)
        self.blocks = [[_Block(lay, vec) for lay in block] for block in network.blocks]
        self.head = [_Linear(lay) for lay in henergy.layers]
        self.first_is_interacting = bool(henergy.first_is_interacting)

    def energy(
        self,
        z: np.ndarray,
        env_sum: Callable[[int, np.ndarray], np.ndarray],
        env_grad: Callable[[int, np.ndarray, bool], np.ndarray | None] | None = None,
    ) -> np.ndarray:
        """Per-atom energies ε (n,) eV of atoms with input features ``z`` (n, n_species).

        ``env_sum(b, x)``: the environment sum of interaction block ``b`` over features ``x``
        (n, nf) → (n, nf, n_sens, 1 or 4). ``env_grad(b, g_env, need_dx)`` (optional, for
        forces): given dE/d(that sum), accumulate dE/dR wherever the caller keeps it and
        return dE/dx (n, nf) if ``need_dx`` (blocks after the first), else None. Blocks are
        visited in reverse order in the backward pass.
        """
        feats = [z]
        states = []
        x = z
        for b, block in enumerate(self.blocks):
            block_states = []
            for pos, lay in enumerate(block):
                env = env_sum(b, x) if pos == 0 else None
                x, st = lay.forward(x, env)
                block_states.append(st)
            states.append(block_states)
            feats.append(x)
        used = feats[1:] if self.first_is_interacting else feats
        eps = sum(head(f) for f, head in zip(used, self.head, strict=False))[:, 0]
        if env_grad is None:
            return eps
        # backward: dε/d(features) from the energy head, then the blocks in reverse; the
        # gradient reaching block b's output is the head's for feats[b + 1] plus what flows
        # back from block b + 1's input
        n = len(z)
        offset = 1 if self.first_is_interacting else 0
        head_grad = {i + offset: h.w[0] for i, h in enumerate(self.head)}
        g = np.zeros((n, self.blocks[-1][-1].nf_out))
        for b in range(len(self.blocks) - 1, -1, -1):
            if b + 1 in head_grad:
                g = g + head_grad[b + 1]
            block = self.blocks[b]
            for pos in range(len(block) - 1, -1, -1):
                g, g_env = block[pos].backward(g, states[b][pos])
            dx = env_grad(b, g_env, b > 0)
            if dx is not None:
                g = g + dx
        return eps
