"""Pair kernels of the fast ASE calculator (:mod:`aedistill.fastcalc`), numba loops over a
half neighbour list: :func:`pair_terms` (geometry and sensitivities of the pairs within the
cutoff, each unordered pair once), :func:`env_forward` (scatter into both atoms'
environments, the vector part with opposite signs) and :func:`env_backward` (its analytic
chain rule, recomputing the sensitivities rather than storing P×S arrays, so memory stays
O(atoms)), and their ``_single`` forms for the first layer of a single-species model
(component-major, atom i's terms summed while consecutive pairs share i; with the
branch-free geometry and :mod:`aedistill.fastmath`'s polynomials they took the pair work of
L1-W8-S4 at 864 atoms from ~3.9 to ~2.4 ms per step, bench/classical_floor.py). The term
buffers are shared with :mod:`aedistill.directedkernels`. No torch import (tested). Units:
Å, eV.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from aedistill.fastmath import _cutoff_terms, _exp_poly


@njit(cache=True, inline="always")
def _pair_vector_grad(de_dd, gux, guy, guz, ux, uy, uz, inv):
    """dE/dr_ij from dE/dd (distance) and dE/du (unit vector u = r/d, ``inv`` = 1/d):
    dE/dd u + (dE/du − (dE/du·u) u) / d."""
    gu_dot = gux * ux + guy * uy + guz * uz
    fx = de_dd * ux + (gux - gu_dot * ux) * inv
    fy = de_dd * uy + (guy - gu_dot * uy) * inv
    fz = de_dd * uz + (guz - gu_dot * uz) * inv
    return fx, fy, fz


@njit(cache=True)
def _pair_geometry(r_pos, shiftvec, pi, pj, mu_inv, sigma, rc, sel, unit, cuts, arg):
    """Pairs within ``rc``: index, unit vector and 1/d, the cutoff's phase π d/(2 rc), and the
    exponent −q²/2 of every sensitivity (q = (1/d − 1/μ_k) σ_k). Returns the count.

    Branch-free: every pair is written to the next free row, which only advances for a pair
    within ``rc`` (about a third of a Verlet list's pairs lie in the skin, and a branch on
    that mispredicts); so the buffers need a row per listed pair."""
    n_s = mu_inv.shape[0]
    rc2 = rc * rc
    half_pi_rc = 0.5 * math.pi / rc
    m = 0
    for p in range(pi.shape[0]):
        i = pi[p]
        j = pj[p]
        rx = r_pos[j, 0] + shiftvec[p, 0] - r_pos[i, 0]
        ry = r_pos[j, 1] + shiftvec[p, 1] - r_pos[i, 1]
        rz = r_pos[j, 2] + shiftvec[p, 2] - r_pos[i, 2]
        d2 = rx * rx + ry * ry + rz * rz
        d = math.sqrt(d2)
        inv = 1.0 / d
        sel[m] = p
        unit[m, 0] = rx * inv
        unit[m, 1] = ry * inv
        unit[m, 2] = rz * inv
        unit[m, 3] = inv
        cuts[0, m] = half_pi_rc * d  # phase of the cosine cutoff (_finish_terms)
        for k in range(n_s):
            q = (inv - mu_inv[k]) * sigma[k]
            arg[m, k] = -0.5 * q * q
        m += d2 <= rc2
    return m


@njit(cache=True)
def _pair_sensitivities(m, unit, cuts, mu_inv, sigma, base, dsens):
    """From base = exp(−q²/2): s_k = base·cut (in place) and ds_k/dd (into ``dsens``)."""
    n_s = mu_inv.shape[0]
    for p in range(m):
        inv = unit[p, 3]
        cut = cuts[0, p]
        dcut = cuts[1, p]
        for k in range(n_s):
            q = (inv - mu_inv[k]) * sigma[k]
            b = base[p, k]
            base[p, k] = b * cut
            dsens[p, k] = b * (q * sigma[k] * inv * inv * cut + dcut)


def pair_terms(r_pos, shiftvec, pi, pj, mu_inv, sigma, rc, buffers=None):
    """(sel, unit, sens, dsens, m) of the pairs within ``rc``.

    ``buffers`` (a dict
    kept by the caller): reuse its arrays from call to call (the returned arrays are views
    of them, valid until the next call with the same dict).
    """
    sel, unit, cuts, arg, dsens, scratch = _term_buffers(len(pi), len(mu_inv), buffers)
    m = _pair_geometry(r_pos, shiftvec, pi, pj, mu_inv, sigma, rc, sel, unit, cuts, arg)
    return _finish_terms(sel, unit, cuts, arg, dsens, scratch, m, mu_inv, sigma, rc)


def _term_buffers(n_pairs: int, n_s: int, buffers: dict | None = None):
    """Uninitialised (sel, unit, cuts, arg, dsens, scratch) rows for up to ``n_pairs`` pairs,
    filled by :func:`_pair_geometry` (or :func:`aedistill.directedkernels._directed_geometry`)
    and :func:`_finish_terms`; taken from ``buffers`` where its arrays are large enough
    (grown by a quarter when not)."""
    if buffers is not None:
        have = buffers.get("terms")
        if have is not None and len(have[0]) >= n_pairs and have[3].shape[1] == n_s:
            return have
        n_pairs = n_pairs + n_pairs // 4
    terms = (
        np.empty(n_pairs, np.int64),
        np.empty((n_pairs, 4)),
        np.empty((2, n_pairs)),
        np.empty((n_pairs, n_s)),
        np.empty((n_pairs, n_s)),
        np.empty(n_pairs * n_s),
    )
    if buffers is not None:
        buffers["terms"] = terms
    return terms


def _finish_terms(sel, unit, cuts, arg, dsens, scratch, m, mu_inv, sigma, rc):
    """Sensitivities and their derivatives from the geometry kernels' rows 0..m−1: the
    cutoff (:func:`~aedistill.fastmath._cutoff_terms`) and the Gaussians exp(−q²/2)
    (:func:`~aedistill.fastmath._exp_poly`), both vectorised polynomial kernels, then
    s_k = base·cut and ds_k/dd."""
    _cutoff_terms(cuts, m, rc)
    n_flat = m * len(mu_inv)
    flat = arg[:m].reshape(-1)
    _exp_poly(flat, flat.view(np.int64), scratch, scratch.view(np.int64), n_flat)
    sens = arg[:m]
    dsens = dsens[:m]
    _pair_sensitivities(m, unit, cuts, mu_inv, sigma, sens, dsens)
    return sel, unit, sens, dsens, m


@njit(cache=True)
def env_forward(pi, pj, sel, unit, sens, m, z, vec, env):
    """env[a, f, k, c] += s_k(r) (rhat_c) z[b, f] over both directions of each half pair.

    Layout (atom, feature, sensitivity, component): the 4 components of one update are
    adjacent in memory.
    """
    n_s = sens.shape[1]
    nf = z.shape[1]
    for q in range(m):
        p = sel[q]
        i = pi[p]
        j = pj[p]
        if vec:
            ux = unit[q, 0]
            uy = unit[q, 1]
            uz = unit[q, 2]
            for k in range(n_s):
                sk = sens[q, k]
                for f in range(nf):
                    zj = sk * z[j, f]
                    zi = sk * z[i, f]
                    env[i, f, k, 0] += zj
                    env[j, f, k, 0] += zi
                    env[i, f, k, 1] += ux * zj
                    env[j, f, k, 1] -= ux * zi
                    env[i, f, k, 2] += uy * zj
                    env[j, f, k, 2] -= uy * zi
                    env[i, f, k, 3] += uz * zj
                    env[j, f, k, 3] -= uz * zi
        else:
            for k in range(n_s):
                sk = sens[q, k]
                for f in range(nf):
                    env[i, f, k, 0] += sk * z[j, f]
                    env[j, f, k, 0] += sk * z[i, f]


@njit(cache=True)
def env_backward(pi, pj, sel, unit, sens, dsens, m, z, vec, g, need_gz, grad_r, grad_z):
    """Chain rule of :func:`env_forward`: g = dE/d env → dE/dR (grad_r) and dE/dz (grad_z)."""
    n_s = sens.shape[1]
    nf = z.shape[1]
    for q in range(m):
        p = sel[q]
        i = pi[p]
        j = pj[p]
        ux = unit[q, 0]
        uy = unit[q, 1]
        uz = unit[q, 2]
        inv = unit[q, 3]
        de_dd = 0.0
        gux = 0.0
        guy = 0.0
        guz = 0.0
        for k in range(n_s):
            sk = sens[q, k]
            a_k = 0.0
            hx = 0.0
            hy = 0.0
            hz = 0.0
            for f in range(nf):
                zj = z[j, f]
                zi = z[i, f]
                a_k += g[i, f, k, 0] * zj + g[j, f, k, 0] * zi
                if vec:
                    hx += g[i, f, k, 1] * zj - g[j, f, k, 1] * zi
                    hy += g[i, f, k, 2] * zj - g[j, f, k, 2] * zi
                    hz += g[i, f, k, 3] * zj - g[j, f, k, 3] * zi
                if need_gz:
                    ti = g[i, f, k, 0]
                    tj = g[j, f, k, 0]
                    if vec:
                        ti += ux * g[i, f, k, 1] + uy * g[i, f, k, 2] + uz * g[i, f, k, 3]
                        tj -= ux * g[j, f, k, 1] + uy * g[j, f, k, 2] + uz * g[j, f, k, 3]
                    grad_z[j, f] += sk * ti
                    grad_z[i, f] += sk * tj
            de_dd += (a_k + hx * ux + hy * uy + hz * uz) * dsens[q, k]
            gux += sk * hx
            guy += sk * hy
            guz += sk * hz
        fx, fy, fz = _pair_vector_grad(de_dd, gux, guy, guz, ux, uy, uz, inv)
        grad_r[j, 0] += fx
        grad_r[j, 1] += fy
        grad_r[j, 2] += fz
        grad_r[i, 0] -= fx
        grad_r[i, 1] -= fy
        grad_r[i, 2] -= fz


@njit(cache=True, fastmath=True)
def env_forward_single(pi, pj, sel, unit, sens, m, vec, env):
    """:func:`env_forward` for the first layer of a single-species model (one input feature,
    z ≡ 1), into ``env`` (n, 1 or 4, n_sens): component-major, so the loops over
    sensitivities run over contiguous memory. Atom i's terms are summed in ``acc`` while
    consecutive pairs share i (a half list from :func:`aedistill.neighbours.half_pairs` is
    ordered by i) and stored once per run."""
    n_s = sens.shape[1]
    nc = env.shape[1]
    acc = np.zeros((4, n_s))
    cur = -1
    for q in range(m):
        p = sel[q]
        i = pi[p]
        j = pj[p]
        if i != cur:
            if cur >= 0:
                for c in range(nc):
                    for k in range(n_s):
                        env[cur, c, k] += acc[c, k]
                        acc[c, k] = 0.0
            cur = i
        if vec:
            ux = unit[q, 0]
            uy = unit[q, 1]
            uz = unit[q, 2]
            for k in range(n_s):
                sk = sens[q, k]
                acc[0, k] += sk
                acc[1, k] += ux * sk
                acc[2, k] += uy * sk
                acc[3, k] += uz * sk
            for k in range(n_s):
                sk = sens[q, k]
                env[j, 0, k] += sk
                env[j, 1, k] -= ux * sk
                env[j, 2, k] -= uy * sk
                env[j, 3, k] -= uz * sk
        else:
            for k in range(n_s):
                acc[0, k] += sens[q, k]
                env[j, 0, k] += sens[q, k]
    if cur >= 0:
        for c in range(nc):
            for k in range(n_s):
                env[cur, c, k] += acc[c, k]


@njit(cache=True, fastmath=True)
def env_backward_single(pi, pj, sel, unit, sens, dsens, m, vec, g, grad_r):
    """Chain rule of :func:`env_forward_single`: g = dE/d env (n, 1 or 4, n_sens) → dE/dR
    (added to ``grad_r``); atom i's force is summed in registers while pairs share i.
    Half the time of :func:`env_backward` for L1-W8-S4 (bench/classical_floor.py)."""
    n_s = sens.shape[1]
    cur = -1
    fix = 0.0
    fiy = 0.0
    fiz = 0.0
    for q in range(m):
        p = sel[q]
        i = pi[p]
        j = pj[p]
        if i != cur:
            if cur >= 0:
                grad_r[cur, 0] -= fix
                grad_r[cur, 1] -= fiy
                grad_r[cur, 2] -= fiz
            cur = i
            fix = 0.0
            fiy = 0.0
            fiz = 0.0
        ux = unit[q, 0]
        uy = unit[q, 1]
        uz = unit[q, 2]
        inv = unit[q, 3]
        de_dd = 0.0
        gux = 0.0
        guy = 0.0
        guz = 0.0
        if vec:
            for k in range(n_s):
                sk = sens[q, k]
                hx = g[i, 1, k] - g[j, 1, k]
                hy = g[i, 2, k] - g[j, 2, k]
                hz = g[i, 3, k] - g[j, 3, k]
                a_k = g[i, 0, k] + g[j, 0, k]
                de_dd += (a_k + hx * ux + hy * uy + hz * uz) * dsens[q, k]
                gux += sk * hx
                guy += sk * hy
                guz += sk * hz
        else:
            for k in range(n_s):
                de_dd += (g[i, 0, k] + g[j, 0, k]) * dsens[q, k]
        fx, fy, fz = _pair_vector_grad(de_dd, gux, guy, guz, ux, uy, uz, inv)
        grad_r[j, 0] += fx
        grad_r[j, 1] += fy
        grad_r[j, 2] += fz
        fix += fx
        fiy += fy
        fiz += fz
    if cur >= 0:
        grad_r[cur, 0] -= fix
        grad_r[cur, 1] -= fiy
        grad_r[cur, 2] -= fiz
