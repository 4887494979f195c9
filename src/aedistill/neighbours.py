"""The neighbour list of the project: half pairs within a cutoff by a numba cell list.

One implementation for every user: the fast calculator's Verlet list
(:mod:`aedistill.fastcalc`), the fast training engine's fixed pair geometry
(:mod:`aedistill.fast.geometry`), and the MD and augmentation checks on close contacts
(:func:`min_distance`). ASE's ``primitive_neighbor_list`` costs ~400 µs per atom per build;
this cell list works for any cell (triclinic too) and mixed periodicity.

Units: Å.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["half_pairs", "min_distance"]


@njit(cache=True)
def _pairs_from_cells(
    pos, orig, image, n_real, rcut, lo, nbins, binsize, count_only, out_i, out_j, out_t
):
    """Half pairs (i < j, or i == j with a positive image) within ``rcut`` via a cell list.

    ``pos`` holds the real atoms first (image 0) and then their periodic images; ``orig`` the
    real atom each entry is an image of and ``image`` its lattice translation.
    """
    m = pos.shape[0]
    nbx, nby, nbz = nbins[0], nbins[1], nbins[2]
    nb = nbx * nby * nbz
    binof = np.empty(m, np.int64)
    counts = np.zeros(nb + 1, np.int64)
    for a in range(m):
        bx = min(max(int((pos[a, 0] - lo[0]) / binsize[0]), 0), nbx - 1)
        by = min(max(int((pos[a, 1] - lo[1]) / binsize[1]), 0), nby - 1)
        bz = min(max(int((pos[a, 2] - lo[2]) / binsize[2]), 0), nbz - 1)
        b = (bx * nby + by) * nbz + bz
        binof[a] = b
        counts[b + 1] += 1
    for b in range(nb):
        counts[b + 1] += counts[b]
    start = counts.copy()
    members = np.empty(m, np.int64)
    fill = counts[:nb].copy()
    for a in range(m):
        b = binof[a]
        members[fill[b]] = a
        fill[b] += 1
    rc2 = rcut * rcut
    n = 0
    for i in range(n_real):
        b = binof[i]
        bx = b // (nby * nbz)
        by = (b // nbz) % nby
        bz = b % nbz
        for cx in range(max(bx - 1, 0), min(bx + 2, nbx)):
            for cy in range(max(by - 1, 0), min(by + 2, nby)):
                for cz in range(max(bz - 1, 0), min(bz + 2, nbz)):
                    c = (cx * nby + cy) * nbz + cz
                    for q in range(start[c], start[c + 1]):
                        a = members[q]
                        j = orig[a]
                        if j < i:
                            continue
                        if j == i:
                            t0, t1, t2 = image[a, 0], image[a, 1], image[a, 2]
                            pos_img = t0 > 0 or (t0 == 0 and (t1 > 0 or (t1 == 0 and t2 > 0)))
                            if not pos_img:
                                continue
                        dx = pos[a, 0] - pos[i, 0]
                        dy = pos[a, 1] - pos[i, 1]
                        dz = pos[a, 2] - pos[i, 2]
                        if dx * dx + dy * dy + dz * dz < rc2:
                            if not count_only:
                                out_i[n] = i
                                out_j[n] = j
                                out_t[n, 0] = image[a, 0]
                                out_t[n, 1] = image[a, 1]
                                out_t[n, 2] = image[a, 2]
                            n += 1
    return n


def half_pairs(positions: np.ndarray, cell: np.ndarray, pbc, rcut: float):
    """Unordered pairs closer than ``rcut``: ``(i, j, shifts)`` with r_ij = R_j + S·cell − R_i.

    Each pair appears once (i < j, or i == j for an atom and its own periodic image with a
    positive image vector). Works for any cell (triclinic too) and mixed periodicity.
    """
    positions = np.ascontiguousarray(positions, dtype=np.float64)
    cell = np.asarray(cell, dtype=np.float64)
    pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))
    n = len(positions)
    if n == 0:
        z = np.zeros(0, np.int64)
        return z, z, np.zeros((0, 3), np.int64)
    # wrap periodic directions into the cell; remember the integer offsets
    offsets = np.zeros((n, 3), np.int64)
    wrapped = positions.copy()
    reps = np.zeros(3, np.int64)
    if pbc.any():
        inv = np.linalg.inv(cell)
        frac = positions @ inv
        fl = np.floor(frac).astype(np.int64)
        fl[:, ~pbc] = 0
        offsets = fl
        wrapped = positions - fl @ cell
        volume = abs(np.linalg.det(cell))
        for a in range(3):
            if pbc[a]:
                b, c = cell[(a + 1) % 3], cell[(a + 2) % 3]
                spacing = volume / np.linalg.norm(np.cross(b, c))
                reps[a] = math.ceil(rcut / spacing)
    # periodic images within rcut of the wrapped cell
    rng = [np.arange(-r, r + 1) for r in reps]
    images = np.stack(np.meshgrid(*rng, indexing="ij"), -1).reshape(-1, 3)
    images = images[np.argsort(np.abs(images).sum(1), kind="stable")]  # image 0 first
    all_pos = [wrapped]
    all_orig = [np.arange(n)]
    all_img = [np.zeros((n, 3), np.int64)]
    if len(images) > 1:
        inv = np.linalg.inv(cell)
        frac_w = wrapped @ inv
        margin = np.zeros(3)
        volume = abs(np.linalg.det(cell))
        for a in range(3):
            if pbc[a]:
                b, c = cell[(a + 1) % 3], cell[(a + 2) % 3]
                margin[a] = rcut / (volume / np.linalg.norm(np.cross(b, c)))
        for t in images[1:]:
            f = frac_w + t
            keep = np.ones(n, bool)
            for a in range(3):
                if pbc[a]:
                    keep &= (f[:, a] >= -margin[a]) & (f[:, a] < 1 + margin[a])
            if keep.any():
                idx = np.nonzero(keep)[0]
                all_pos.append(wrapped[idx] + t @ cell)
                all_orig.append(idx)
                all_img.append(np.broadcast_to(t, (len(idx), 3)).copy())
    pos = np.ascontiguousarray(np.concatenate(all_pos))
    orig = np.concatenate(all_orig).astype(np.int64)
    img = np.ascontiguousarray(np.concatenate(all_img).astype(np.int64))
    lo = pos.min(0)
    extent = pos.max(0) - lo
    nbins = np.maximum(np.floor(extent / rcut).astype(np.int64), 1)
    binsize = np.where(extent > 0, extent / nbins, 1.0) * (1 + 1e-12) + 1e-300
    e_i = np.zeros(0, np.int64)
    e_t = np.zeros((0, 3), np.int64)
    count = _pairs_from_cells(pos, orig, img, n, rcut, lo, nbins, binsize, True, e_i, e_i, e_t)
    pi = np.empty(count, np.int64)
    pj = np.empty(count, np.int64)
    pt = np.empty((count, 3), np.int64)
    _pairs_from_cells(pos, orig, img, n, rcut, lo, nbins, binsize, False, pi, pj, pt)
    # translate the image of the wrapped coordinates back to the caller's positions
    shifts = pt - offsets[pj] + offsets[pi]
    return pi, pj, shifts


def min_distance(atoms, below: float) -> float:
    """Smallest interatomic distance (Å) of ASE ``atoms`` if some pair is closer than
    ``below`` (Å), else ``inf``."""
    pi, pj, shifts = half_pairs(atoms.positions, atoms.cell.array, atoms.pbc, below)
    if len(pi) == 0:
        return float("inf")
    r = atoms.positions[pj] + shifts @ atoms.cell.array - atoms.positions[pi]
    return float(np.sqrt((r**2).sum(1)).min())
