"""Pair kernels of the fast calculator (:mod:`aedistill.fastcalc`): numba loops over pairs.

One kernel walks each *unordered* pair once, evaluates the sensitivities s_ν(r) and the unit
vector once, and scatters into both atoms' environments (the vector part with opposite
signs); a second applies the analytic chain rule for the backward pass (recomputing the
sensitivities rather than storing P×S arrays, so memory stays O(atoms)). Atoms beyond the
hard cutoff are skipped. The ``*_directed`` variants take a LAMMPS-style neighbour list
(:class:`aedistill.fastcalc.FastPairModel`).

The exponentials of the sensitivities and the cosine cutoff's sin/cos are branch-free
polynomials that numba vectorises (≤ 2 ulp from libm, tested); this module does not import
torch (tested). The ``*_single`` kernels serve the first layer of a single-species model (one
input feature ≡ 1): component-major environments, atom i's terms summed while consecutive
pairs share i. With the branch-free geometry and the polynomials they took the pair work of
L1-W8-S4 at 864 atoms from ~3.9 to ~2.4 ms per step (bench/classical_floor.py).

Public entries: :func:`pair_terms`, :func:`directed_terms` (geometry and sensitivities of
the pairs within the cutoff), :func:`env_forward`, :func:`env_backward`,
:func:`env_forward_single`, :func:`env_backward_single`, :func:`env_forward_directed`,
:func:`env_backward_directed`, their ``_single`` forms and :func:`forces_directed_single`.
Units: Å, eV.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


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
    filled by :func:`_pair_geometry` or :func:`_directed_geometry` and :func:`_finish_terms`;
    taken from ``buffers`` where its arrays are large enough (grown by a quarter when not)."""
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


@njit(cache=True)
def _cutoff_terms(cuts, m, rc):
    """From the phase x = π d/(2 rc) in ``cuts[0]``: the cosine cutoff cos²x into ``cuts[0]``
    and its derivative d/dd = −2 cos x sin x · π/(2 rc) into ``cuts[1]``."""
    scale = -math.pi / rc
    for a in range(m):
        v = cuts[0, a]
        hi = v > _PIO4
        y = (_PIO2_HI - v) + _PIO2_LO if hi else v
        s, c = _sin_cos_small(y)
        sin_x = c if hi else s
        cos_x = s if hi else c
        cuts[0, a] = cos_x * cos_x
        cuts[1, a] = sin_x * cos_x * scale


def _finish_terms(sel, unit, cuts, arg, dsens, scratch, m, mu_inv, sigma, rc):
    """Sensitivities and their derivatives from the geometry kernels' rows 0..m−1: the
    cutoff (:func:`_cutoff_terms`) and the Gaussians exp(−q²/2) (:func:`_exp_poly`), both
    vectorised polynomial kernels, then s_k = base·cut and ds_k/dd."""
    _cutoff_terms(cuts, m, rc)
    n_flat = m * len(mu_inv)
    flat = arg[:m].reshape(-1)
    _exp_poly(flat, flat.view(np.int64), scratch, scratch.view(np.int64), n_flat)
    sens = arg[:m]
    dsens = dsens[:m]
    _pair_sensitivities(m, unit, cuts, mu_inv, sigma, sens, dsens)
    return sel, unit, sens, dsens, m


def directed_terms(pairs, mu_inv, sigma, rc, buffers=None):
    """(sel, unit, sens, dsens, m) of a full neighbour list, each physical pair once; fills
    ``pairs.pj`` and ``pairs.both`` (see :func:`_directed_geometry`)."""
    sel, unit, cuts, arg, dsens, scratch = _term_buffers(len(pairs.pi), len(mu_inv), buffers)
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
    return _finish_terms(sel, unit, cuts, arg, dsens, scratch, m, mu_inv, sigma, rc)


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
        # dE/dr = dE/dd u + (dE/du − (dE/du·u) u) / d
        gu_dot = gux * ux + guy * uy + guz * uz
        fx = de_dd * ux + (gux - gu_dot * ux) * inv
        fy = de_dd * uy + (guy - gu_dot * uy) * inv
        fz = de_dd * uz + (guz - gu_dot * uz) * inv
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


@njit(cache=True, fastmath=True)
def env_forward_directed_single(pi, pj, both, sel, unit, sens, m, vec, env):
    """:func:`env_forward_directed` for a single-species model (z ≡ 1) into a
    component-major ``env`` (rows, 1 or 4, n_sens), as :func:`env_forward_single`."""
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
        two = both[p]
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
            if two:
                for k in range(n_s):
                    sk = sens[q, k]
                    env[j, 0, k] += sk
                    env[j, 1, k] -= ux * sk
                    env[j, 2, k] -= uy * sk
                    env[j, 3, k] -= uz * sk
        else:
            for k in range(n_s):
                acc[0, k] += sens[q, k]
            if two:
                for k in range(n_s):
                    env[j, 0, k] += sens[q, k]
    if cur >= 0:
        for c in range(nc):
            for k in range(n_s):
                env[cur, c, k] += acc[c, k]


@njit(cache=True, fastmath=True)
def env_backward_directed_single(pi, pj, both, sel, unit, sens, dsens, m, vec, g, grad_pair):
    """Chain rule of :func:`env_forward_directed_single` with respect to each pair vector
    (``grad_pair[p] = dE/dr_ij``; g = dE/d env, component-major). Every row of ``grad_pair``
    is written: entries not evaluated (``sel`` skips them) get 0, so it may come uninitialised."""
    n_s = sens.shape[1]
    prev = -1
    for q in range(m):
        p = sel[q]
        for t in range(prev + 1, p):  # skipped entries (``sel`` is increasing)
            grad_pair[t, 0] = 0.0
            grad_pair[t, 1] = 0.0
            grad_pair[t, 2] = 0.0
        prev = p
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
        # j's row of g exists only where both[p] (a ghost j has none without communication)
        if vec:
            for k in range(n_s):
                sk = sens[q, k]
                hx = g[i, 1, k]
                hy = g[i, 2, k]
                hz = g[i, 3, k]
                a_k = g[i, 0, k]
                if two:
                    hx -= g[j, 1, k]
                    hy -= g[j, 2, k]
                    hz -= g[j, 3, k]
                    a_k += g[j, 0, k]
                de_dd += (a_k + hx * ux + hy * uy + hz * uz) * dsens[q, k]
                gux += sk * hx
                guy += sk * hy
                guz += sk * hz
        else:
            for k in range(n_s):
                a_k = g[i, 0, k]
                if two:
                    a_k += g[j, 0, k]
                de_dd += a_k * dsens[q, k]
        gu_dot = gux * ux + guy * uy + guz * uz
        grad_pair[p, 0] = de_dd * ux + (gux - gu_dot * ux) * inv
        grad_pair[p, 1] = de_dd * uy + (guy - gu_dot * uy) * inv
        grad_pair[p, 2] = de_dd * uz + (guz - gu_dot * uz) * inv
    for t in range(prev + 1, grad_pair.shape[0]):
        grad_pair[t, 0] = 0.0
        grad_pair[t, 1] = 0.0
        grad_pair[t, 2] = 0.0


@njit(cache=True, fastmath=True)
def forces_directed_single(pi, pj_list, pj, both, sel, unit, sens, dsens, m, vec, g, f):
    """:func:`env_backward_directed_single` with each pair's dE/dr_ij added straight to the
    atoms' forces, as LAMMPS' ``update_pair_forces`` would: f[i] += dE/dr_ij,
    f[j] −= dE/dr_ij with j the listed partner ``pj_list[p]`` (``f``: (atoms, 3), ghosts
    included). Saves writing the (pairs, 3) array and LAMMPS' second pass over it."""
    n_s = sens.shape[1]
    cur = -1  # atom i's force is summed in registers while consecutive pairs share i
    fix = 0.0
    fiy = 0.0
    fiz = 0.0
    for q in range(m):
        p = sel[q]
        i = pi[p]
        j = pj[p]
        if i != cur:
            if cur >= 0:
                f[cur, 0] += fix
                f[cur, 1] += fiy
                f[cur, 2] += fiz
            cur = i
            fix = 0.0
            fiy = 0.0
            fiz = 0.0
        two = both[p]
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
                hx = g[i, 1, k]
                hy = g[i, 2, k]
                hz = g[i, 3, k]
                a_k = g[i, 0, k]
                if two:
                    hx -= g[j, 1, k]
                    hy -= g[j, 2, k]
                    hz -= g[j, 3, k]
                    a_k += g[j, 0, k]
                de_dd += (a_k + hx * ux + hy * uy + hz * uz) * dsens[q, k]
                gux += sk * hx
                guy += sk * hy
                guz += sk * hz
        else:
            for k in range(n_s):
                a_k = g[i, 0, k]
                if two:
                    a_k += g[j, 0, k]
                de_dd += a_k * dsens[q, k]
        gu_dot = gux * ux + guy * uy + guz * uz
        fx = de_dd * ux + (gux - gu_dot * ux) * inv
        fy = de_dd * uy + (guy - gu_dot * uy) * inv
        fz = de_dd * uz + (guz - gu_dot * uz) * inv
        jl = pj_list[p]
        fix += fx
        fiy += fy
        fiz += fz
        f[jl, 0] -= fx
        f[jl, 1] -= fy
        f[jl, 2] -= fz
    if cur >= 0:
        f[cur, 0] += fix
        f[cur, 1] += fiy
        f[cur, 2] += fiz


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
        d = math.sqrt(d2)
        inv = 1.0 / d
        sel[m] = p
        pj_eff[p] = k
        both[p] = two
        unit[m, 0] = rx * inv
        unit[m, 1] = ry * inv
        unit[m, 2] = rz * inv
        unit[m, 3] = inv
        cuts[0, m] = half_pi_rc * d  # phase of the cosine cutoff (_finish_terms)
        for kk in range(n_s):
            q = (inv - mu_inv[kk]) * sigma[kk]
            arg[m, kk] = -0.5 * q * q
        m += d2 <= rc2  # branch-free, as in _pair_geometry
    return m


# ----------------------------------------------------------------------------- transcendentals
# Branch-free polynomial exp, sin and cos for the sensitivities and the cutoff: numba
# vectorises these loops (AVX2: 4 doubles at a time), where libm's scalar calls inside a
# numba loop cost ~19 ns per value. Accuracy (tests/unit/test_pairkernels.py, against numpy):
# ≤ 2 ulp for exp on [−700, 0], ≤ 2 ulp for sin/cos on [0, π/2].
_LOG2E = 1.4426950408889634
_LN2_HI = 0.693145751953125  # ln 2 in two parts (Cody–Waite); kf·_LN2_HI is exact
_LN2_LO = 1.42860682030941723212e-6
_SHIFT = 6755399441055744.0  # 1.5·2⁵²: t = v·log₂e + _SHIFT rounds to an integer k
_SHIFT_BITS = np.array([_SHIFT]).view(np.int64)[0]
_PIO2_HI = 1.5707963267948966  # π/2 in two parts
_PIO2_LO = 6.123233995736766e-17
_PIO4 = 0.7853981633974483


@njit(cache=True)
def _exp_poly(x, x_bits, t, t_bits, n):
    """x[:n] ← exp(x[:n]) for x ≤ 0 (clamped at −700, i.e. e⁻⁷⁰⁰ ≈ 1e-304 for anything
    below). ``x_bits``/``t_bits``: int64 views of ``x`` and of the scratch ``t``.
    exp(v) = 2ᵏ·p(r), k = round(v/ln 2), r = v − k ln 2 (|r| ≤ ln2/2), p = Taylor to r¹³."""
    for a in range(n):
        v = max(x[a], -700.0)
        tt = v * _LOG2E + _SHIFT
        kf = tt - _SHIFT
        r = (v - kf * _LN2_HI) - kf * _LN2_LO
        p = 1.0 / 6227020800.0
        p = p * r + 1.0 / 479001600.0
        p = p * r + 1.0 / 39916800.0
        p = p * r + 1.0 / 3628800.0
        p = p * r + 1.0 / 362880.0
        p = p * r + 1.0 / 40320.0
        p = p * r + 1.0 / 5040.0
        p = p * r + 1.0 / 720.0
        p = p * r + 1.0 / 120.0
        p = p * r + 1.0 / 24.0
        p = p * r + 1.0 / 6.0
        p = p * r + 0.5
        p = p * r + 1.0
        p = p * r + 1.0
        x[a] = p
        t[a] = tt
    for a in range(n):  # p·2ᵏ: add k to the exponent field (k = bits(t) − bits(_SHIFT))
        x_bits[a] += (t_bits[a] - _SHIFT_BITS) << 52


@njit(cache=True, inline="always")
def _sin_cos_small(y):
    """(sin y, cos y) for |y| ≤ π/4: Taylor series to y¹⁷ and y¹⁶."""
    y2 = y * y
    s = -1.0 / 355687428096000.0
    s = s * y2 + 1.0 / 1307674368000.0
    s = s * y2 - 1.0 / 6227020800.0
    s = s * y2 + 1.0 / 39916800.0
    s = s * y2 - 1.0 / 362880.0
    s = s * y2 + 1.0 / 5040.0
    s = s * y2 - 1.0 / 120.0
    s = s * y2 + 1.0 / 6.0
    s = y - (y * y2) * s
    c = 1.0 / 20922789888000.0
    c = c * y2 - 1.0 / 87178291200.0
    c = c * y2 + 1.0 / 479001600.0
    c = c * y2 - 1.0 / 3628800.0
    c = c * y2 + 1.0 / 40320.0
    c = c * y2 - 1.0 / 720.0
    c = c * y2 + 1.0 / 24.0
    c = c * y2 - 0.5
    c = 1.0 + y2 * c
    return s, c


@njit(cache=True)
def _sin_cos_poly(x, sin_out, cos_out, n):
    """sin and cos of x[:n] ∈ [0, π/2]: above π/4 via z = π/2 − x (exact, Sterbenz),
    sin x = cos z and cos x = sin z."""
    for a in range(n):
        v = x[a]
        hi = v > _PIO4
        y = (_PIO2_HI - v) + _PIO2_LO if hi else v
        s, c = _sin_cos_small(y)
        sin_out[a] = c if hi else s
        cos_out[a] = s if hi else c
