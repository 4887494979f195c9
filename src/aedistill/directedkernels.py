"""Directed pair kernels for LAMMPS' ML-IAP (:class:`aedistill.fastpair.FastPairModel`), numba
loops over a neighbour list with ghost atoms: :func:`directed_terms` keeps each physical pair
of a full or half list once (:func:`_directed_geometry`) and evaluates its sensitivities with
:mod:`aedistill.pairkernels`' buffers and ``_finish_terms``; :func:`env_forward_directed`,
:func:`env_backward_directed` and their single-species ``_single`` forms are the environment
sum and its chain rule with respect to each pair vector r_ij; :func:`forces_directed_single`
adds the pair forces straight to LAMMPS' ``f``. No torch import (tested). Units: Å, eV.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from aedistill.pairkernels import _finish_terms, _pair_vector_grad, _term_buffers

_NO_ROWS = np.zeros((0, 3))  # the unused one of r_ij and positions


def directed_terms(pairs, mu_inv, sigma, rc, buffers=None):
    """(sel, unit, sens, dsens, m) of a full neighbour list, each physical pair once; fills
    ``pairs.pj`` and ``pairs.both`` (see :func:`_directed_geometry`). r_ij from
    ``pairs.rij`` or, where ``pairs.positions`` is set, from the atoms' positions."""
    sel, unit, cuts, arg, dsens, scratch = _term_buffers(len(pairs.pi), len(mu_inv), buffers)
    pos = pairs.positions
    if pairs.fixed:  # a half list from positions whose partners are known: geometry only
        m = _half_geometry(pos, pairs.pi, pairs.pj_list, mu_inv, sigma, rc, sel, unit, cuts, arg)
        return _finish_terms(sel, unit, cuts, arg, dsens, scratch, m, mu_inv, sigma, rc)
    m = _directed_geometry(
        pairs.pi,
        pairs.pj_list,
        pairs.rij if pos is None else _NO_ROWS,
        _NO_ROWS if pos is None else pos,
        pos is not None,
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
def env_forward_directed(pi, pj, both, sel, unit, sens, m, z, vec, env):
    """Pairs of a neighbour list with ghost atoms: env[i, f, k, c] += s_k(r_ij) (rhat_c) z[j, f],
    and, where ``both[p]`` (j is a local atom too), the reverse term into atom j as in
    :func:`aedistill.pairkernels.env_forward`. ``env`` has a row per local atom, ``z`` one
    per local or ghost atom.
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
        grad_pair[p, 0], grad_pair[p, 1], grad_pair[p, 2] = _pair_vector_grad(
            de_dd, gux, guy, guz, ux, uy, uz, inv
        )


@njit(cache=True, fastmath=True)
def env_forward_directed_single(pi, pj, both, sel, unit, sens, m, vec, env):
    """:func:`env_forward_directed` for a single-species model (z ≡ 1) into a
    component-major ``env`` (rows, 1 or 4, n_sens), as
    :func:`aedistill.pairkernels.env_forward_single`."""
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
        grad_pair[p, 0], grad_pair[p, 1], grad_pair[p, 2] = _pair_vector_grad(
            de_dd, gux, guy, guz, ux, uy, uz, inv
        )
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
        fx, fy, fz = _pair_vector_grad(de_dd, gux, guy, guz, ux, uy, uz, inv)
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
    pair_i,
    pair_j,
    rij,
    pos,
    from_pos,
    n_first,
    owner,
    half,
    mu_inv,
    sigma,
    rc,
    sel,
    pj_eff,
    both,
    unit,
    cuts,
    arg,
):
    """:func:`aedistill.pairkernels._pair_geometry` over a full neighbour list, each physical
    pair kept once.

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

    r_ij = ``rij[p]`` or, with ``from_pos``, ``pos[j] − pos[i]`` (LAMMPS' positions, ghosts
    included: a whole neighbour list, skin pairs too, as the patched ML-IAP gives a model
    that asks for raw pairs); the branch on ``from_pos`` is the same for every pair.

    The per-pair body repeats ``_pair_geometry``'s on purpose: one shared njit helper made
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
        if from_pos:
            rx = pos[j, 0] - pos[i, 0]
            ry = pos[j, 1] - pos[i, 1]
            rz = pos[j, 2] - pos[i, 2]
        else:
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


@njit(cache=True)
def _half_geometry(pos, pair_i, pair_j, mu_inv, sigma, rc, sel, unit, cuts, arg):
    """:func:`aedistill.pairkernels._pair_geometry` of a half list with ghost atoms, r_ij =
    ``pos[j] − pos[i]`` (no periodic shifts: a ghost is the image), for pairs whose partners
    are already known (each entry feeds i and the owner of j; see :func:`_directed_geometry`,
    whose per-pair partner and flag stores this skips: LAMMPS' raw pairs of one neighbour
    list, the same from one rebuild to the next). Returns the count within ``rc``; body as
    in ``_pair_geometry`` on purpose (see :func:`_directed_geometry`)."""
    n_s = mu_inv.shape[0]
    rc2 = rc * rc
    half_pi_rc = 0.5 * math.pi / rc
    m = 0
    for p in range(pair_i.shape[0]):
        i = pair_i[p]
        j = pair_j[p]
        rx = pos[j, 0] - pos[i, 0]
        ry = pos[j, 1] - pos[i, 1]
        rz = pos[j, 2] - pos[i, 2]
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
        m += d2 <= rc2  # branch-free, as in _pair_geometry
    return m
