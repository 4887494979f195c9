"""Atomic-energy labels ε from the teacher ensemble (paper Section 2, eq 4).

Every teacher member predicts per-atom energies ε for every configuration of the canonical
dataset (hippynn ``Predictor`` through :meth:`aedistill.models.LoadedModel.predict`).

``labels/atom_energies.h5`` (aligned with ``dataset.h5``: same configurations, same padding,
padding = 0):

===========  ==========================  ============================================
dataset      shape                       meaning (eV)
===========  ==========================  ============================================
``mean``     (n_conf, n_max)             ensemble-mean ε
``std``      (n_conf, n_max)             ensemble standard deviation of ε (ddof 0)
``members``  (n_members, n_conf, n_max)  ε of each member
``energy``   (n_members, n_conf)         each member's total energy E_pred
===========  ==========================  ============================================

Attributes: ``n_conf``, ``n_max``, ``members`` (model paths).

``labels_check.csv`` records, per configuration and member, Σε against E_pred; a difference
above 1e-4 eV × n_atoms is an error. ``teacher_vs_true.json`` compares the mean ε with the
dataset's exact ε (RMSE, Pearson r) when the dataset has them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from aedistill.errors import UserInputError
from aedistill.io import atomic_path, write_csv, write_json
from aedistill.models import load_model

log = logging.getLogger(__name__)

SUM_TOLERANCE_PER_ATOM = 1e-4  # eV


def predict_members(
    model_paths: Sequence[str | os.PathLike[str]], dataset, batch_size: int = 16
) -> dict[str, np.ndarray]:
    """Every teacher member's energy (n_members, n_conf) eV, forces (n_members, n_conf,
    n_max, 3) eV/Å and ε ``atom_energies`` (n_members, n_conf, n_max) eV; padding zero.
    The labels and the augmentation set (:mod:`aedistill.augment`) both come from here."""
    pred = []
    for path in model_paths:
        pred.append(load_model(path).predict(dataset, batch_size=batch_size))
        log.info("predictions of %s: %d configurations", path, dataset.n_conf)
    return {k: np.stack([p[k] for p in pred]) for k in ("energy", "forces", "atom_energies")}


def labels_check(dataset, members: np.ndarray, energy: np.ndarray) -> pd.DataFrame:
    """Per configuration and member: Σε, E_pred, |diff| and the tolerance (eV)."""
    n_atoms = dataset.n_atoms
    rows = []
    for m in range(members.shape[0]):
        s = members[m].sum(axis=1)
        for i in range(dataset.n_conf):
            rows.append(
                {
                    "member": m,
                    "config": i,
                    "n_atoms": int(n_atoms[i]),
                    "sum_eps": float(s[i]),
                    "energy_pred": float(energy[m, i]),
                    "abs_diff": float(abs(s[i] - energy[m, i])),
                    "tolerance": SUM_TOLERANCE_PER_ATOM * float(n_atoms[i]),
                }
            )
    return pd.DataFrame(rows)


def teacher_vs_true(dataset, mean: np.ndarray) -> dict:
    """RMSE (eV) and Pearson r of teacher-mean ε vs the dataset's exact ε (real atoms)."""
    if dataset.atom_energies is None:
        return {
            "source": dataset.source,
            "note": "dataset has no exact per-atom energies; no comparison possible",
            "rmse_eV": None,
            "pearson_r": None,
        }
    mask = dataset.species > 0
    t, e = mean[mask], dataset.atom_energies[mask]
    return {
        "source": dataset.source,
        "n_atoms": int(mask.sum()),
        "rmse_eV": float(np.sqrt(np.mean((t - e) ** 2))),
        "mean_offset_eV": float(np.mean(t - e)),
        "pearson_r": float(np.corrcoef(t, e)[0, 1]),
    }


def raise_on_bad_sums(check: pd.DataFrame, where: str) -> None:
    """Stop (``RuntimeError`` naming ``where``, the member and the configuration) at the first
    row of :func:`labels_check` whose |Σε − E_pred| exceeds its tolerance."""
    bad = check[check.abs_diff > check.tolerance]
    if len(bad):
        r = bad.iloc[0]
        raise RuntimeError(
            f"{where}: Σε differs from E_pred by {r.abs_diff:.3g} eV (> {r.tolerance:.3g}) "
            f"for member {r.member}, configuration {r.config}"
        )


def make_labels(
    model_paths: Sequence[str | os.PathLike[str]],
    dataset,
    labels_path: str | os.PathLike[str],
    check_path: str | os.PathLike[str],
    vs_true_path: str | os.PathLike[str],
    batch_size: int = 16,
) -> dict[str, np.ndarray]:
    """Predict, check Σε = E_pred, write the three label files. Returns the arrays."""
    pred = predict_members(model_paths, dataset, batch_size=batch_size)
    members, energy = pred["atom_energies"], pred["energy"]
    check = labels_check(dataset, members, energy)
    write_csv(check_path, check)
    raise_on_bad_sums(check, str(check_path))
    mean = members.mean(axis=0)
    std = members.std(axis=0)
    mask = dataset.species > 0
    mean[~mask] = 0.0
    std[~mask] = 0.0
    save_labels(labels_path, mean, std, members, energy, [str(p) for p in model_paths])
    vs = teacher_vs_true(dataset, mean)
    write_json(vs_true_path, vs)
    log.info("labels: max |Σε − E| = %.2e eV; teacher vs true: %s", check.abs_diff.max(), vs)
    return {"mean": mean, "std": std, "members": members, "energy": energy}


def save_labels(path, mean, std, members, energy, model_paths: Sequence[str]) -> None:
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["n_conf"] = mean.shape[0]
            f.attrs["n_max"] = mean.shape[1]
            f.attrs["members"] = list(model_paths)
            f.attrs["units"] = "eV"
            f.create_dataset("mean", data=mean)
            f.create_dataset("std", data=std)
            f.create_dataset("members", data=members)
            f.create_dataset("energy", data=energy)


def load_labels(path: str | os.PathLike[str], dataset, target: str | int = "mean") -> np.ndarray:
    """ε (n_conf, n_max) eV that students learn: the mean, or member ``target``.

    Raises :class:`UserInputError` when the labels do not match ``dataset``.
    """
    p = Path(path)
    if not p.exists():
        raise UserInputError(f"{p}: labels file not found")
    try:
        with h5py.File(p, "r") as f:
            if target == "mean":
                eps = f["mean"][()]
            else:
                members = f["members"]
                if not 0 <= int(target) < members.shape[0]:
                    raise UserInputError(
                        f"{p}: labels.target {target} but only {members.shape[0]} members"
                    )
                eps = members[int(target)]
    except (OSError, KeyError) as exc:
        raise UserInputError(f"{p}: not a readable labels file ({exc})") from exc
    if eps.shape != dataset.species.shape:
        raise UserInputError(
            f"{p}: labels have shape {eps.shape} (n_conf, n_max) but the dataset has "
            f"{dataset.species.shape}; rebuild the labels for this dataset"
        )
    eps = np.array(eps, dtype=np.float64)
    eps[dataset.species == 0] = 0.0
    return eps
