"""The fused kernels of :mod:`aedistill.fast.kernels` as torch autograd functions.

The loss differentiates these ops only once (their backward kernels, ``once_differentiable``);
second derivatives are needed only of the atom-level network (:mod:`aedistill.fast.forward`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from aedistill.fast.kernels import (
    pair_forces,
    pair_forces_backward,
    sens_arg,
    sens_env,
    sens_env_backward,
)


def _np(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().numpy())


class SensEnv(torch.autograd.Function):
    """(1/μ, σ) (M, K) → env (M, N, C, nf·K), s and ds/dd (M, N, S, K) of a batch's slots
    (numba kernels around torch's SIMD exp)."""

    @staticmethod
    def forward(ctx, muinv, sig, b, n_channels):
        mi, sg = _np(muinv), _np(sig)
        M, K = mi.shape
        N, S = b.inv.shape
        inv, cut, dcut, unit = b.inv.numpy(), b.cut.numpy(), b.dcut.numpy(), b.unit.numpy()
        base = np.empty((M, N, S, K), dtype=mi.dtype)
        sens_arg(inv, b.count, mi, sg, base)
        torch.from_numpy(base).exp_()  # SIMD exp in place
        s = np.empty_like(base)
        ds = np.empty_like(base)
        env = np.zeros((M, N, n_channels, K * b.nf), dtype=mi.dtype)
        sens_env(base, inv, cut, dcut, unit, b.count, b.zidx, mi, sg, s, ds, env)
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
        sens_env_backward(base, inv, cut, dcut, unit, cnt, zidx, mi, sg, gs, gds, genv, g_mi, g_sg)
        return torch.from_numpy(g_mi), torch.from_numpy(g_sg), None, None


class PairForces(torch.autograd.Function):
    """Forces (M, N, 3) eV/Å from s, ds (M, N, S, K) and G = ∂E/∂env (M, N, C, nf·K)."""

    @staticmethod
    def forward(ctx, s, ds, G, b, vec):
        sn, dsn, Gn = _np(s), _np(ds), _np(G)
        unit, inv = b.unit.numpy(), b.inv.numpy()
        F = np.zeros((sn.shape[0], unit.shape[0], 3), dtype=sn.dtype)
        pair_forces(sn, dsn, Gn, unit, inv, b.jloc, b.count, b.zidx, vec, F)
        ctx.saved = (sn, dsn, Gn, unit, inv, b.jloc, b.count, b.zidx, vec)
        return torch.from_numpy(F)

    @staticmethod
    @once_differentiable
    def backward(ctx, gF):
        sn, dsn, Gn, unit, inv, jloc, cnt, zidx, vec = ctx.saved
        gs = np.empty_like(sn)
        gds = np.empty_like(dsn)
        gG = np.zeros_like(Gn)
        pair_forces_backward(sn, dsn, Gn, unit, inv, jloc, cnt, zidx, vec, _np(gF), gs, gds, gG)
        return torch.from_numpy(gs), torch.from_numpy(gds), torch.from_numpy(gG), None, None
