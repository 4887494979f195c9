"""What both engines record of a training: each epoch's ``history.csv`` row, the
divergence check, and what a model's training gave (:class:`Outcome`).

Errors in eV/atom (``loss.energy: per_atom``) or eV (``total``), eV/Å, ε in eV; columns
:data:`aedistill.tables.HISTORY_COLUMNS`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from aedistill.errors import UserInputError

NAN = float("nan")


def history_row(
    epoch: int,
    lr: float,
    weights: Mapping[str, float],
    train: Mapping[str, float],
    valid: Mapping[str, float],
    wall_s: float,
    valid_loss: float,
) -> dict[str, float]:
    """The ``history.csv`` row of ``epoch`` (1-based): the learning rate it trained with, its
    loss weights (``w_E``, ``w_F``, ``w_A``), the train/valid errors (hippynn's metric names:
    ``E-RMSE``, ``F-RMSE``, ``F-MAE``, and ``A-RMSE`` for roles with ε, else NaN), the job's
    wall time (s, rounded to ms) and the early-stopping metric ``valid_loss``."""
    return {
        "epoch": epoch,
        "lr": lr,
        "w_E": weights["w_E"],
        "w_F": weights["w_F"],
        "w_A": weights["w_A"],
        "train_e_rmse": train["E-RMSE"],
        "train_f_rmse": train["F-RMSE"],
        "train_f_mae": train["F-MAE"],
        "valid_e_rmse": valid["E-RMSE"],
        "valid_f_rmse": valid["F-RMSE"],
        "valid_f_mae": valid["F-MAE"],
        "train_eps_rmse": train.get("A-RMSE", NAN),
        "valid_eps_rmse": valid.get("A-RMSE", NAN),
        "wall_s": round(wall_s, 3),
        "valid_loss": valid_loss,
    }


def check_finite(
    epoch: int, split_name: str, terms: Mapping[str, float], who: str | None = None
) -> None:
    """Raise a :class:`UserInputError` naming ``epoch`` and the loss ``terms`` (of the
    ``split_name`` split) that are NaN or inf; ``who`` names the model in a stack."""
    bad = [f"'{k}'={v}" for k, v in terms.items() if not math.isfinite(v)]
    if bad:
        prefix = f"{who}: " if who else ""
        raise UserInputError(
            f"{prefix}training diverged at epoch {epoch}: {split_name} loss terms "
            f"{', '.join(bad)} (check the data for NaN/inf, or lower training.learning_rate)"
        )


@dataclass
class Outcome:
    """What one model's training gave, for its files (an engine's ``outcomes()``).

    ``spec``: its :class:`aedistill.models.ModelSpec`; ``weights``: hippynn state dict of the
    best validation epoch (the current weights when no epoch was better); ``history``: the
    rows so far; ``best_epoch`` (1-based, 0 = none); ``epochs`` trained; ``stop_reason``:
    ``max_epochs`` or ``termination_patience``, None while the model was still training
    (the job stopped it); ``labels``: the ε targets (n_conf, n_max) eV its test ε-errors are
    measured against (None: no ε errors).
    """

    spec: Any
    weights: dict[str, Any]
    history: pd.DataFrame
    best_epoch: int
    epochs: int
    stop_reason: str | None
    labels: np.ndarray | None
