"""One train/valid/test split shared by every model."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from aedistill.errors import UserInputError
from aedistill.io import read_json, write_json


@dataclass
class Split:
    """Disjoint, sorted index arrays into the canonical dataset.

    ``train`` is what every model trains on: with ``train_subset`` < 1 a nested subset of the
    ``n_train_full`` training configurations the split's fractions give (valid and test are
    the same for every subset).
    ``init_train``: the training configurations the initial weights are fitted to (the E0
    initialisation); None = ``train``. The ``augmented`` role trains on more configurations
    than its student and control but starts from their weights (:mod:`aedistill.augment`).
    """

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    train_subset: float = 1.0
    n_train_full: int | None = None
    init_train: np.ndarray | None = None

    def as_dict(self) -> dict[str, np.ndarray]:
        return {"train": self.train, "valid": self.valid, "test": self.test}

    def for_initialisation(self) -> Split:
        """The split whose training configurations fix the initial weights."""
        if self.init_train is None:
            return self
        return Split(self.init_train, self.valid, self.test)


def make_split(
    n_conf: int,
    train: float,
    valid: float,
    test: float,
    seed: int,
    train_subset: float = 1.0,
    train_only: int = 0,
) -> Split:
    """Random split of ``n_conf`` configurations by fractions (must sum to 1), from ``seed``.

    Depends only on ``(n_conf, fractions, seed, train_only)``, so reruns give the same split.
    Each part gets at least one configuration.

    ``train_only``: the last ``train_only`` configurations are training configurations only,
    in every subset (the compressed cells of ``dataset.generate.n_compressed``: they teach
    the short-range wall; in validation one such cell decides early stopping, in test the
    errors); the first ``n_conf − train_only`` are split exactly as without them.

    ``train_subset`` (in (0, 1]) keeps the first ``ceil(train_subset × n_train)`` training
    configurations in the order of the seeded permutation that made the split: subsets of one
    seed are nested (the 25 % set lies in the 50 % set, which lies in the full set) and valid
    and test do not depend on it.
    """
    if not 0 < train_subset <= 1:
        raise UserInputError(f"dataset.split.train_subset: must be in (0, 1], got {train_subset}")
    fr = np.array([train, valid, test], dtype=float)
    if np.any(fr <= 0) or abs(fr.sum() - 1.0) > 1e-6:
        raise UserInputError(
            f"dataset.split: fractions must be positive and sum to 1, got {fr.tolist()}"
        )
    if not 0 <= train_only <= n_conf:
        raise UserInputError(
            f"dataset.generate.n_compressed: {train_only} training-only configurations of {n_conf}"
        )
    extra = np.arange(n_conf - train_only, n_conf)
    n_conf -= train_only
    if n_conf < 3:
        raise UserInputError(f"dataset.split: need at least 3 configurations, got {n_conf}")
    perm = np.random.default_rng(seed).permutation(n_conf)
    n_valid = max(1, int(round(valid * n_conf)))
    n_test = max(1, int(round(test * n_conf)))
    n_train = n_conf - n_valid - n_test
    if n_train < 1:
        raise UserInputError(f"dataset.split: no training configurations left of {n_conf}")
    # rounded first: 0.3 × 10 is 3.0000000000000004 in floating point, and keeps 3
    n_subset = math.ceil(round(train_subset * n_train, 9))
    return Split(
        train=np.sort(np.concatenate([perm[:n_subset], extra])),
        valid=np.sort(perm[n_train : n_train + n_valid]),
        test=np.sort(perm[n_train + n_valid :]),
        train_subset=float(train_subset),
        n_train_full=int(n_train + train_only),
    )


def save_split(path: str | os.PathLike[str], split: Split, n_conf: int, seed: int) -> None:
    """Write ``split.json``: n_conf, seed, the index lists, train_subset and n_train_full."""
    write_json(
        path,
        {
            "n_conf": n_conf,
            "seed": seed,
            "train_subset": split.train_subset,
            "n_train_full": len(split.train) if split.n_train_full is None else split.n_train_full,
            **{k: v.tolist() for k, v in split.as_dict().items()},
        },
    )


def load_split(path: str | os.PathLike[str], n_conf: int | None = None) -> Split:
    """Read a split; if ``n_conf`` is given, check it was made for a dataset of that size."""
    d = read_json(path)
    if n_conf is not None and d["n_conf"] != n_conf:
        raise UserInputError(
            f"{path}: split made for {d['n_conf']} configurations, dataset has {n_conf}"
        )
    parts = (np.asarray(d[k], dtype=np.int64) for k in ("train", "valid", "test"))
    # splits written before train_subset existed hold the full training set
    return Split(
        *parts,
        train_subset=float(d.get("train_subset", 1.0)),
        n_train_full=int(d.get("n_train_full", len(d["train"]))),
    )
