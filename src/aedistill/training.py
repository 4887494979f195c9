"""One training job for both engines: inputs, engine choice, checkpoint, files, run record.

A job trains one model (:func:`train_model`, a workflow ``train_model`` job: :func:`run`)
or several models of one architecture (:func:`train_stack_job`, a ``train_grid_stack`` job:
:func:`run_stack`). Which engine trains each model is :func:`aedistill.engine.choose_engine`'s
decision: the fast engine's models of a job train as one stack
(:class:`aedistill.fast.loop.FastLoop`), every other model alone with hippynn
(:class:`aedistill.hippynn_train.HippynnLoop`). An engine supplies only its epoch loop; this
module does the rest, the same way for both:

* **checkpoint**: ``checkpoint.pt`` (a stack: ``stack-checkpoint.pt`` in its first model's
  directory) through :mod:`aedistill.checkpoint`, written every ``training.checkpoint_every``
  epochs, resumed by a rerun with the same identity (the engine's, plus its name);
* **wall time**: ``training.max_wall_minutes`` stops the job after an epoch; the models are
  saved as they are (stop reason ``max_wall_minutes``) and the checkpoint is kept, so a
  rerun trains no further;
* **files** of every model in its own directory: ``history.csv`` (rewritten every epoch,
  rows by :func:`aedistill.history.history_row`), ``model.pt`` (best validation epoch) and
  ``metrics.json``: the test and training-set errors (:func:`aedistill.evaluation.model_metrics`)
  and one run record (:func:`run_record`, with the convergence record of
  :mod:`aedistill.convergence`).

Same seed ⇒ identical initial weights for every role of an architecture, in either engine
(:mod:`aedistill.initial`).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from aedistill.arch import Arch
from aedistill.checkpoint import load_checkpoint, save_checkpoint
from aedistill.convergence import assess_convergence
from aedistill.device import resolve_device
from aedistill.engine import RECORDED_NAME, choose_engine
from aedistill.errors import UserInputError
from aedistill.evaluation import model_metrics
from aedistill.history import Outcome
from aedistill.io import write_csv, write_json
from aedistill.loss import ENERGY_UNIT_MEV
from aedistill.models import save_model
from aedistill.roles import loss_energy, plan_role

log = logging.getLogger(__name__)

__all__ = [
    "JobModel",
    "TrainResult",
    "resolve_device",
    "role_split",
    "run",
    "run_stack",
    "train_job",
    "train_model",
    "train_stack_job",
]


@dataclass(frozen=True)
class JobModel:
    """One model of a job: ``role``, ``seed``, output directory, and the teacher labels
    (n_conf, n_max) eV for roles that learn them (None otherwise)."""

    role: str
    seed: int
    out_dir: str | os.PathLike[str]
    labels: np.ndarray | None = None


@dataclass
class TrainResult:
    metrics: dict[str, Any]
    history: pd.DataFrame
    model_path: Path


class EpochLoop(Protocol):
    """What an engine supplies to a job: the epochs of its models (``names``, in the job's
    order) and their outcome. :class:`aedistill.hippynn_train.HippynnLoop` (one model) and
    :class:`aedistill.fast.loop.FastLoop` (a stack) are the two."""

    engine: str  # as the config names it: fast | hippynn
    device: str
    names: list[str]
    max_epochs: list[int]

    @property
    def epochs_done(self) -> int: ...

    @property
    def wall_s(self) -> float: ...

    def identity(self) -> dict[str, Any]: ...

    def run(self, after_epoch: Callable[[int, bool], None]) -> None: ...

    def histories(self) -> list[pd.DataFrame]: ...

    def outcomes(self) -> list[Outcome]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


@dataclass(frozen=True)
class _Job(JobModel):
    out_dir: Path  # absolute, created


class _WallLimit(Exception):
    """Raised after an epoch past ``training.max_wall_minutes``; caught around the loop."""


# --------------------------------------------------------------------------- entries


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
    out = Path(out_dir).resolve()
    if plan_role(config, role).augmented and split.init_train is None:
        raise UserInputError(
            f"{out}: role {role!r} trains on the training split plus the teacher's "
            "configurations: give it aedistill.augment.augmented_training_data(...)"
        )
    (result,) = train_job(
        config,
        arch,
        [JobModel(role, int(seed), out, labels)],
        dataset,
        split,
        run=run,
        max_epochs=max_epochs,
        callbacks=callbacks,
    )
    return result


def train_stack_job(
    config: Mapping[str, Any],
    arch: Arch | str,
    models: Sequence[JobModel],
    dataset,
    split,
    order_seed: int = 0,
    run: str | None = None,
    max_epochs: int | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    callbacks: Sequence[Callable[[int], None]] = (),
) -> list[TrainResult]:
    """Train ``models`` (same ``arch``) in one job: those of the fast engine as one stack
    (checkpoint: ``checkpoint``, default ``stack-checkpoint.pt`` in the first model's
    directory), the others alone (see :func:`train_job`)."""
    if not models:
        raise ValueError("a stack job needs at least one model")
    stack_ck = Path(checkpoint or Path(models[0].out_dir).resolve() / "stack-checkpoint.pt")
    return train_job(
        config,
        arch,
        models,
        dataset,
        split,
        order_seed=order_seed,
        run=run,
        max_epochs=max_epochs,
        stack_checkpoint=stack_ck,
        callbacks=callbacks,
    )


def train_job(
    config: Mapping[str, Any],
    arch: Arch | str,
    models: Sequence[JobModel],
    dataset,
    split,
    order_seed: int | None = None,
    run: str | None = None,
    max_epochs: int | None = None,
    stack_checkpoint: str | os.PathLike[str] | None = None,
    callbacks: Sequence[Callable[[int], None]] = (),
) -> list[TrainResult]:
    """Train ``models`` of ``arch``; results in their order. The models the fast engine
    trains (:func:`aedistill.engine.choose_engine`) form one stack (batch order from
    ``order_seed``, default ``training.order_seed``; checkpoint ``stack_checkpoint``, default
    the model's ``checkpoint.pt`` for a stack of one); a model it does not support falls
    back to hippynn. Every other model trains alone with hippynn, checkpoint in its
    directory."""
    arch = Arch.parse(arch)
    device = resolve_device(config["training"]["device"])
    jobs = [_Job(m.role, int(m.seed), _output_dir(m.out_dir), m.labels) for m in models]
    if order_seed is None:
        order_seed = int(config["training"]["order_seed"])
    stack = None
    if choose_engine(config, arch.slug, device) == "fast":
        stack = _fast_loop(config, arch, jobs, dataset, split, order_seed, max_epochs)
    if stack is not None:
        ck = Path(stack_checkpoint or jobs[0].out_dir / "checkpoint.pt")
        return _drive(stack, jobs, ck, config, arch, dataset, split, run, callbacks)
    from aedistill.hippynn_train import HippynnLoop

    results = []
    for jm in jobs:
        loop = HippynnLoop(config, arch, jm, dataset, split, device, max_epochs)
        ck = jm.out_dir / "checkpoint.pt"
        results += _drive(loop, [jm], ck, config, arch, dataset, split, run, callbacks)
    return results


def _fast_loop(config, arch: Arch, jobs, dataset, split, order_seed: int, max_epochs):
    """The fast engine's stack of ``jobs``; None (logged) where it does not support them."""
    from aedistill.fast.loop import FastLoop

    try:
        return FastLoop(config, arch, jobs, dataset, split, order_seed, max_epochs)
    except NotImplementedError as exc:
        log.info("training.engine fast does not support %s (%s): using hippynn", arch.slug, exc)
        return None


def _output_dir(out_dir: str | os.PathLike[str]) -> Path:
    """``out_dir`` created, absolute, without the scratch of a killed run.

    Absolute: hippynn's epoch loop runs inside a scratch directory (hippynn writes into the
    cwd), and history.csv / checkpoint.pt must land in out_dir, not in that scratch.
    """
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(".hippynn-*"):
        shutil.rmtree(stale, ignore_errors=True)
    return out


# --------------------------------------------------------------------------- the job


def _drive(
    loop: EpochLoop,
    jobs: Sequence[_Job],
    ck_path: Path,
    config: Mapping[str, Any],
    arch: Arch,
    dataset,
    split,
    run: str | None,
    callbacks: Sequence[Callable[[int], None]],
) -> list[TrainResult]:
    """Resume ``loop`` from ``ck_path`` or start it, run its epochs under the checkpoint and
    wall-time rules of the module docstring, and write every model's files."""
    tr = config["training"]
    identity = {"engine": loop.engine, **loop.identity()}
    saved = load_checkpoint(ck_path, identity)
    wall_limited = False
    if saved is not None:
        loop.load_state_dict(saved["loop"])
        wall_limited = bool(saved["wall_limited"])  # a rerun trains no further
    _log_start(loop, split, config)
    every = int(tr["checkpoint_every"])
    limit = tr["max_wall_minutes"]
    max_wall_s = None if limit is None else 60.0 * float(limit)

    def save(limited: bool = False) -> None:
        save_checkpoint(ck_path, identity, {"loop": loop.state_dict(), "wall_limited": limited})

    def after_epoch(epoch: int, finished: bool) -> None:
        # checkpoint first: history.csv never shows an epoch that a resume would train again
        if epoch % every == 0 or finished:
            save()
        for name, history, jm in zip(loop.names, loop.histories(), jobs, strict=True):
            write_csv(jm.out_dir / "history.csv", history)
            _log_epoch(name, epoch, history, loss_energy(config))
        for cb in callbacks:
            cb(epoch)
        if max_wall_s is not None and loop.wall_s > max_wall_s and not finished:
            save(limited=True)
            raise _WallLimit

    if not wall_limited:
        try:
            loop.run(after_epoch)
        except _WallLimit:
            wall_limited = True
            log.info("wall-time limit reached after epoch %d; stopping", loop.epochs_done)
    train_time_s = loop.wall_s / len(jobs)
    results = []
    for jm, outcome in zip(jobs, loop.outcomes(), strict=True):
        stop = outcome.stop_reason
        if stop is None:
            stop = "max_wall_minutes" if wall_limited else "termination_patience"
        record = run_record(config, run, jm, arch, outcome, stop, train_time_s, split, loop)
        results.append(_write_model(jm, outcome, record, config, dataset, split))
    if not wall_limited:
        ck_path.unlink(missing_ok=True)
    return results


def _write_model(jm: _Job, outcome: Outcome, record, config, dataset, split) -> TrainResult:
    """``model.pt``, ``history.csv`` and ``metrics.json`` of one model."""
    model_path = jm.out_dir / "model.pt"
    save_model(model_path, outcome.spec, outcome.weights, extra={"role": jm.role, "seed": jm.seed})
    write_csv(jm.out_dir / "history.csv", outcome.history)
    metrics = model_metrics(
        model_path,
        dataset,
        split,
        labels=outcome.labels,
        batch_size=max(int(config["training"]["batch_size"]), 64),
    )
    metrics.update(record)
    write_json(jm.out_dir / "metrics.json", metrics)
    log.info(
        "%s/seed%d done after %d epochs (best %s): test F-RMSE %.4f eV/Å, E-RMSE %.2f meV/atom",
        jm.role,
        jm.seed,
        outcome.epochs,
        outcome.best_epoch,
        metrics["test_f_rmse"],
        1000 * metrics["test_e_rmse"],
    )
    return TrainResult(metrics, outcome.history, model_path)


def run_record(
    config: Mapping[str, Any],
    run: str | None,
    jm: JobModel,
    arch: Arch,
    outcome: Outcome,
    stop: str,
    train_time_s: float,
    split,
    loop: EpochLoop,
) -> dict[str, Any]:
    """The ``metrics.json`` fields that describe the run rather than the model's errors,
    with the convergence record (:mod:`aedistill.convergence`). ``engine`` is
    :data:`aedistill.engine.RECORDED_NAME` of the engine that trained the model; a model of
    the fast engine also records its ``stack_size``."""
    conv = assess_convergence(outcome.history, stop)
    record = {
        "run": run or str(config.get("run_name", "")),
        "role": jm.role,
        "arch": arch.slug,
        **arch.to_dict(),
        "seed": int(jm.seed),
        "n_train": len(split.train),
        "n_test": len(split.test),
        "epochs": int(outcome.epochs),
        "best_epoch": int(outcome.best_epoch),
        "train_time_s": round(train_time_s, 3),
        "stop_reason": stop,
        "n_lr_decays": conv.n_lr_decays,
        "converged": conv.converged,
        "engine": RECORDED_NAME[loop.engine],
        "device": loop.device,
    }
    if loop.engine == "fast":
        record["stack_size"] = len(loop.names)
    return record


def _log_start(loop: EpochLoop, split, config: Mapping[str, Any]) -> None:

    resumed = loop.epochs_done
    for name, n_epochs in zip(loop.names, loop.max_epochs, strict=True):
        log.info(
            "%s on %s (%s engine): %d train / %d valid / %d test configurations, up to %d "
            "epochs, stack of %d, loss energy %s%s",
            name,
            loop.device,
            loop.engine,
            len(split.train),
            len(split.valid),
            len(split.test),
            n_epochs,
            len(loop.names),
            loss_energy(config),
            f" (resumed after epoch {resumed})" if resumed else "",
        )


def _log_epoch(name: str, epoch: int, history: pd.DataFrame, energy: str = "per_atom") -> None:
    """The log line of ``name``'s ``epoch`` (none once the model stopped); ``energy``: the
    loss's energy (``loss.energy``), whose unit the E-RMSE has."""
    if not len(history) or int(history["epoch"].iloc[-1]) != epoch:
        return
    row = history.iloc[-1]
    eps = row["valid_eps_rmse"]
    log.info(
        "%s epoch %d: lr %.3g, valid F-RMSE %.4f eV/Å, E-RMSE %.2f %s%s%s, %.1f s",
        name,
        epoch,
        row["lr"],
        row["valid_f_rmse"],
        1000 * row["valid_e_rmse"],
        ENERGY_UNIT_MEV[energy],
        f", eps-RMSE {1000 * eps:.2f} meV" if np.isfinite(eps) else "",
        " *" if row["valid_loss"] == history["valid_loss"].min() else "",
        row["wall_s"],
    )


# --------------------------------------------------------------------------- workflow entries


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


def run_stack(
    config: Mapping[str, Any],
    arch: str,
    members: Sequence[tuple[str, int]],
    dataset_path: str | os.PathLike[str],
    split_path: str | os.PathLike[str],
    model_paths: Sequence[str | os.PathLike[str]],
    labels_path: str | os.PathLike[str] | None = None,
) -> list[TrainResult]:
    """Workflow entry of a grid job (``train_grid_stack``): load the canonical dataset,
    split and (if any member learns them) the teacher labels; train ``members`` (role, seed)
    of ``arch`` into the directories of ``model_paths`` (same order) as one job
    (:func:`train_stack_job`: one stack of the fast engine, or hippynn model by model where
    :func:`aedistill.engine.choose_engine` says so, e.g. on a GPU)."""
    from aedistill.data.canonical import load_dataset
    from aedistill.data.split import load_split
    from aedistill.labels import load_labels

    augmented = [role for role, _ in members if plan_role(config, role).augmented]
    if augmented:  # its training configurations are not the stack's
        raise ValueError(f"role {augmented[0]!r} cannot train in a grid stack")
    ds = load_dataset(dataset_path)
    split = load_split(split_path, n_conf=ds.n_conf)
    labels = None
    if labels_path is not None:
        labels = load_labels(labels_path, ds, target=config["labels"]["target"])
    jobs = [
        JobModel(str(role), int(seed), Path(p).parent, labels)
        for (role, seed), p in zip(members, model_paths, strict=True)
    ]
    return train_stack_job(
        config,
        arch,
        jobs,
        ds,
        split,
        order_seed=int(config["training"]["order_seed"]),
        run=str(config["run_name"]),
    )
