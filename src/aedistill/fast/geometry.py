"""Pair geometry of the fast engine: fixed during training, computed once per dataset.

Positions never change during training, so each configuration's directed pairs within the
hard cutoff, their unit vectors r̂, 1/d and the cosine cutoff with its derivative are
computed once (:class:`PairGeometry`, from the neighbour list of :mod:`aedistill.neighbours`)
and stored per atom in padded neighbour slots ``(atom, slot)``; a :class:`Batch` is a row
gather of these arrays. Cells are treated as periodic in all directions, as hippynn's
training graph (``periodic=True``) does. Units: Å.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from aedistill.neighbours import half_pairs


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
class Batch:
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
