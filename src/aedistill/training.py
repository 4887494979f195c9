"""Train one HIPNN (teacher, student, control, ...) with hippynn's training machinery.

The pieces live in their own modules: what a role learns in :mod:`aedistill.roles`, the
loss graph in :mod:`aedistill.loss`, the hippynn database in :mod:`aedistill.database`,
``checkpoint.pt`` in :mod:`aedistill.checkpoint`, the test metrics in
:mod:`aedistill.evaluation`. This module puts them together and runs the epochs.

Same seed ⇒ identical initial weights for every role of an architecture: the torch RNG is
seeded immediately before the modules are created and the energy initialisation depends
only on the training data.

hippynn's ``training_loop`` runs the epochs (pairs precomputed, Adam, ReduceLROnPlateau
through a ``PatienceController``); our epoch callback (:class:`_TrainState`) writes
``history.csv`` and the checkpoint, applies the loss schedule, checks for NaN and stops on
the wall-time limit. hippynn writes its own files into the working directory, so each
training runs in a scratch directory that is removed afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from aedistill.arch import Arch
from aedistill.checkpoint import load_checkpoint, save_checkpoint
from aedistill.convergence import assess_convergence
from aedistill.database import cache_pairs, make_database, role_labels
from aedistill.errors import UserInputError
from aedistill.evaluation import model_metrics
from aedistill.io import write_csv, write_json
from aedistill.loss import STOP_KEY, LossTerms, build_loss, get_loss_weights, set_loss_weights
from aedistill.models import (
    DB_ENERGY,
    DB_SPECIES,
    ModelSpec,
    TrainingGraph,
    build_training_graph,
    save_model,
    state_dict_of,
)
from aedistill.roles import LossWeights, RolePlan, loss_energy, plan_role
from aedistill.tables import HISTORY_COLUMNS

log = logging.getLogger(__name__)

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
    """Build graph (seeded), loss, database, pair cache and the E0 initialisation."""
    from hippynn.experiment.assembly import assemble_for_training
    from hippynn.pretraining import hierarchical_energy_initialization

    _quiet_hippynn()
    plan = plan_role(config, role)
    eps = role_labels(plan, dataset, labels, where)
    spec = ModelSpec.from_config(config, Arch.parse(arch))
    graph = build_training_graph(spec, seed)
    loss = config["loss"]
    terms = build_loss(
        graph, plan, float(loss["w_L2"]), float(loss["w_R"]), energy=loss_energy(config)
    )
    with contextlib.redirect_stdout(_LogStream()):
        modules, db_info = assemble_for_training(terms.train, terms.validation)
        db = make_database(dataset, split, eps, db_info["inputs"], db_info["targets"])
        init_db = db  # E0 from the configurations that fix the initial weights
        if split.init_train is not None:  # the augmented role: its student's
            init_split = split.for_initialisation()
            init_db = make_database(dataset, init_split, None, [DB_SPECIES], [DB_ENERGY])
        hierarchical_energy_initialization(
            graph.henergy,
            init_db,
            energy_name=DB_ENERGY,
            species_name=DB_SPECIES,
            decay_factor=1e-2,
        )
        initial = state_dict_of(graph)
        cache_pairs(modules.model, db, where)
        modules, db_info = assemble_for_training(terms.train, terms.validation)
        db.inputs, db.targets = db_info["inputs"], db_info["targets"]
    return TrainingSetup(plan, spec, graph, terms, modules, db, eps, initial)


class _LogStream:
    """File-like object sending hippynn's prints to the debug log."""

    def write(self, s: str) -> int:
        if s.strip():
            log.debug(s.rstrip())
        return len(s)

    def flush(self) -> None:
        pass


def _quiet_hippynn() -> None:
    import hippynn

    with contextlib.suppress(Exception):
        hippynn.settings.PROGRESS = None


def _controller_class():
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


def resolve_device(requested: str, cuda_available: bool | None = None) -> str:
    """``training.device`` (auto | cpu | cuda) as the device to train on: auto = cuda when
    torch sees a CUDA device, else cpu; cuda without one is a :class:`UserInputError`."""
    if cuda_available is None:
        cuda_available = torch.cuda.is_available()
    if requested == "auto":
        return "cuda" if cuda_available else "cpu"
    if requested == "cuda" and not cuda_available:
        raise UserInputError(
            "training.device is 'cuda' but torch sees no CUDA device (use auto or cpu, or a "
            "CUDA build of torch: TORCH_SPEC)"
        )
    if requested not in ("cpu", "cuda"):
        raise UserInputError(f"training.device: {requested!r} is not one of auto, cpu, cuda")
    return requested


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
    controller = _controller_class()(
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
    with contextlib.redirect_stdout(_LogStream()):
        _, controller, tracker = setup_training(
            modules, SetupParams(controller=controller, device=torch.device(device))
        )
    tracker.quiet = True
    return controller, tracker


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


# --------------------------------------------------------------------------- training


@dataclass
class TrainResult:
    metrics: dict[str, Any]
    history: pd.DataFrame
    model_path: Path


def train_model(
    config: Mapping[str, Any],
    role: str,
    arch: Arch | str,
    seed: int,
    dataset,
    split,
    out_dir: str | os.PathLike[str],
    labels: np.ndarray | None = None,
    run: str | None = None,
    max_epochs: int | None = None,
    callbacks: Sequence[Callable[[int], None]] = (),
) -> TrainResult:
    """Train one model; write ``model.pt``, ``history.csv``, ``metrics.json`` in ``out_dir``.

    ``labels`` are teacher per-atom energies (n_conf, n_max) eV (students only).
    ``max_epochs`` overrides the role's limit (tests). ``callbacks`` are called with the
    1-based epoch after each epoch's checkpoint (tests use them to interrupt a run).
    A ``checkpoint.pt`` in ``out_dir`` from the same role/arch/seed is resumed.
    """
    out = _output_dir(out_dir)
    arch = Arch.parse(arch)
    if plan_role(config, role).augmented and split.init_train is None:
        raise UserInputError(
            f"{out}: role {role!r} trains on the training split plus the teacher's "
            "configurations: give it aedistill.augment.augmented_training_data(...)"
        )
    device = resolve_device(config["training"]["device"])
    if config["training"]["engine"] == "fast" and device != "cpu":
        log.info("training.engine fast runs on the CPU only: training on %s with hippynn", device)
    elif config["training"]["engine"] == "fast":
        fast = _train_fast(
            config, role, arch, seed, dataset, split, out, labels, run, max_epochs, callbacks
        )
        if fast is not None:
            return fast
    setup = prepare_training(config, role, arch, seed, dataset, split, labels, where=str(out))
    tr = config["training"]
    n_epochs = int(max_epochs or setup.plan.max_epochs)
    controller, tracker = _setup_loop(setup, tr, n_epochs, len(split.train), device)
    state = _TrainState(
        setup=setup,
        controller=controller,
        tracker=tracker,
        out=out,
        identity=_identity(config, setup, arch, seed, len(split.train)),
        checkpoint_every=int(tr["checkpoint_every"]),
        max_wall_s=None if tr["max_wall_minutes"] is None else 60.0 * float(tr["max_wall_minutes"]),
        user_callbacks=list(callbacks),
    )
    resumed = state.resume_or_start()
    _log_start(setup, arch, seed, split, n_epochs, state.epochs_done if resumed else None, device)
    if state.epochs_done < controller.max_epochs and not state.finished:
        _run_epochs(state, out)
    train_time_s = state.wall_s
    model_path = _save_best_model(state, out, role, seed)
    history = state.history_frame()
    write_csv(state.history_path, history)
    metrics = _test_metrics(config, setup, model_path, dataset, split, labels)
    metrics.update(_run_record(config, run, role, arch, seed, state, train_time_s, split, device))
    write_json(out / "metrics.json", metrics)
    state.checkpoint_path.unlink(missing_ok=True)
    log.info(
        "done after %d epochs (best %s): test F-RMSE %.4f eV/Å, E-RMSE %.2f meV/atom",
        state.epochs_done,
        state.best_epoch,
        metrics["test_f_rmse"],
        1000 * metrics["test_e_rmse"],
    )
    return TrainResult(metrics, history, model_path)


def _train_fast(
    config, role, arch: Arch, seed, dataset, split, out: Path, labels, run, max_epochs, callbacks
) -> TrainResult | None:
    """``train_model`` through the stacked engine (:mod:`aedistill.fast`) as a stack of
    one; None (and a log line) where the engine does not support the model."""
    from aedistill.fastjob import JobModel, train_stack_job

    try:
        (result,) = train_stack_job(
            config,
            arch,
            [JobModel(role, int(seed), out, labels)],
            dataset,
            split,
            order_seed=int(config["training"]["order_seed"]),
            run=run,
            max_epochs=max_epochs,
            checkpoint=out / "checkpoint.pt",
            callbacks=callbacks,
        )
    except NotImplementedError as exc:
        log.info("training.engine fast does not support this model (%s): using hippynn", exc)
        return None
    return result


def _output_dir(out_dir: str | os.PathLike[str]) -> Path:
    """``out_dir`` created, absolute, without the scratch of a killed run.

    Absolute: the epoch loop runs inside a scratch directory (hippynn writes into the cwd),
    and history.csv / checkpoint.pt must land in out_dir, not in that scratch.
    """
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(".hippynn-*"):
        shutil.rmtree(stale, ignore_errors=True)
    return out


def _log_start(
    setup: TrainingSetup, arch: Arch, seed, split, n_epochs, resumed_after, device: str
) -> None:
    log.info(
        "%s %s seed %d on %s (hippynn): %d weights, %d train / %d valid / %d test "
        "configurations, up to %d epochs%s",
        setup.plan.role,
        arch.slug,
        seed,
        device,
        sum(p.numel() for p in setup.graph.modules.parameters()),
        len(split.train),
        len(split.valid),
        len(split.test),
        n_epochs,
        f" (resumed after epoch {resumed_after})" if resumed_after is not None else "",
    )


def _run_epochs(state: _TrainState, out: Path) -> None:
    """hippynn's epoch loop in a scratch directory (removed afterwards).

    Not hippynn's ``train_model`` wrapper: it would add a test pass over every split and
    plots that we do not use (the saved model is tested afterwards).
    """
    from hippynn.experiment.routines import training_loop

    scratch = Path(tempfile.mkdtemp(prefix=".hippynn-", dir=out))
    try:
        with contextlib.chdir(scratch), contextlib.redirect_stdout(_LogStream()):
            try:
                training_loop(
                    state.setup.training_modules,
                    state.setup.database,
                    state.controller,
                    state.tracker,
                    callbacks=[state.epoch_callback],
                    batch_callbacks=None,
                    store_all_better=False,
                    store_best=False,
                    store_every=0,
                    quiet=True,
                )
            except KeyboardInterrupt:
                if state.stop_reason != "max_wall_minutes":
                    raise  # Ctrl-C / SIGINT: keep the checkpoint, resume on rerun
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _save_best_model(state: _TrainState, out: Path, role: str, seed: int) -> Path:
    """``model.pt`` with the best-on-validation weights."""
    setup = state.setup
    if state.best_state is not None:
        setup.graph.modules.load_state_dict(state.best_state)
    setup.graph.modules.to("cpu")  # model files hold CPU tensors, whatever trained them
    model_path = out / "model.pt"
    save_model(model_path, setup.spec, setup.graph, extra={"role": role, "seed": int(seed)})
    return model_path


def _test_metrics(config, setup, model_path, dataset, split, labels) -> dict[str, Any]:
    """Test-split metrics of the saved model (ε against the labels the role learned)."""
    return model_metrics(
        model_path,
        dataset,
        split,
        labels=setup.labels if setup.plan.labels is not None else labels,
        batch_size=max(int(config["training"]["batch_size"]), 64),
    )


def _run_record(
    config,
    run,
    role,
    arch: Arch,
    seed,
    state: _TrainState,
    train_time_s: float,
    split,
    device: str,
) -> dict[str, Any]:
    """The ``metrics.json`` fields that describe the run rather than the model's errors,
    with the convergence record (:mod:`aedistill.convergence`)."""
    if state.stop_reason:
        stop = state.stop_reason
    elif state.epochs_done >= state.controller.max_epochs:
        stop = "max_epochs"
    else:
        stop = "termination_patience"
    conv = assess_convergence(state.history_frame(), stop)
    return {
        "run": run or str(config.get("run_name", "")),
        "role": role,
        "arch": arch.slug,
        **arch.to_dict(),
        "seed": int(seed),
        "n_train": len(split.train),
        "n_test": len(split.test),
        "epochs": int(state.epochs_done),
        "best_epoch": int(state.best_epoch) if state.best_epoch else 0,
        "train_time_s": round(train_time_s, 3),
        "stop_reason": stop,
        "n_lr_decays": conv.n_lr_decays,
        "converged": conv.converged,
        "engine": "hippynn",
        "device": device,
    }


# --------------------------------------------------------------------------- epoch state


@dataclass
class _TrainState:
    """What the epoch loop carries from epoch to epoch, and what a checkpoint saves."""

    setup: TrainingSetup
    controller: Any
    tracker: Any
    out: Path
    identity: dict[str, Any]
    checkpoint_every: int
    max_wall_s: float | None
    user_callbacks: list
    rows: list[dict[str, float]] = field(default_factory=list)
    best_state: dict[str, Any] | None = None
    best_epoch: int = 0
    wall_prev: float = 0.0
    t_start: float = field(default_factory=time.perf_counter)
    lr: float = float("nan")
    stop_reason: str | None = None
    finished: bool = False

    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.pt"

    @property
    def history_path(self) -> Path:
        return self.out / "history.csv"

    @property
    def epochs_done(self) -> int:
        return len(self.rows)

    @property
    def wall_s(self) -> float:
        return self.wall_prev + time.perf_counter() - self.t_start

    def history_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=HISTORY_COLUMNS)

    # -- start
    def resume_or_start(self) -> bool:
        """Continue from a matching checkpoint (True), or set the first epoch's weights."""
        saved = load_checkpoint(self.checkpoint_path, self.identity)
        if saved is not None:
            self.load_state_dict(saved)
            return True
        set_loss_weights(self.setup.training_modules.loss, self.setup.plan.weights_at(1))
        self.lr = self.controller.optimizer.param_groups[0]["lr"]
        return False

    # -- after every epoch
    def epoch_callback(self, hepoch: int, better: bool) -> None:
        epoch = hepoch + 1  # hippynn counts from 0; our tables from 1
        metrics = self._finite_metrics(epoch)
        self._record(epoch, metrics, better)
        self._prepare_epoch(epoch + 1)
        if epoch % self.checkpoint_every == 0:
            self.save()  # first: history.csv never shows an epoch that a resume would redo
        write_csv(self.history_path, self.history_frame())
        for cb in self.user_callbacks:
            cb(epoch)
        self._stop_on_wall_time(epoch)

    def _finite_metrics(self, epoch: int) -> dict[str, dict[str, float]]:
        """This epoch's train/valid loss terms; raises naming the terms that are NaN/inf."""
        metrics = self.tracker.epoch_metric_values[-1]
        for split_name in ("train", "valid"):
            bad = [f"'{k}'={v}" for k, v in metrics[split_name].items() if not math.isfinite(v)]
            if bad:
                raise UserInputError(
                    f"training diverged at epoch {epoch}: {split_name} loss terms "
                    f"{', '.join(bad)} (check the data for NaN/inf, or lower "
                    "training.learning_rate)"
                )
        return metrics

    def _record(self, epoch: int, metrics, better: bool) -> None:
        """A history row for ``epoch``; the best weights so far; one log line."""
        w = get_loss_weights(self.setup.training_modules.loss)
        tm, vm = metrics["train"], metrics["valid"]
        row = {
            "epoch": epoch,
            "lr": self.lr,
            "w_E": w.get("w_E", float("nan")),
            "w_F": w.get("w_F", float("nan")),
            "w_A": w.get("w_A", 0.0),
            "train_e_rmse": tm["E-RMSE"],
            "train_f_rmse": tm["F-RMSE"],
            "train_f_mae": tm["F-MAE"],
            "valid_e_rmse": vm["E-RMSE"],
            "valid_f_rmse": vm["F-RMSE"],
            "valid_f_mae": vm["F-MAE"],
            "train_eps_rmse": tm.get("A-RMSE", float("nan")),
            "valid_eps_rmse": vm.get("A-RMSE", float("nan")),
            "wall_s": round(self.wall_s, 3),
            "valid_loss": vm[STOP_KEY],
        }
        self.rows.append(row)
        if better:
            self.best_state = state_dict_of(self.setup.graph)
            self.best_epoch = epoch
        log.info(
            "epoch %d: lr %.3g, valid F-RMSE %.4f eV/Å, E-RMSE %.2f meV/atom%s%s, %.1f s",
            epoch,
            self.lr,
            vm["F-RMSE"],
            1000 * vm["E-RMSE"],
            f", eps-RMSE {1000 * vm['A-RMSE']:.2f} meV" if "A-RMSE" in vm else "",
            " *" if better else "",
            row["wall_s"],
        )

    def _prepare_epoch(self, epoch: int) -> None:
        """Loss weights of the schedule and the learning rate the scheduler set for ``epoch``."""
        set_loss_weights(self.setup.training_modules.loss, self.setup.plan.weights_at(epoch))
        self.lr = self.controller.optimizer.param_groups[0]["lr"]

    def _stop_on_wall_time(self, epoch: int) -> None:
        if self.max_wall_s is not None and self.wall_s > self.max_wall_s:
            self.stop_reason = "max_wall_minutes"
            log.info("wall-time limit reached after epoch %d; stopping", epoch)
            self.finished = True
            self.save()
            raise KeyboardInterrupt  # caught around hippynn's training loop

    # -- checkpoint: state_dict and load_state_dict are each other's inverse
    def save(self) -> None:
        save_checkpoint(self.checkpoint_path, self.identity, self.state_dict())

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
            "finished": self.finished,
            "stop_reason": self.stop_reason,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
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
        self.finished = bool(state["finished"])
        self.stop_reason = state["stop_reason"]


def _tracker_state(tracker) -> dict[str, Any]:
    """The per-epoch metrics of hippynn's MetricTracker (for the checkpoint)."""
    return {
        "best_metric_values": tracker.best_metric_values,
        "epoch_metric_values": tracker.epoch_metric_values,
        "epoch_best_metric_values": tracker.epoch_best_metric_values,
        "epoch_times": list(tracker.epoch_times),
    }


def _load_tracker_state(tracker, state: dict[str, Any]) -> None:
    """Inverse of :func:`_tracker_state`. hippynn's own ``best_model`` (a state dict of its
    training GraphModule) starts empty: the best weights come from ``best_state``."""
    tracker.best_metric_values = state["best_metric_values"]
    tracker.epoch_metric_values = list(state["epoch_metric_values"])
    tracker.epoch_best_metric_values = list(state["epoch_best_metric_values"])
    tracker.epoch_times = list(state["epoch_times"])
    tracker.best_model = None


# --------------------------------------------------------------------------- workflow entry


def role_split(config: Mapping[str, Any], role: str, split, n_conf: int):
    """The split ``role`` trains on: the run's ``split``, except for teachers under
    ``labels.teacher_split_seed`` (a leaky teacher: the split of that seed, same fractions
    and training subset; docs/study.md part 4, H8)."""
    from aedistill.data.split import make_split

    seed = config["labels"].get("teacher_split_seed")
    if role != "teacher" or seed is None:
        return split
    s = config["dataset"]["split"]
    own = make_split(n_conf, s["train"], s["valid"], s["test"], int(seed), split.train_subset)
    leak = np.intersect1d(own.train, split.test).size
    log.info(
        "teacher split: seed %d (the run's: %s); %d of the run's %d test configurations are in "
        "the teacher's training set",
        seed,
        s["seed"],
        leak,
        len(split.test),
    )
    return own


def run(
    config: Mapping[str, Any],
    role: str,
    arch: str,
    seed: int,
    dataset_path: str | os.PathLike[str],
    split_path: str | os.PathLike[str],
    model_path: str | os.PathLike[str],
    labels_path: str | os.PathLike[str] | None = None,
    augment_paths: tuple[str | os.PathLike[str], str | os.PathLike[str]] | None = None,
) -> TrainResult:
    """Load the canonical dataset, split and (students) labels; train into model_path's dir.

    ``augment_paths``: (dataset, ε labels) of the teacher-generated configurations, which the
    ``augmented`` role adds to its training split (:mod:`aedistill.augment`)."""
    from aedistill.data.canonical import load_dataset
    from aedistill.data.split import load_split
    from aedistill.labels import load_labels

    ds = load_dataset(dataset_path)
    split = role_split(config, role, load_split(split_path, n_conf=ds.n_conf), ds.n_conf)
    labels = None
    target = config["labels"]["target"]
    if labels_path is not None:
        labels = load_labels(labels_path, ds, target=target)
    if plan_role(config, role).augmented:
        from aedistill.augment import load_augmented

        if augment_paths is None or labels is None:
            raise UserInputError(
                f"role {role!r} needs the teacher labels and the augmentation set "
                "(augment/dataset.h5, augment/atom_energies.h5)"
            )
        ds, split, labels = load_augmented(ds, split, labels, *augment_paths, target=target)
    return train_model(
        config,
        role,
        arch,
        int(seed),
        ds,
        split,
        Path(model_path).parent,
        labels=labels,
        run=str(config["run_name"]),
    )
