"""Fused pair kernels of the fast engine (numba), with hand-written first derivatives.

One pass computes the sensitivities s_k(d), their derivative and the environment sums
env[i, c, f·K + k] = Σ_q U_c s_k (U = [1, r̂]) (:func:`sens_env`); the pair derivative
∂E/∂r_q = (Σ_k A_k s'_k) r̂ + (h − (h·r̂) r̂)/d with A = U G, h = s G_vec (G = ∂E/∂env) is
scattered into F_i += g_q, F_j −= g_q (:func:`pair_forces`). Each has its backward kernel;
:mod:`aedistill.fast.ops` wraps them as autograd functions.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# The pair-level arithmetic (sensitivities and their distance derivative; pair forces) as
# numba loops over (model, atom, used slot) with hand-written first derivatives: torch would
# run ~40 separate elementwise passes over (M, N, S, K) arrays per step for the same work.
# fastmath without the no-NaN/no-inf assumptions, so that a diverging model still shows NaN.
# Only first derivatives are needed: the loss is differentiated once through these ops
# (∂E/∂env, which needs second derivatives, is an atom-level torch graph).


_FASTMATH = {"reassoc", "contract", "arcp", "nsz"}


@njit(cache=True, fastmath=_FASTMATH)
def sens_arg(inv, cnt, muinv, sig, arg):
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
def sens_env(base, inv, cut, dcut, unit, cnt, zidx, muinv, sig, s, ds, env):
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
def sens_env_backward(
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
def pair_forces(s, ds, G, unit, inv, jloc, cnt, zidx, vec, F):
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
def pair_forces_backward(s, ds, G, unit, inv, jloc, cnt, zidx, vec, gF, gs, gds, gG):
    """Chain rule of :func:`pair_forces`: gF (M, N, 3) → gs, gds (M, N, S, K) (every slot
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
