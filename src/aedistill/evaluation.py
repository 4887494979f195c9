"""Test metrics of a saved model (the ``metrics.json`` numbers), from its inference graph."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from aedistill.models import LoadedModel, load_model


def _rmse(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else float("nan")


def _mae(x: np.ndarray) -> float:
    return float(np.mean(np.abs(x))) if x.size else float("nan")


def evaluate_model(
    model_path: str | os.PathLike[str] | LoadedModel,
    dataset,
    idx: np.ndarray,
    labels: np.ndarray | None = None,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Test metrics of a saved model (a path, or the model :func:`load_model` loaded) on
    configurations ``idx`` (numpy, real atoms only).

    Returns n_weights, test_e_rmse/test_e_mae (eV/atom), test_f_rmse/test_f_mae (eV/Å,
    force components), test_eps_rmse (ε vs ``labels``, eV; NaN without labels),
    test_eps_true_rmse (ε vs the dataset's exact ε; NaN without them).
    """
    loaded = model_path if isinstance(model_path, LoadedModel) else load_model(model_path)
    sub = dataset.subset(np.asarray(idx))
    pred = loaded.predict(sub, batch_size=batch_size)
    mask = sub.species > 0
    n_atoms = sub.n_atoms
    de = (pred["energy"] - sub.energy) / n_atoms
    df = (pred["forces"] - sub.forces)[mask]
    out = {
        "n_weights": loaded.n_weights,
        "test_e_rmse": _rmse(de),
        "test_e_mae": _mae(de),
        "test_f_rmse": _rmse(df),
        "test_f_mae": _mae(df),
        "test_eps_rmse": float("nan"),
        "test_eps_true_rmse": float("nan"),
    }
    if labels is not None:
        out["test_eps_rmse"] = _rmse((pred["atom_energies"] - np.asarray(labels)[idx])[mask])
    if sub.atom_energies is not None:
        out["test_eps_true_rmse"] = _rmse((pred["atom_energies"] - sub.atom_energies)[mask])
    return out


def model_metrics(
    model_path: str | os.PathLike[str],
    dataset,
    split,
    labels: np.ndarray | None = None,
    batch_size: int = 64,
) -> dict[str, Any]:
    """The ``metrics.json`` errors of a saved model: :func:`evaluate_model` on the test split,
    plus ``train_f_rmse`` (eV/Å) and ``train_e_rmse`` (eV/atom) on the configurations it was
    trained on against their ground truth (the paper's Fig 3 reports training-set errors).
    For the ``augmented`` role these are its ground-truth training configurations
    (``split.for_initialisation()``), not the teacher-labelled ones."""
    loaded = load_model(model_path)
    out = evaluate_model(loaded, dataset, split.test, labels=labels, batch_size=batch_size)
    train = evaluate_model(loaded, dataset, split.for_initialisation().train, batch_size=batch_size)
    out["train_f_rmse"] = train["test_f_rmse"]
    out["train_e_rmse"] = train["test_e_rmse"]
    return out
