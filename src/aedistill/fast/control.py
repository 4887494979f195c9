"""Learning-rate and stopping control of one stack member (hippynn's, per model)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from aedistill.fast.members import StackSettings


class Control:
    """hippynn's PatienceController (with aedistill's ``min_epochs``: no plateau step and no
    patience before it, as :func:`aedistill.hippynn_train.controller_class`) for one model, with
    torch's ReduceLROnPlateau on a one-parameter stand-in optimiser (its lr is the model's).
    Epochs are 0-based here, as in hippynn."""

    def __init__(self, lr: float, s: StackSettings, max_epochs: int, min_epochs: int) -> None:
        self._opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self._opt, mode="min", factor=s.lr_factor, patience=s.lr_patience
        )
        self.patience = s.termination_patience
        self._max_epochs = int(max_epochs)
        self.min_epochs = min(int(min_epochs), int(max_epochs))
        self.boredom = 0
        self.current_epoch = 0
        self.last_best = 0

    @property
    def lr(self) -> float:
        return float(self._opt.param_groups[0]["lr"])

    @property
    def max_epochs(self) -> int:
        # the patience counts from epoch min_epochs (1-based) at the earliest
        first = max(self.last_best, self.min_epochs - 1)
        patience_limit = min(first + self.patience + 1, self._max_epochs)
        return max(min(self.min_epochs, self._max_epochs), patience_limit)

    @property
    def stop_reason(self) -> str:
        """Why training stopped: the epoch limit (``max_epochs``) or the patience."""
        return "max_epochs" if self.current_epoch >= self._max_epochs else "termination_patience"

    def push_epoch(self, epoch: int, better: bool, metric: float) -> bool:
        if better:
            self.boredom = 0
            self.last_best = epoch
        else:
            self.boredom += 1
        self.current_epoch += 1
        if self.current_epoch >= self.min_epochs:  # no plateau steps inside a loss schedule
            self.scheduler.step(metric)
        return self.current_epoch < self.max_epochs

    def state_dict(self) -> dict[str, Any]:
        keys = ("boredom", "current_epoch", "last_best", "_max_epochs", "min_epochs")
        return {
            **{k: getattr(self, k) for k in keys},
            "scheduler": self.scheduler.state_dict(),
            "lr": self.lr,
        }

    def load_state_dict(self, st: Mapping[str, Any]) -> None:
        for k in ("boredom", "current_epoch", "last_best", "min_epochs"):
            setattr(self, k, int(st[k]))
        self.scheduler.load_state_dict(st["scheduler"])
        self._opt.param_groups[0]["lr"] = float(st["lr"])
