"""Convergence of one training run, from its per-epoch history (a recorded property).

Definition (used for ``metrics.json`` and ``tables/models.csv``). A run is **converged** when

1. it was stopped by the termination patience (``stop_reason == "termination_patience"``:
   ``termination_patience`` epochs without a new best validation loss), **or**
2. its learning rate was decayed at least ``min_decays`` (2) times by the plateau scheduler
   **and** the best validation loss improved by less than ``max_rel_improvement`` (1 %)
   over the last ``tail_fraction`` (20 %) of its epochs: with ``best(e)`` the best
   validation loss up to epoch e and ``t`` the first epoch of that tail,
   ``(best(t − 1) − best(last)) / best(t − 1) < 0.01``.

Anything else (stopped at ``max_epochs`` while still improving, or by the wall-time limit
before either holds) is not converged. The history is the ``history.csv`` table of
:mod:`aedistill.training` (one row per epoch, 1-based ``epoch``, the learning rate ``lr``
used during the epoch, and a validation loss column).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

STOP_BY_PATIENCE = "termination_patience"


@dataclass(frozen=True)
class Convergence:
    """``n_lr_decays``: epochs whose learning rate is below the previous epoch's;
    ``best_epoch``: 1-based epoch of the lowest validation loss (first one on ties, 0 for
    an empty history); ``stop_reason`` as given; ``converged``: see the module docstring;
    ``tail_rel_improvement``: relative improvement of the best validation loss over the
    last ``tail_fraction`` of epochs (NaN when undefined)."""

    n_lr_decays: int
    best_epoch: int
    stop_reason: str
    converged: bool
    tail_rel_improvement: float

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def assess_convergence(
    history: pd.DataFrame,
    stop_reason: str,
    valid_column: str = "valid_loss",
    min_decays: int = 2,
    max_rel_improvement: float = 0.01,
    tail_fraction: float = 0.2,
) -> Convergence:
    """Convergence record of one run (see the module docstring for the definition).

    ``history``: one row per epoch with at least ``epoch``, ``lr`` and ``valid_column``
    (the validation loss that selects the best model; lower is better). Rows are sorted by
    epoch here. Raises ``ValueError`` for a missing column.
    """
    for col in ("epoch", "lr", valid_column):
        if col not in history.columns:
            raise ValueError(f"history has no column {col!r} (columns: {list(history.columns)})")
    h = history.sort_values("epoch")
    n = len(h)
    if n == 0:
        return Convergence(0, 0, str(stop_reason), False, math.nan)
    lr = h["lr"].to_numpy(dtype=float)
    n_decays = int(np.sum(lr[1:] < lr[:-1]))
    loss = h[valid_column].to_numpy(dtype=float)
    finite = np.where(np.isfinite(loss), loss, np.inf)
    best_epoch = int(h["epoch"].to_numpy()[int(np.argmin(finite))])
    running_best = np.minimum.accumulate(finite)
    tail = max(1, int(math.ceil(tail_fraction * n)))
    rel = math.nan
    if n > tail:
        before, last = running_best[n - tail - 1], running_best[-1]
        if math.isfinite(before) and before > 0:
            rel = float((before - last) / before)
    plateau = n_decays >= min_decays and math.isfinite(rel) and rel < max_rel_improvement
    converged = stop_reason == STOP_BY_PATIENCE or plateau
    return Convergence(n_decays, best_epoch, str(stop_reason), bool(converged), rel)
