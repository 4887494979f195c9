"""One train/valid/test split shared by every model."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from aedistill.errors import UserInputError
from aedistill.io import read_json, write_json


@dataclass
class Split:
    """Disjoint, sorted index arrays into the canonical dataset.

    ``init_train``: the training configurations the initial weights are fitted to (the E0
    initialisation); None = ``train``. The ``augmented`` role trains on more configurations
    than its student and control but starts from their weights (:mod:`aedistill.augment`).
    """

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    init_train: np.ndarray | None = None

    def as_dict(self) -> dict[str, np.ndarray]:
        return {"train": self.train, "valid": self.valid, "test": self.test}

    def for_initialisation(self) -> Split:
        """The split whose training configurations fix the initial weights."""
        if self.init_train is None:
            return self
        return Split(self.init_train, self.valid, self.test)


def make_split(n_conf: int, train: float, valid: float, test: float, seed: int) -> Split:
    """Random split of ``n_conf`` configurations by fractions (must sum to 1), from ``seed``.

    Depends only on ``(n_conf, fractions, seed)``, so reruns give the same split.
    Each part gets at least one configuration.
    """
    fr = np.array([train, valid, test], dtype=float)
    if np.any(fr <= 0) or abs(fr.sum() - 1.0) > 1e-6:
        raise UserInputError(
            f"dataset.split: fractions must be positive and sum to 1, got {fr.tolist()}"
        )
    if n_conf < 3:
        raise UserInputError(f"dataset.split: need at least 3 configurations, got {n_conf}")
    perm = np.random.default_rng(seed).permutation(n_conf)
    n_valid = max(1, int(round(valid * n_conf)))
    n_test = max(1, int(round(test * n_conf)))
    n_train = n_conf - n_valid - n_test
    if n_train < 1:
        raise UserInputError(f"dataset.split: no training configurations left of {n_conf}")
    return Split(
        train=np.sort(perm[:n_train]),
        valid=np.sort(perm[n_train : n_train + n_valid]),
        test=np.sort(perm[n_train + n_valid :]),
    )


def save_split(path: str | os.PathLike[str], split: Split, n_conf: int, seed: int) -> None:
    write_json(
        path,
        {"n_conf": n_conf, "seed": seed, **{k: v.tolist() for k, v in split.as_dict().items()}},
    )


def load_split(path: str | os.PathLike[str], n_conf: int | None = None) -> Split:
    """Read a split; if ``n_conf`` is given, check it was made for a dataset of that size."""
    d = read_json(path)
    if n_conf is not None and d["n_conf"] != n_conf:
        raise UserInputError(
            f"{path}: split made for {d['n_conf']} configurations, dataset has {n_conf}"
        )
    return Split(*(np.asarray(d[k], dtype=np.int64) for k in ("train", "valid", "test")))
