"""One training job for several models of one architecture (fast stacked engine).

:func:`train_stack_job` is the stacked counterpart of :func:`aedistill.training.train_model`:
it trains e.g. control and student × 4 seeds of one architecture as one
:class:`aedistill.fast.StackTrainer` and writes, for every model, the same files into
its own directory — ``model.pt`` (best validation epoch), ``history.csv`` (plus the
``valid_loss`` column) and ``metrics.json`` (test metrics as ``train_model`` writes them plus
the convergence record of :mod:`aedistill.convergence`). A stack checkpoint (written every
``training.checkpoint_every`` epochs, atomically) is resumed by a rerun with the same
members and config; the wall-time limit ``training.max_wall_minutes`` applies to the job.

Initial weights, loss weights, labels and epoch limits are those ``train_model`` would use
for each (role, arch, seed); the batch order comes from ``order_seed`` and is shared by the
stack (a single model rerun with the same ``order_seed`` reproduces its result).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aedistill.arch import Arch
from aedistill.convergence import assess_convergence
from aedistill.evaluation import model_metrics
from aedistill.fast import StackSettings, StackTrainer, member_for_role
from aedistill.io import atomic_path, write_csv, write_json
from aedistill.models import save_model
from aedistill.training import TrainResult

log = logging.getLogger(__name__)

STACK_CHECKPOINT_FORMAT = "aedistill-stack-checkpoint-1"


@dataclass(frozen=True)
class JobModel:
    """One model of a job: ``role``, ``seed``, output directory, and the teacher labels
    (n_conf, n_max) eV for roles that learn them (None otherwise)."""

    role: str
    seed: int
    out_dir: str | os.PathLike[str]
    labels: np.ndarray | None = None


class _WallLimit(Exception):
    pass


def train_stack_job(
    config: Mapping[str, Any],
    arch,
    models: Sequence[JobModel],
    dataset,
    split,
    order_seed: int = 0,
    run: str | None = None,
    max_epochs: int | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    callbacks: Sequence[Callable[[int], None]] = (),
) -> list[TrainResult]:
    """Train ``models`` (same ``arch``) as one stack; write each model's files (see module
    docstring). ``checkpoint``: the stack checkpoint file (default: ``stack-checkpoint.pt``
    in the first model's directory; removed when the job is done). ``callbacks`` are called
    with the 1-based epoch after each epoch's checkpoint (tests use them to interrupt)."""
    import time

    if not models:
        raise ValueError("a stack job needs at least one model")
    tr_cfg = config["training"]
    specs, members = [], []
    for jm in models:
        spec, member = member_for_role(
            config, jm.role, arch, jm.seed, dataset, split, jm.labels, max_epochs
        )
        specs.append(spec)
        members.append(member)
    outs = [Path(jm.out_dir).resolve() for jm in models]
    for o in outs:
        o.mkdir(parents=True, exist_ok=True)
    ck_path = Path(checkpoint) if checkpoint is not None else outs[0] / "stack-checkpoint.pt"
    settings = StackSettings.from_config(config, len(split.train))
    trainer = StackTrainer(members, dataset, split, settings, order_seed)
    identity = {
        "members": [m.name for m in members],
        "order_seed": int(order_seed),
        "max_epochs": [m.max_epochs for m in members],
        "settings": repr(settings),
        "loss": repr(sorted(config["loss"].items())),
        "n_train": len(split.train),
    }
    wall_limited = False
    if ck_path.exists():
        ck = torch.load(ck_path, map_location="cpu", weights_only=True)
        if isinstance(ck, dict) and ck.get("format") == STACK_CHECKPOINT_FORMAT:
            if ck["identity"] == identity:
                trainer.load_state_dict(ck["state"])
                wall_limited = bool(ck["wall_limited"])  # as train_model: no more epochs
            else:
                log.warning("ignoring stack checkpoint %s of another job", ck_path)
    for m in members:
        log.info(
            "%s on cpu (fast engine): %d train / %d valid / %d test configurations, up to %d "
            "epochs, stack of %d, loss energy %s%s",
            m.name,
            len(split.train),
            len(split.valid),
            len(split.test),
            m.max_epochs,
            len(members),
            settings.energy,
            f" (resumed after epoch {trainer.epoch})" if trainer.epoch else "",
        )
    every = int(tr_cfg["checkpoint_every"])
    max_wall_s = (
        None if tr_cfg["max_wall_minutes"] is None else 60.0 * float(tr_cfg["max_wall_minutes"])
    )

    def save_checkpoint(limited: bool = False) -> None:
        with atomic_path(ck_path) as tmp:
            torch.save(
                {
                    "format": STACK_CHECKPOINT_FORMAT,
                    "identity": identity,
                    "state": trainer.state_dict(),
                    "wall_limited": limited,
                },
                tmp,
            )

    def after_epoch(t: StackTrainer) -> None:
        # checkpoint first: history.csv never shows an epoch that a resume would train again
        if t.epoch % every == 0 or t.finished:
            save_checkpoint()
        for res, o in zip(t.results(), outs, strict=True):
            write_csv(o / "history.csv", res.history)
            if len(res.history) and int(res.history["epoch"].iloc[-1]) == t.epoch:
                row = res.history.iloc[-1]
                log.info(
                    "%s epoch %d: lr %.3g, valid F-RMSE %.4f eV/Å, E-RMSE %.2f meV/atom%s, %.1f s",
                    res.name,
                    t.epoch,
                    row["lr"],
                    row["valid_f_rmse"],
                    1000 * row["valid_e_rmse"],
                    " *" if int(res.best_epoch) == t.epoch else "",
                    row["wall_s"],
                )
        for cb in callbacks:
            cb(t.epoch)
        if max_wall_s is not None and t.wall_s > max_wall_s and not t.finished:
            save_checkpoint(limited=True)
            raise _WallLimit

    t0 = time.perf_counter()
    try:
        while not trainer.finished and not wall_limited:
            trainer.run_epoch()
            after_epoch(trainer)
    except _WallLimit:
        wall_limited = True
        log.info("wall-time limit reached after epoch %d; stopping the stack", trainer.epoch)
    log.debug("stack of %d trained in %.1f s", len(members), time.perf_counter() - t0)

    arch_obj = Arch.parse(arch)
    results = []
    for jm, spec, member, res, o in zip(
        models, specs, members, trainer.results(), outs, strict=True
    ):
        stop = (
            "max_wall_minutes" if res.stop_reason == "running" and wall_limited else res.stop_reason
        )
        state = (
            res.best_state
            if res.best_state is not None
            else trainer.current_state(members.index(member))
        )
        model_path = o / "model.pt"
        save_model(model_path, spec, state, extra={"role": jm.role, "seed": int(jm.seed)})
        write_csv(o / "history.csv", res.history)
        metrics = model_metrics(
            model_path,
            dataset,
            split,
            labels=member.labels,
            batch_size=max(int(tr_cfg["batch_size"]), 64),
        )
        conv = assess_convergence(res.history, stop)
        metrics.update(
            {
                "run": run or str(config.get("run_name", "")),
                "role": jm.role,
                "arch": arch_obj.slug,
                **arch_obj.to_dict(),
                "seed": int(jm.seed),
                "n_train": len(split.train),
                "n_test": len(split.test),
                "epochs": int(res.epochs),
                "best_epoch": int(res.best_epoch),
                "train_time_s": round(float(trainer.wall_s) / len(members), 3),
                "stop_reason": stop,
                "n_lr_decays": conv.n_lr_decays,
                "converged": conv.converged,
                "engine": "fasttrain",
                "device": "cpu",
                "stack_size": len(members),
            }
        )
        write_json(o / "metrics.json", metrics)
        results.append(TrainResult(metrics, res.history, model_path))
    if not wall_limited:
        ck_path.unlink(missing_ok=True)
    return results


def run(
    config: Mapping[str, Any],
    arch: str,
    members: Sequence[tuple[str, int]],
    dataset_path: str | os.PathLike[str],
    split_path: str | os.PathLike[str],
    model_paths: Sequence[str | os.PathLike[str]],
    labels_path: str | os.PathLike[str] | None = None,
) -> list[TrainResult]:
    """Workflow entry of a stacked grid job: load the canonical dataset, split and (if any
    member learns them) the teacher labels; train ``members`` (role, seed) of ``arch`` into
    the directories of ``model_paths`` (same order)."""
    from aedistill.data.canonical import load_dataset
    from aedistill.data.split import load_split
    from aedistill.labels import load_labels
    from aedistill.roles import plan_role

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
