"""The fast engine's epoch loop for a job: a :class:`~aedistill.fast.trainer.StackTrainer`
of the job's models, as :func:`aedistill.training.train_job` drives it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from aedistill.arch import Arch
from aedistill.fast.members import StackSettings, member_for_role
from aedistill.fast.trainer import StackTrainer
from aedistill.history import Outcome


class FastLoop:
    """Every model of ``jobs`` (:class:`aedistill.training.JobModel`, one architecture) in
    one stack. Initial weights, loss weights, labels and epoch limits are those the hippynn
    engine would use for each (role, arch, seed); the batch order comes from ``order_seed``
    and is shared by the stack (a model trained alone with the same ``order_seed`` sees the
    same batches). Raises ``NotImplementedError`` for a model the engine does not support."""

    engine = "fast"
    device = "cpu"

    def __init__(
        self,
        config: Mapping[str, Any],
        arch: Arch,
        jobs: Sequence[Any],
        dataset,
        split,
        order_seed: int,
        max_epochs: int | None = None,
    ) -> None:
        self.specs, self.members = [], []
        for jm in jobs:
            spec, member = member_for_role(
                config, jm.role, arch, jm.seed, dataset, split, jm.labels, max_epochs
            )
            self.specs.append(spec)
            self.members.append(member)
        self.settings = StackSettings.from_config(config, len(split.train))
        self.trainer = StackTrainer(self.members, dataset, split, self.settings, order_seed)
        self.names = [m.name for m in self.members]
        self.max_epochs = [m.max_epochs for m in self.members]
        self._identity = {
            "members": self.names,
            "order_seed": int(order_seed),
            "max_epochs": self.max_epochs,
            "settings": repr(self.settings),
            "loss": repr(sorted(config["loss"].items())),
            "n_train": len(split.train),
        }

    @property
    def epochs_done(self) -> int:
        return self.trainer.epoch

    @property
    def wall_s(self) -> float:
        return self.trainer.wall_s

    def identity(self) -> dict[str, Any]:
        return self._identity

    def histories(self) -> list[pd.DataFrame]:
        return [r.history for r in self.trainer.results()]

    def run(self, after_epoch: Callable[[int, bool], None]) -> None:
        """Epochs until every model stops; ``after_epoch(epoch, finished)`` after each."""
        t = self.trainer
        while not t.finished:
            t.run_epoch()
            after_epoch(t.epoch, t.finished)

    def outcomes(self) -> list[Outcome]:
        """What :func:`aedistill.training.train_job` saves of each model ."""
        out = []
        for k, (spec, member, res) in enumerate(
            zip(self.specs, self.members, self.trainer.results(), strict=True)
        ):
            running = res.stop_reason == "running"
            weights = res.best_state
            if weights is None:
                weights = self.trainer.current_state(k)
            out.append(
                Outcome(
                    spec=spec,
                    weights=weights,
                    history=res.history,
                    best_epoch=res.best_epoch,
                    epochs=res.epochs,
                    stop_reason=None if running else res.stop_reason,
                    labels=member.labels,
                )
            )
        return out

    def state_dict(self) -> dict[str, Any]:
        return self.trainer.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.trainer.load_state_dict(state)
