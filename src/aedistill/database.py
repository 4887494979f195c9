"""hippynn's Database for the project's canonical datasets: arrays, split, batched loading.

Units as in :mod:`aedistill.data.canonical`: eV, Å; padded per-atom arrays (species 0 =
padding).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from aedistill.errors import UserInputError
from aedistill.models import (
    DB_ATOM_ENERGIES,
    DB_CELL,
    DB_ENERGY,
    DB_ENERGY_PER_ATOM,
    DB_FORCES,
    DB_POSITIONS,
    DB_SPECIES,
)
from aedistill.roles import RolePlan


def _database_class():
    from hippynn.databases import Database

    class BatchedDatabase(Database):
        """hippynn Database whose loaders gather whole batches at once.

        hippynn's default DataLoader indexes the sparse pair cache one configuration at a
        time; gathering a batch with one ``index_select`` gives the same batches, faster.
        Shuffling uses the global torch RNG (deterministic under a seed).
        """

        def make_generator(self, split_name, evaluation_mode, batch_size=None, subsample=False):
            if not self.splitting_completed:
                raise ValueError("Database has not yet been split.")
            arrays = [self.splits[split_name][k] for k in self.var_list]
            n = int(arrays[0].shape[0])
            if subsample:
                idx = torch.argsort(torch.rand(n))[: max(1, int(n * subsample))]
            else:
                idx = torch.arange(n)
            if evaluation_mode == "train":
                idx = idx[torch.randperm(len(idx))]
            elif evaluation_mode != "eval":
                raise ValueError(evaluation_mode)
            return _Batches(arrays, idx, batch_size or n)

    return BatchedDatabase


class _Batches:
    def __init__(self, arrays: list[torch.Tensor], idx: torch.Tensor, batch_size: int):
        self.arrays, self.idx, self.batch_size = arrays, idx, int(batch_size)

    def __len__(self) -> int:
        return math.ceil(len(self.idx) / self.batch_size)

    def __iter__(self):
        for start in range(0, len(self.idx), self.batch_size):
            b = self.idx[start : start + self.batch_size]
            yield [torch.index_select(a, 0, b) if a.is_sparse else a[b] for a in self.arrays]


def database_arrays(
    dataset, labels: np.ndarray | None, dtype: torch.dtype | None = None
) -> dict[str, np.ndarray]:
    """hippynn arrays (targets with trailing axes: E (n,1), E/N (n,1), ε (n,n_max,1))."""
    dtype = dtype or torch.get_default_dtype()
    fdt = np.float32 if dtype == torch.float32 else np.float64
    n_atoms = dataset.n_atoms.astype(np.float64)
    arrays = {
        DB_SPECIES: dataset.species.astype(np.int64),
        DB_POSITIONS: dataset.positions.astype(fdt),
        DB_CELL: dataset.cell.astype(fdt),
        DB_ENERGY: dataset.energy.reshape(-1, 1).astype(fdt),
        DB_ENERGY_PER_ATOM: (dataset.energy / n_atoms).reshape(-1, 1).astype(fdt),
        DB_FORCES: dataset.forces.astype(fdt),
    }
    if labels is not None:
        arrays[DB_ATOM_ENERGIES] = np.asarray(labels)[..., None].astype(fdt)
    return arrays


def make_database(dataset, split, labels: np.ndarray | None, inputs, targets):
    """hippynn Database with the project's split (``train``/``valid``/``test``)."""
    Database = _database_class()
    used = np.concatenate([split.train, split.valid, split.test])
    arrays = database_arrays(dataset, labels)
    arrays["indices"] = np.arange(dataset.n_conf)
    arrays = {k: v[used] for k, v in arrays.items()}
    db = Database(arrays, inputs=inputs, targets=targets, seed=0, quiet=True, pin_memory=False)
    for name, idx in (("train", split.train), ("valid", split.valid), ("test", split.test)):
        db.make_explicit_split(name, torch.as_tensor(np.asarray(idx, dtype=np.int64)))
    return db


def role_labels(
    plan: RolePlan, dataset, labels: np.ndarray | None, where: str
) -> np.ndarray | None:
    """The per-atom energy targets (n_conf, n_max) eV that ``plan`` learns, checked: None
    (no ε term), the dataset's exact ε (oracle) or the teacher ``labels``."""
    if plan.labels is None:
        return None
    if plan.labels == "exact":
        if dataset.atom_energies is None:
            raise UserInputError(
                f"{where}: role 'oracle' needs a dataset with exact per-atom energies "
                f"(source {dataset.source!r} has none); remove 'oracle' from grid.roles"
            )
        return dataset.atom_energies
    if labels is None:
        raise UserInputError(
            f"{where}: role {plan.role!r} needs teacher labels (labels/atom_energies.h5)"
        )
    if labels.shape != dataset.species.shape:
        raise UserInputError(
            f"{where}: labels have shape {labels.shape}, dataset species {dataset.species.shape}"
        )
    bad = ~np.isfinite(labels) & (dataset.species > 0)
    if bad.any():
        i = int(np.argwhere(bad)[0, 0])
        raise UserInputError(f"{where}: teacher labels of configuration {i} contain NaN or inf")
    return labels


def cache_pairs(model, db, where: str) -> None:
    """hippynn's sparse pair cache of every configuration of ``db`` (pairs precomputed once
    for training), with as many periodic images as the smallest cell needs."""
    from hippynn.experiment.assembly import precompute_pairs

    # hippynn sizes the sparse pair cache by n_images and relies on torch to refuse
    # image indices beyond it; torch skips that check by default, and cells needing
    # more images then silently get summed (wrong, even zero-length) pair offsets.
    # With the invariant check on, too few images raise and we retry with more.
    for n_images in (1, 2, 3, 4, 6, 8, 12):
        try:
            with torch.sparse.check_sparse_tensor_invariants(enable=True):
                precompute_pairs(model, db, n_images=n_images)
            return
        except ValueError as exc:
            if "n_images" not in str(exc):
                raise
    raise UserInputError(f"{where}: a cell is too small for the pair cutoff (> 12 images)")
