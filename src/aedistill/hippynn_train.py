"""The hippynn engine: hippynn's training graph and epoch loop, for one model.

The job around it (inputs, checkpoint file, wall-time limit, history.csv, model.pt,
metrics.json) is :mod:`aedistill.training`'s, shared with the fast engine; this module
supplies the epoch loop (:class:`HippynnLoop`). The pieces it assembles live in their own
modules: what a role learns in :mod:`aedistill.roles`, the loss graph in
:mod:`aedistill.loss`, the hippynn database in :mod:`aedistill.database`, the initial weights
in :mod:`aedistill.initial`.

hippynn's ``training_loop`` runs the epochs (pairs precomputed, Adam, ReduceLROnPlateau
through a ``PatienceController``); our epoch callback records the history row, applies the
loss schedule, checks for NaN and hands over to the job. hippynn writes its own files into
the working directory, so the loop runs in a scratch directory that is removed afterwards.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from aedistill.arch import Arch
from aedistill.database import cache_pairs, make_database, role_labels
from aedistill.hippynn_log import hippynn_to_log
from aedistill.history import Outcome, check_finite, history_row
from aedistill.initial import initial_graph
from aedistill.loss import STOP_KEY, LossTerms, build_loss, get_loss_weights, set_loss_weights
from aedistill.models import ModelSpec, TrainingGraph, state_dict_of
from aedistill.roles import LossWeights, RolePlan, loss_energy, plan_role
from aedistill.tables import HISTORY_COLUMNS

# training keys that may change between an interrupted run and its resumption
_RESUMABLE_TRAINING_KEYS = (
    "max_epochs",
    "teacher_max_epochs",
    "max_wall_minutes",
    "checkpoint_every",
)


# --------------------------------------------------------------------------- set-up


@dataclass
class TrainingSetup:
    """Everything assembled before the first epoch (see :func:`prepare_training`)."""

    plan: RolePlan
    spec: ModelSpec
    graph: TrainingGraph
    loss: LossTerms
    training_modules: Any
    database: Any
    labels: np.ndarray | None
    initial_state: dict[str, Any] = field(repr=False, default_factory=dict)


def prepare_training(
    config: Mapping[str, Any],
    role: str,
    arch: Arch | str,
    seed: int,
    dataset,
    split,
    labels: np.ndarray | None = None,
    where: str = "training",
) -> TrainingSetup:
    """Build graph (seeded, E0-initialised: :func:`aedistill.initial.initial_graph`), loss,
    database and pair cache."""
    from hippynn.experiment.assembly import assemble_for_training

    plan = plan_role(config, role)
    eps = role_labels(plan, dataset, labels, where)
    spec, graph = initial_graph(config, arch, seed, dataset, split)
    loss = config["loss"]
    terms = build_loss(
        graph, plan, float(loss["w_L2"]), float(loss["w_R"]), energy=loss_energy(config)
    )
    with hippynn_to_log():
        modules, db_info = assemble_for_training(terms.train, terms.validation)
        db = make_database(dataset, split, eps, db_info["inputs"], db_info["targets"])
        initial = state_dict_of(graph)
        cache_pairs(modules.model, db, where)
        modules, db_info = assemble_for_training(terms.train, terms.validation)
        db.inputs, db.targets = db_info["inputs"], db_info["targets"]
    return TrainingSetup(plan, spec, graph, terms, modules, db, eps, initial)


def controller_class():
    """hippynn's PatienceController with aedistill's ``min_epochs`` (built on first use:
    hippynn is imported lazily)."""
    from hippynn.experiment.controllers import PatienceController

    class MinEpochPatienceController(PatienceController):
        """hippynn's PatienceController whose plateau and patience start at epoch
        ``min_epochs`` (1-based; 0 = from the start, hippynn's own behaviour).

        A Born-Again student's loss schedule ends at ``min_epochs``, the first epoch with its
        final weights; its validation loss is measured with those final weights all along, so
        while the schedule runs it cannot track what is being trained. The learning rate
        therefore is not reduced before ``min_epochs``, and the termination patience counts
        from there: training never stops before ``min_epochs`` − 1 + patience + 1 epochs.

        Its state (saved in checkpoints) is the progress of training only: the epoch limits
        are left out of it, so a resumed run keeps the limits of the config it was started
        with (a rerun may allow more epochs).
        """

        _state_vars = tuple(k for k in PatienceController._state_vars if k != "_max_epochs")

        def __init__(self, *args, min_epochs: int = 0, **kwargs):
            super().__init__(*args, **kwargs)
            self.min_epochs = int(min_epochs)

        def push_epoch(self, epoch, better_model, metric, _print=print):
            if self.current_epoch + 1 >= self.min_epochs:
                return super().push_epoch(epoch, better_model, metric, _print=_print)
            schedulers, self.scheduler_list = self.scheduler_list, []
            try:  # inside the loss schedule: no learning-rate step
                return super().push_epoch(epoch, better_model, metric, _print=_print)
            finally:
                self.scheduler_list = schedulers

        @property
        def max_epochs(self):
            first = max(self.last_best, self.min_epochs - 1)  # 0-based epoch
            return max(
                min(self.min_epochs, self._max_epochs),
                min(first + self.patience + 1, self._max_epochs),
            )

    return MinEpochPatienceController


def _setup_loop(
    setup: TrainingSetup, tr: Mapping[str, Any], n_epochs: int, n_train: int, device: str = "cpu"
):
    """(controller, metric tracker) of hippynn's loop on ``device``: Adam,
    ReduceLROnPlateau, patience."""
    from hippynn.experiment import SetupParams, setup_training

    modules = setup.training_modules
    params = [p for p in modules.model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=float(tr["learning_rate"]))
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=float(tr["lr_factor"]), patience=int(tr["lr_patience"])
    )
    controller = controller_class()(
        optimizer=optimizer,
        scheduler=scheduler,
        batch_size=int(tr["batch_size"]),
        eval_batch_size=max(int(tr["batch_size"]), 64),
        max_epochs=n_epochs,
        termination_patience=int(tr["termination_patience"]),
        stopping_key=STOP_KEY,
        fraction_train_eval=min(1.0, max(0.1, 50.0 / max(n_train, 1))),
        min_epochs=min(setup.plan.min_epochs, n_epochs),
        quiet=True,
    )
    with hippynn_to_log():
        _, controller, tracker = setup_training(
            modules, SetupParams(controller=controller, device=torch.device(device))
        )
    tracker.quiet = True
    return controller, tracker


# --------------------------------------------------------------------------- epoch loop


class HippynnLoop:
    """hippynn's epoch loop for one model, as :func:`aedistill.training.train_job` drives it.

    ``job``: the :class:`aedistill.training.JobModel` (role, seed, output directory, teacher
    labels); ``max_epochs`` overrides the role's limit. What the loop carries from epoch to
    epoch (history rows, best weights, wall time, learning rate, hippynn's controller and
    metric tracker) is its checkpoint state: :meth:`state_dict` and :meth:`load_state_dict`
    are each other's inverse.
    """

    engine = "hippynn"

    def __init__(
        self,
        config: Mapping[str, Any],
        arch: Arch,
        job,
        dataset,
        split,
        device: str,
        max_epochs: int | None = None,
    ) -> None:
        self.out = Path(job.out_dir)
        self.setup = setup = prepare_training(
            config, job.role, arch, job.seed, dataset, split, job.labels, where=str(self.out)
        )
        n_epochs = int(max_epochs or setup.plan.max_epochs)
        self.controller, self.tracker = _setup_loop(
            setup, config["training"], n_epochs, len(split.train), device
        )
        self._identity = _identity(config, setup, arch, job.seed, len(split.train))
        self.names = [f"{job.role}/{arch.slug}/seed{job.seed}"]
        self.max_epochs = [n_epochs]
        self.device = device
        self._job_labels = job.labels
        self.rows: list[dict[str, float]] = []
        self.best_state: dict[str, Any] | None = None
        self.best_epoch = 0
        self.wall_prev = 0.0
        self.t_start = time.perf_counter()
        set_loss_weights(setup.training_modules.loss, setup.plan.weights_at(1))
        self.lr = self.controller.optimizer.param_groups[0]["lr"]

    @property
    def epochs_done(self) -> int:
        return len(self.rows)

    @property
    def wall_s(self) -> float:
        return self.wall_prev + time.perf_counter() - self.t_start

    @property
    def finished(self) -> bool:
        return self.epochs_done >= self.controller.max_epochs

    def identity(self) -> dict[str, Any]:
        return self._identity

    def histories(self) -> list[pd.DataFrame]:
        return [pd.DataFrame(self.rows, columns=HISTORY_COLUMNS)]

    # -- the epochs
    def run(self, after_epoch: Callable[[int, bool], None]) -> None:
        """Train until the controller stops; ``after_epoch(epoch, finished)`` after each.

        hippynn's epoch loop runs in a scratch directory (removed afterwards); not hippynn's
        ``train_model`` wrapper: it would add a test pass over every split and plots that we
        do not use (the saved model is tested afterwards).
        """
        if self.finished:
            return
        from hippynn.experiment.routines import training_loop

        def callback(hepoch: int, better: bool) -> None:
            epoch = hepoch + 1  # hippynn counts from 0; our tables from 1
            self._record(epoch, better)
            self._prepare_epoch(epoch + 1)
            after_epoch(epoch, self.finished)

        scratch = Path(tempfile.mkdtemp(prefix=".hippynn-", dir=self.out))
        try:
            with contextlib.chdir(scratch), hippynn_to_log():
                training_loop(
                    self.setup.training_modules,
                    self.setup.database,
                    self.controller,
                    self.tracker,
                    callbacks=[callback],
                    batch_callbacks=None,
                    store_all_better=False,
                    store_best=False,
                    store_every=0,
                    quiet=True,
                )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _record(self, epoch: int, better: bool) -> None:
        """The history row of ``epoch`` (its terms checked for NaN); the best weights."""
        metrics = self.tracker.epoch_metric_values[-1]
        for split_name in ("train", "valid"):
            check_finite(epoch, split_name, metrics[split_name])
        w = get_loss_weights(self.setup.training_modules.loss)
        weights = {
            "w_E": w.get("w_E", np.nan),
            "w_F": w.get("w_F", np.nan),
            "w_A": w.get("w_A", 0.0),
        }
        tm, vm = metrics["train"], metrics["valid"]
        self.rows.append(history_row(epoch, self.lr, weights, tm, vm, self.wall_s, vm[STOP_KEY]))
        if better:
            self.best_state = state_dict_of(self.setup.graph)
            self.best_epoch = epoch

    def _prepare_epoch(self, epoch: int) -> None:
        """Loss weights of the schedule and the learning rate the scheduler set for ``epoch``."""
        set_loss_weights(self.setup.training_modules.loss, self.setup.plan.weights_at(epoch))
        self.lr = self.controller.optimizer.param_groups[0]["lr"]

    # -- the outcome
    def outcomes(self) -> list[Outcome]:
        """What :func:`aedistill.training.train_job` saves of the model ."""
        s = self.setup
        weights = self.best_state if self.best_state is not None else state_dict_of(s.graph)
        return [
            Outcome(
                spec=s.spec,
                weights=weights,
                history=self.histories()[0],
                best_epoch=self.best_epoch,
                epochs=self.epochs_done,
                stop_reason="max_epochs" if self.finished else None,
                labels=s.labels if s.plan.labels is not None else self._job_labels,
            )
        ]

    # -- checkpoint
    def state_dict(self) -> dict[str, Any]:
        mods = self.setup.training_modules
        return {
            "model": state_dict_of(mods.model),
            "controller": self.controller.state_dict(),
            "loss_weights": get_loss_weights(mods.loss),
            "tracker": _tracker_state(self.tracker),
            "rows": self.rows,
            "best_state": self.best_state,
            "best_epoch": self.best_epoch,
            "wall_s": self.wall_s,
            "lr": self.lr,
            "rng_torch": torch.get_rng_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        mods = self.setup.training_modules
        mods.model.load_state_dict(state["model"])
        self.controller.load_state_dict(state["controller"])
        set_loss_weights(mods.loss, LossWeights(**state["loss_weights"]))
        _load_tracker_state(self.tracker, state["tracker"])
        self.rows = list(state["rows"])
        self.best_state = state["best_state"]
        self.best_epoch = int(state["best_epoch"])
        self.wall_prev = float(state["wall_s"])
        self.t_start = time.perf_counter()
        self.lr = float(state["lr"])
        torch.set_rng_state(state["rng_torch"])


def _identity(
    config: Mapping[str, Any], setup: TrainingSetup, arch: Arch, seed: int, n_train: int
) -> dict[str, Any]:
    """What a checkpoint must match to be resumed (everything but the resumable limits)."""
    plan = setup.plan
    tr = config["training"]
    return {
        "role": plan.role,
        "arch": arch.slug,
        "seed": int(seed),
        "n_train": n_train,
        "spec": setup.spec.to_dict(),
        "plan": repr((plan.weights, plan.stop_weights, plan.labels, plan.schedule)),
        "training": repr(
            {k: v for k, v in sorted(tr.items()) if k not in _RESUMABLE_TRAINING_KEYS}
        ),
        "loss": repr(sorted(config["loss"].items())),
    }


def _tracker_state(tracker) -> dict[str, Any]:
    """The per-epoch metrics of hippynn's MetricTracker (for the checkpoint)."""
    return {
        "best_metric_values": tracker.best_metric_values,
        "epoch_metric_values": tracker.epoch_metric_values,
        "epoch_best_metric_values": tracker.epoch_best_metric_values,
        "epoch_times": list(tracker.epoch_times),
    }


def _load_tracker_state(tracker, state: Mapping[str, Any]) -> None:
    """Inverse of :func:`_tracker_state`. hippynn's own ``best_model`` (a state dict of its
    training GraphModule) starts empty: the best weights come from ``best_state``."""
    tracker.best_metric_values = state["best_metric_values"]
    tracker.epoch_metric_values = list(state["epoch_metric_values"])
    tracker.epoch_best_metric_values = list(state["epoch_best_metric_values"])
    tracker.epoch_times = list(state["epoch_times"])
    tracker.best_model = None
