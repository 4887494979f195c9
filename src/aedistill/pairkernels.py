"""Pair kernels of the fast calculator (:mod:`aedistill.fastcalc`): numba loops over pairs.

One kernel walks each *unordered* pair once, evaluates the sensitivities s_ν(r) and the unit
vector once, and scatters into both atoms' environments (the vector part with opposite
signs); a second applies the analytic chain rule for the backward pass (recomputing the
sensitivities rather than storing P×S arrays, so memory stays O(atoms)). Atoms beyond the
hard cutoff are skipped. The ``*_directed`` variants take a LAMMPS-style neighbour list
(:class:`aedistill.fastcalc.FastPairModel`).

Public entries: :func:`pair_terms`, :func:`directed_terms` (geometry and sensitivities of
the pairs within the cutoff), :func:`env_forward`, :func:`env_backward`,
:func:`env_forward_directed`, :func:`env_backward_directed`. Units: Å, eV.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit


@njit(cache=True)
def _pair_geometry(r_pos, shiftvec, pi, pj, mu_inv, sigma, rc, sel, unit, cuts, arg):
    """Pairs within ``rc``: index, unit vector and 1/d, the cutoff's phase π d/(2 rc), and the
    exponent −q²/2 of every sensitivity (q = (1/d − 1/μ_k) σ_k). Returns the count."""
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
        if d2 > rc2:
            continue
        d = math.sqrt(d2)
        inv = 1.0 / d
        sel[m] = p
        unit[m, 0] = rx * inv
        unit[m, 1] = ry * inv
        unit[m, 2] = rz * inv
        unit[m, 3] = inv
        cuts[m, 0] = half_pi_rc * d  # phase of the cosine cutoff (_finish_terms)
        for k in range(n_s):
            q = (inv - mu_inv[k]) * sigma[k]
            arg[m, k] = -0.5 * q * q
        m += 1
    return m


@njit(cache=True)
def _pair_sensitivities(m, unit, cuts, mu_inv, sigma, base, dsens):
    """From base = exp(−q²/2): s_k = base·cut (in place) and ds_k/dd (into ``dsens``)."""
    n_s = mu_inv.shape[0]
    for p in range(m):
        inv = unit[p, 3]
        cut = cuts[p, 0]
        dcut = cuts[p, 1]
        for k in range(n_s):
            q = (inv - mu_inv[k]) * sigma[k]
            b = base[p, k]
            base[p, k] = b * cut
            dsens[p, k] = b * (q * sigma[k] * inv * inv * cut + dcut)


def pair_terms(r_pos, shiftvec, pi, pj, mu_inv, sigma, rc, buffers=None):
    """(sel, unit, sens, dsens, m) of the pairs within ``rc``.

    The exponentials go through torch's vectorised ``exp_`` in place on the numpy buffer
    (:func:`_finish_terms`); the arithmetic around it stays in numba. ``buffers`` (a dict
    kept by the caller): reuse its arrays from call to call (the returned arrays are views
    of them, valid until the next call with the same dict).
    """
    sel, unit, cuts, arg, dsens = _term_buffers(len(pi), len(mu_inv), buffers)
    m = _pair_geometry(r_pos, shiftvec, pi, pj, mu_inv, sigma, rc, sel, unit, cuts, arg)
    return _finish_terms(sel, unit, cuts, arg, dsens, m, mu_inv, sigma, rc)


def _term_buffers(n_pairs: int, n_s: int, buffers: dict | None = None):
    """Uninitialised (sel, unit, cuts, arg, dsens) rows for up to ``n_pairs`` pairs, filled
    by :func:`_pair_geometry` or :func:`_directed_geometry`; taken from ``buffers`` where
    its arrays are large enough (grown by a quarter when not)."""
    if buffers is not None:
        have = buffers.get("terms")
        if have is not None and len(have[0]) >= n_pairs and have[3].shape[1] == n_s:
            return have
        n_pairs = n_pairs + n_pairs // 4
    terms = (
        np.empty(n_pairs, np.int64),
        np.empty((n_pairs, 4)),
        np.empty((n_pairs, 2)),
        np.empty((n_pairs, n_s)),
        np.empty((n_pairs, n_s)),
    )
    if buffers is not None:
        buffers["terms"] = terms
    return terms


def _finish_terms(sel, unit, cuts, arg, dsens, m, mu_inv, sigma, rc):
    """Sensitivities and their derivatives from the geometry kernels' rows 0..m−1.

    The cutoff cos²(x) and its derivative d/dd = −2 cos x sin x · π/(2 rc) from the phase
    x = π d/(2 rc) that the kernels leave in ``cuts[:, 0]``: torch's SIMD cos and sin over all
    pairs at once (libm's scalar ones inside the numba kernel cost more than the rest of it).
    """
    phase = torch.from_numpy(cuts[:m, 0])
    cos = torch.cos(phase)
    cuts[:m, 1] = torch.sin(phase).mul_(cos).mul_(-math.pi / rc).numpy()
    cuts[:m, 0] = cos.mul_(cos).numpy()
    sens = arg[:m]
    # torch's SIMD exp (SLEEF), in place on the numpy buffer: per value 3.4 ns against
    # numpy's 8.7 ns on this machine's AVX2 CPU (AVX-512 machines: numpy's 1.4 ns), and 19 ns
    # for libm's scalar exp inside a numba loop; equal to 1 ulp
    torch.from_numpy(sens).exp_()
    dsens = dsens[:m]
    _pair_sensitivities(m, unit, cuts, mu_inv, sigma, sens, dsens)
    return sel, unit, sens, dsens, m


def directed_terms(pairs, mu_inv, sigma, rc):
    """(sel, unit, sens, dsens, m) of a full neighbour list, each physical pair once; fills
    ``pairs.pj`` and ``pairs.both`` (see :func:`_directed_geometry`)."""
    sel, unit, cuts, arg, dsens = _term_buffers(len(pairs.pi), len(mu_inv))
    m = _directed_geometry(
        pairs.pi,
        pairs.pj_list,
        pairs.rij,
        pairs.n_first,
        pairs.owner,
        pairs.half,
        mu_inv,
        sigma,
        rc,
        sel,
        pairs.pj,
        pairs.both,
        unit,
        cuts,
        arg,
    )
    return _finish_terms(sel, unit, cuts, arg, dsens, m, mu_inv, sigma, rc)


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
        # dE/dr = dE/dd u + (dE/du − (dE/du·u) u) / d
        gu_dot = gux * ux + guy * uy + guz * uz
        fx = de_dd * ux + (gux - gu_dot * ux) * inv
        fy = de_dd * uy + (guy - gu_dot * uy) * inv
        fz = de_dd * uz + (guz - gu_dot * uz) * inv
        grad_r[j, 0] += fx
        grad_r[j, 1] += fy
        grad_r[j, 2] += fz
        grad_r[i, 0] -= fx
        grad_r[i, 1] -= fy
        grad_r[i, 2] -= fz


@njit(cache=True)
def env_forward_directed(pi, pj, both, sel, unit, sens, m, z, vec, env):
    """Pairs of a neighbour list with ghost atoms: env[i, f, k, c] += s_k(r_ij) (rhat_c) z[j, f],
    and, where ``both[p]`` (j is a local atom too), the reverse term into atom j as in
    :func:`env_forward`. ``env`` has a row per local atom, ``z`` one per local or ghost atom.
    """
    n_s = sens.shape[1]
    nf = z.shape[1]
    for q in range(m):
        p = sel[q]
        i = pi[p]
        j = pj[p]
        two = both[p]
        ux = unit[q, 0]
        uy = unit[q, 1]
        uz = unit[q, 2]
        for k in range(n_s):
            sk = sens[q, k]
            for f in range(nf):
                zj = sk * z[j, f]
                env[i, f, k, 0] += zj
                if vec:
                    env[i, f, k, 1] += ux * zj
                    env[i, f, k, 2] += uy * zj
                    env[i, f, k, 3] += uz * zj
                if two:
                    zi = sk * z[i, f]
                    env[j, f, k, 0] += zi
                    if vec:
                        env[j, f, k, 1] -= ux * zi
                        env[j, f, k, 2] -= uy * zi
                        env[j, f, k, 3] -= uz * zi


@njit(cache=True)
def env_backward_directed(pi, pj, both, sel, unit, sens, dsens, m, z, vec, g, grad_pair):
    """Chain rule of :func:`env_forward_directed` with respect to each pair vector r_ij
    (``grad_pair[p] = dE/dr_ij``; the features ``z`` are constants: one-hot species)."""
    n_s = sens.shape[1]
    nf = z.shape[1]
    for q in range(m):
        p = sel[q]
        i = pi[p]
        j = pj[p]
        two = both[p]
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
                a_k += g[i, f, k, 0] * zj
                if vec:
                    hx += g[i, f, k, 1] * zj
                    hy += g[i, f, k, 2] * zj
                    hz += g[i, f, k, 3] * zj
                if two:
                    zi = z[i, f]
                    a_k += g[j, f, k, 0] * zi
                    if vec:
                        hx -= g[j, f, k, 1] * zi
                        hy -= g[j, f, k, 2] * zi
                        hz -= g[j, f, k, 3] * zi
            de_dd += (a_k + hx * ux + hy * uy + hz * uz) * dsens[q, k]
            gux += sk * hx
            guy += sk * hy
            guz += sk * hz
        gu_dot = gux * ux + guy * uy + guz * uz
        grad_pair[p, 0] = de_dd * ux + (gux - gu_dot * ux) * inv
        grad_pair[p, 1] = de_dd * uy + (guy - gu_dot * uy) * inv
        grad_pair[p, 2] = de_dd * uz + (guz - gu_dot * uz) * inv


@njit(cache=True)
def _directed_geometry(
    pair_i, pair_j, rij, n_first, owner, half, mu_inv, sigma, rc, sel, pj_eff, both, unit, cuts, arg
):
    """:func:`_pair_geometry` over a full neighbour list, each physical pair kept once.

    A local-local pair is listed twice, (i, j) and (j, i): the (i < j) entry is kept with
    ``both`` set (it feeds both environments). A pair with a ghost j whose owner
    k = ``owner[j]`` is a listed local atom has a mirror entry (k, ghost of i): the entry
    with i < k is kept as the pair (i, k) with ``both`` set, the other dropped. Pairs to
    ghosts of unknown owner (``owner[j] < 0``) and self-images (k = i) are kept directed
    (they feed i's environment only). With ``half`` the list is a half list (each physical
    pair listed once, every ghost's owner known): every entry is kept, feeding both atoms
    (i and the owner of j; a self-image feeds i twice, with opposite vectors). For a kept
    entry p: ``sel[q] = p``, ``pj_eff[p]`` the atom whose environment the reverse term feeds,
    ``both[p]`` whether it does. Returns the count kept within ``rc``.

    The per-pair body repeats :func:`_pair_geometry`'s on purpose: one shared njit helper made
    both kernels ~30 % slower, also with ``inline="always"`` (bench/lammps_vs_ase.py, L1-W8-S4:
    ASE 9.10 → 12.49, LAMMPS 9.08 → 12.70 µs per atom-step)."""
    n_s = mu_inv.shape[0]
    rc2 = rc * rc
    half_pi_rc = 0.5 * math.pi / rc
    m = 0
    for p in range(pair_i.shape[0]):
        i = pair_i[p]
        j = pair_j[p]
        if half:
            k = j if j < n_first else owner[j]
            two = True
        elif j < n_first:
            if j <= i:
                continue
            k = j
            two = True
        else:
            k = owner[j]
            if k < 0 or k >= n_first or k == i:
                k = j
                two = False
            elif k < i:
                continue
            else:
                two = True
        rx = rij[p, 0]
        ry = rij[p, 1]
        rz = rij[p, 2]
        d2 = rx * rx + ry * ry + rz * rz
        if d2 > rc2:
            continue
        d = math.sqrt(d2)
        inv = 1.0 / d
        sel[m] = p
        pj_eff[p] = k
        both[p] = two
        unit[m, 0] = rx * inv
        unit[m, 1] = ry * inv
        unit[m, 2] = rz * inv
        unit[m, 3] = inv
        cuts[m, 0] = half_pi_rc * d  # phase of the cosine cutoff (_finish_terms)
        for kk in range(n_s):
            q = (inv - mu_inv[kk]) * sigma[kk]
            arg[m, kk] = -0.5 * q * q
        m += 1
    return m
