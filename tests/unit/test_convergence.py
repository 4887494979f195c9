"""Convergence records from synthetic histories (definition in aedistill.convergence)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from aedistill.convergence import assess_convergence


def history(loss, lr) -> pd.DataFrame:
    n = len(loss)
    return pd.DataFrame({"epoch": np.arange(1, n + 1), "lr": lr, "valid_loss": loss})


def test_still_improving_at_max_epochs_is_not_converged():
    loss = 1.0 / np.arange(1, 26)  # falling every epoch, 25 epochs, constant LR
    c = assess_convergence(history(loss, [1e-3] * 25), "max_epochs")
    assert (c.n_lr_decays, c.best_epoch, c.converged) == (0, 25, False)
    # best(20) = 1/20 → best(25) = 1/25: 20 % improvement over the last 5 epochs
    assert c.tail_rel_improvement == pytest.approx(0.2)


def test_stopped_by_termination_patience_is_converged():
    loss = list(np.linspace(2, 1, 10)) + [1.1] * 6
    c = assess_convergence(history(loss, [1e-3] * 16), "termination_patience")
    assert c.converged and c.best_epoch == 10 and c.n_lr_decays == 0
    assert c.stop_reason == "termination_patience"


def test_plateau_after_two_decays_is_converged():
    n = 50
    loss = np.concatenate([np.linspace(2, 1, 30), 1 - 1e-4 * np.arange(1, 21)])
    lr = np.where(np.arange(n) < 25, 1e-3, np.where(np.arange(n) < 40, 5e-4, 2.5e-4))
    c = assess_convergence(history(loss, lr), "max_epochs")
    assert c.n_lr_decays == 2
    # best before the last 10 epochs: 1 − 1e-3 (epoch 40) → 1 − 2e-3: 0.1 % < 1 %
    assert c.tail_rel_improvement == pytest.approx(1e-3 / (1 - 1e-3))
    assert c.converged and c.best_epoch == 50


def test_one_decay_or_large_tail_improvement_is_not_converged():
    n = 50
    loss = np.concatenate([np.linspace(2, 1, 30), 1 - 1e-4 * np.arange(1, 21)])
    one_decay = np.where(np.arange(n) < 40, 1e-3, 5e-4)
    assert not assess_convergence(history(loss, one_decay), "max_epochs").converged
    two_decays = np.where(np.arange(n) < 25, 1e-3, np.where(np.arange(n) < 40, 5e-4, 2.5e-4))
    falling = np.concatenate([np.linspace(2, 1, 40), np.linspace(0.98, 0.9, 10)])
    c = assess_convergence(history(falling, two_decays), "max_wall_minutes")
    assert c.n_lr_decays == 2 and c.tail_rel_improvement > 0.05 and not c.converged


def test_best_epoch_ignores_nan_and_takes_first_tie_and_sorts_rows():
    h = history([3.0, 1.0, math.nan, 1.0, 2.0], [1e-3] * 5).iloc[::-1]
    c = assess_convergence(h, "max_epochs")
    assert c.best_epoch == 2


def test_empty_history_and_missing_column():
    c = assess_convergence(history([], []), "max_wall_minutes")
    assert (c.best_epoch, c.converged) == (0, False)
    with pytest.raises(ValueError, match="valid_loss"):
        assess_convergence(pd.DataFrame({"epoch": [1], "lr": [1e-3]}), "max_epochs")
