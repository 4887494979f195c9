"""Train one HIPNN (teacher, student, control, ...) with hippynn's training machinery.

Loss of the paper (eq 2 / eq 5), with Lerr = RMSE + MAE::

    L = w_E Lerr(E/N) + w_F Lerr(F) [+ w_A Lerr(ε_S, ε_T)] + w_L2 L2 + w_R R

E/N is energy per atom (eV/atom), F forces (eV/Å, components of real atoms), ε per-atom
energies (eV, real atoms), L2 hippynn's weight regulariser of the network, R HIPNN's
hierarchicality per atom (mean over configurations).

Roles (``aedistill.paths`` names):

* ``teacher`` — ``loss.teacher`` weights; ``control`` — ``loss.control``;
* ``student`` — ``loss.student``, learns the teacher labels (ensemble mean or one member);
* ``matched_control`` — control weights but the student's w_F (isolates the ε term);
* ``oracle`` — a student learning the dataset's exact per-atom energies;
* ``student_wA<x>`` — a student with w_A = x;
* ``born_again`` — teacher architecture, weights following ``born_again.schedule``
  (switched at epoch boundaries; epochs are 1-based).

Same seed ⇒ identical initial weights for every role of an architecture: the torch RNG is
seeded immediately before the modules are created and the energy initialisation depends
only on the training data.

hippynn's ``training_loop`` runs the epochs (pairs precomputed, Adam, ReduceLROnPlateau
through a ``PatienceController``); our epoch callback writes ``history.csv``, the checkpoint, applies
the loss schedule, checks for NaN and stops on the wall-time limit. hippynn writes its own
files into the working directory, so each training runs in a scratch directory that is
removed afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from aedistill.arch import Arch
from aedistill.errors import UserInputError
from aedistill.io import atomic_path, write_csv, write_json
from aedistill.models import (
    DB_ATOM_ENERGIES,
    DB_CELL,
    DB_ENERGY,
    DB_ENERGY_PER_ATOM,
    DB_FORCES,
    DB_POSITIONS,
    DB_SPECIES,
    ModelSpec,
    TrainingGraph,
    build_training_graph,
    load_model,
    save_model,
    state_dict_of,
)

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "aedistill-checkpoint-1"
HISTORY_COLUMNS = [
    "epoch",
    "lr",
    "w_E",
    "w_F",
    "w_A",
    "train_e_rmse",
    "train_f_rmse",
    "train_f_mae",
    "valid_e_rmse",
    "valid_f_rmse",
    "valid_f_mae",
    "train_eps_rmse",
    "valid_eps_rmse",
    "wall_s",
]
STOP_KEY = "Lerr"
# training keys that may change between an interrupted run and its resumption
_RESUMABLE_TRAINING_KEYS = (
    "max_epochs",
    "teacher_max_epochs",
    "max_wall_minutes",
    "checkpoint_every",
)
_STUDENT_WA = re.compile(r"^student_wA([0-9]+(?:\.[0-9]*)?(?:e[+-]?[0-9]+)?)$")


# --------------------------------------------------------------------------- roles


@dataclass(frozen=True)
class LossWeights:
    """Weights of eq 2 / eq 5 (w_A = 0: no atomic-energy term)."""

    w_E: float
    w_F: float
    w_A: float = 0.0


@dataclass(frozen=True)
class RolePlan:
    """What a role trains: weights, optional schedule, labels, stopping, epochs.

    ``labels``: None (no ε term), ``"teacher"`` (teacher ensemble labels) or ``"exact"``
    (the dataset's exact per-atom energies). ``schedule`` rows are (first epoch, weights).
    ``stop_weights`` define the validation metric for early stopping / best model: the
    role's own weights, or the final schedule row for Born-Again students.
    """

    role: str
    weights: LossWeights
    stop_weights: LossWeights
    labels: str | None
    max_epochs: int
    min_epochs: int = 0
    schedule: tuple[tuple[int, LossWeights], ...] = ()

    def weights_at(self, epoch: int) -> LossWeights:
        """Weights used during 1-based ``epoch``."""
        if not self.schedule:
            return self.weights
        current = self.schedule[0][1]
        for first, w in self.schedule:
            if epoch >= first:
                current = w
        return current


def plan_role(config: Mapping[str, Any], role: str) -> RolePlan:
    """The :class:`RolePlan` of ``role`` under ``config`` (raises for unknown roles)."""
    loss = config["loss"]
    tr = config["training"]
    st = loss["student"]
    student = LossWeights(float(st["w_E"]), float(st["w_F"]), float(st["w_A"]))
    max_epochs = int(tr["max_epochs"])
    if role == "teacher":
        w = LossWeights(float(loss["teacher"]["w_E"]), float(loss["teacher"]["w_F"]))
        return RolePlan(role, w, w, None, int(tr["teacher_max_epochs"] or max_epochs))
    if role == "control":
        w = LossWeights(float(loss["control"]["w_E"]), float(loss["control"]["w_F"]))
        return RolePlan(role, w, w, None, max_epochs)
    if role == "matched_control":
        w = LossWeights(float(loss["control"]["w_E"]), student.w_F)
        return RolePlan(role, w, w, None, max_epochs)
    if role == "student":
        return RolePlan(role, student, student, "teacher", max_epochs)
    if role == "oracle":
        return RolePlan(role, student, student, "exact", max_epochs)
    m = _STUDENT_WA.match(role)
    if m:
        w = LossWeights(student.w_E, student.w_F, float(m.group(1)))
        return RolePlan(role, w, w, "teacher", max_epochs)
    if role == "born_again":
        ba = config["born_again"]
        rows = tuple(
            (int(r["epoch"]), LossWeights(float(r["w_E"]), float(r["w_F"]), float(r["w_A"])))
            for r in ba["schedule"]
        )
        last_epoch = rows[-1][0]
        n_epochs = int(ba["max_epochs"] or last_epoch + int(tr["termination_patience"]))
        return RolePlan(
            role, rows[0][1], rows[-1][1], "teacher", n_epochs, min_epochs=last_epoch, schedule=rows
        )
    raise UserInputError(
        f"unknown role {role!r} (expected teacher, student, control, matched_control, oracle, "
        "born_again or student_wA<value>)"
    )


def role_arch(config: Mapping[str, Any], role: str, arch: Arch | str) -> Arch:
    """Teachers and Born-Again students use ``teachers.arch``; other roles ``arch``."""
    return arch if isinstance(arch, Arch) else Arch.from_slug(arch)


# --------------------------------------------------------------------------- loss graph


class LossWeightMod(torch.nn.Module):
    """A loss weight held in a buffer so that it can be changed between epochs."""

    def __init__(self, key: str, value: float):
        super().__init__()
        self.key = key
        self.register_buffer("value", torch.tensor(float(value), dtype=torch.get_default_dtype()))

    def extra_repr(self) -> str:
        return f"{self.key}={float(self.value):g}"

    def forward(self) -> torch.Tensor:
        return self.value


class MaskedErr(torch.nn.Module):
    """RMSE or MAE over the real atoms of padded (n, n_max, k) arrays (species > 0)."""

    def __init__(self, kind: str):
        super().__init__()
        if kind not in ("rmse", "mae"):
            raise ValueError(kind)
        self.kind = kind

    def extra_repr(self) -> str:
        return self.kind

    def forward(
        self, pred: torch.Tensor, true: torch.Tensor, species: torch.Tensor
    ) -> torch.Tensor:
        n_max = species.shape[1]
        pred = pred.reshape(pred.shape[0], pred.shape[1], -1)
        true = true.reshape(true.shape[0], true.shape[1], -1)
        if pred.shape[1] < n_max:  # hippynn may trim padding of atom-indexed outputs per batch
            pad = pred.new_zeros(pred.shape[0], n_max - pred.shape[1], pred.shape[2])
            pred = torch.cat([pred, pad], dim=1)
        diff = (pred[:, :n_max] - true[:, :n_max])[species > 0]
        if self.kind == "rmse":
            return torch.sqrt(torch.mean(diff**2))
        return torch.mean(torch.abs(diff))


def _nodes():
    """hippynn node classes defined lazily (hippynn must be imported after the env is set)."""
    from hippynn.graphs.indextypes import IdxType
    from hippynn.graphs.nodes.base import SingleNode
    from hippynn.graphs.nodes.base.algebra import ValueNode

    class LossWeightNode(ValueNode):
        def __init__(self, key: str, value: float):
            self.key = key
            super().__init__(float(value))
            self.name = f"weight_{key}"

        def auto_module(self):
            return LossWeightMod(self.key, float(self.value))

    class MaskedErrNode(SingleNode):
        _index_state = IdxType.Scalar

        def __init__(self, name, pred, true, species, kind):
            super().__init__(name, (pred, true, species), module=MaskedErr(kind))

    return LossWeightNode, MaskedErrNode


@dataclass
class LossTerms:
    """hippynn loss nodes; ``train`` is the weighted training loss."""

    train: Any
    validation: dict[str, Any]
    weight_keys: tuple[str, ...]


def build_loss(graph: TrainingGraph, plan: RolePlan, w_L2: float, w_R: float) -> LossTerms:
    """Loss nodes of eq 2 / eq 5 for ``graph`` (see module docstring)."""
    from hippynn.graphs import loss as hloss
    from hippynn.graphs.indextypes import db_form

    LossWeightNode, MaskedErrNode = _nodes()
    e = graph.energy_per_atom
    e_rmse = hloss.MSELoss(e.pred, e.true) ** 0.5
    e_mae = hloss.MAELoss(e.pred, e.true)
    f, sp = graph.forces, graph.species
    f_rmse = MaskedErrNode("F-RMSE", f.pred, f.true, sp.true, "rmse")
    f_mae = MaskedErrNode("F-MAE", f.pred, f.true, sp.true, "mae")
    l2 = hloss.l2reg(graph.network)
    r = hloss.Mean(graph.hier_per_atom.pred)
    w = plan.weights
    wE, wF = LossWeightNode("w_E", w.w_E), LossWeightNode("w_F", w.w_F)
    lerr = wE * (e_rmse + e_mae) + wF * (f_rmse + f_mae)
    stop = plan.stop_weights
    stop_err = stop.w_E * (e_rmse + e_mae) + stop.w_F * (f_rmse + f_mae)
    validation = {"E-RMSE": e_rmse, "E-MAE": e_mae, "F-RMSE": f_rmse, "F-MAE": f_mae}
    keys: tuple[str, ...] = ("w_E", "w_F")
    if plan.labels is not None:
        eps = db_form(graph.atom_energies)  # padded (n, n_max, 1), like the labels
        eps.db_name = DB_ATOM_ENERGIES
        a_rmse = MaskedErrNode("A-RMSE", eps.pred, eps.true, sp.true, "rmse")
        a_mae = MaskedErrNode("A-MAE", eps.pred, eps.true, sp.true, "mae")
        wA = LossWeightNode("w_A", w.w_A)
        lerr = lerr + wA * (a_rmse + a_mae)
        stop_err = stop_err + stop.w_A * (a_rmse + a_mae)
        validation.update({"A-RMSE": a_rmse, "A-MAE": a_mae})
        keys = (*keys, "w_A")
    train = lerr + w_L2 * l2 + w_R * r
    validation.update({"L2": l2, "R": r, "Loss": train, STOP_KEY: stop_err})
    return LossTerms(train, validation, keys)


def set_loss_weights(module: torch.nn.Module, weights: LossWeights) -> None:
    """Set every :class:`LossWeightMod` in ``module`` (in place, between epochs)."""
    values = asdict(weights)
    for m in module.modules():
        if isinstance(m, LossWeightMod):
            v = float(values[m.key])
            if not math.isfinite(v) or abs(v) > torch.finfo(m.value.dtype).max:
                raise UserInputError(
                    f"loss weight {m.key} = {v:g} does not fit the model's {m.value.dtype} "
                    "(the loss would overflow)"
                )
            m.value.fill_(v)


def get_loss_weights(module: torch.nn.Module) -> dict[str, float]:
    return {m.key: float(m.value) for m in module.modules() if isinstance(m, LossWeightMod)}


# --------------------------------------------------------------------------- data


def _database_class():
    from hippynn.databases import Database

    class BatchedDatabase(Database):
        """hippynn Database whose loaders gather whole batches at once.

        hippynn's default DataLoader indexes the sparse pair cache one configuration at a
        time; gathering a batch with one ``index_select`` gives the same batches, faster.
        Shuffling uses the global torch RNG (deterministic under a seed).
        """

        def make_generator(self, split_name, evaluation_mode, batch_size=None, subsample=False):
            if not self.splitting_completed:
                raise ValueError("Database has not yet been split.")
            arrays = [self.splits[split_name][k] for k in self.var_list]
            n = int(arrays[0].shape[0])
            if subsample:
                idx = torch.argsort(torch.rand(n))[: max(1, int(n * subsample))]
            else:
                idx = torch.arange(n)
            if evaluation_mode == "train":
                idx = idx[torch.randperm(len(idx))]
            elif evaluation_mode != "eval":
                raise ValueError(evaluation_mode)
            return _Batches(arrays, idx, batch_size or n)

    return BatchedDatabase


class _Batches:
    def __init__(self, arrays: list[torch.Tensor], idx: torch.Tensor, batch_size: int):
        self.arrays, self.idx, self.batch_size = arrays, idx, int(batch_size)

    def __len__(self) -> int:
        return math.ceil(len(self.idx) / self.batch_size)

    def __iter__(self):
        for start in range(0, len(self.idx), self.batch_size):
            b = self.idx[start : start + self.batch_size]
            yield [torch.index_select(a, 0, b) if a.is_sparse else a[b] for a in self.arrays]


def database_arrays(
    dataset, labels: np.ndarray | None, dtype: torch.dtype | None = None
) -> dict[str, np.ndarray]:
    """hippynn arrays (targets with trailing axes: E (n,1), E/N (n,1), ε (n,n_max,1))."""
    dtype = dtype or torch.get_default_dtype()
    fdt = np.float32 if dtype == torch.float32 else np.float64
    n_atoms = dataset.n_atoms.astype(np.float64)
    arrays = {
        DB_SPECIES: dataset.species.astype(np.int64),
        DB_POSITIONS: dataset.positions.astype(fdt),
        DB_CELL: dataset.cell.astype(fdt),
        DB_ENERGY: dataset.energy.reshape(-1, 1).astype(fdt),
        DB_ENERGY_PER_ATOM: (dataset.energy / n_atoms).reshape(-1, 1).astype(fdt),
        DB_FORCES: dataset.forces.astype(fdt),
    }
    if labels is not None:
        arrays[DB_ATOM_ENERGIES] = np.asarray(labels)[..., None].astype(fdt)
    return arrays


def make_database(dataset, split, labels: np.ndarray | None, inputs, targets):
    """hippynn Database with the project's split (``train``/``valid``/``test``)."""
    Database = _database_class()
    used = np.concatenate([split.train, split.valid, split.test])
    arrays = database_arrays(dataset, labels)
    arrays["indices"] = np.arange(dataset.n_conf)
    arrays = {k: v[used] for k, v in arrays.items()}
    db = Database(arrays, inputs=inputs, targets=targets, seed=0, quiet=True, pin_memory=False)
    for name, idx in (("train", split.train), ("valid", split.valid), ("test", split.test)):
        db.make_explicit_split(name, torch.as_tensor(np.asarray(idx, dtype=np.int64)))
    return db


def _labels_for(
    plan: RolePlan, dataset, labels: np.ndarray | None, where: str
) -> np.ndarray | None:
    if plan.labels is None:
        return None
    if plan.labels == "exact":
        if dataset.atom_energies is None:
            raise UserInputError(
                f"{where}: role 'oracle' needs a dataset with exact per-atom energies "
                f"(source {dataset.source!r} has none); remove 'oracle' from grid.roles"
            )
        return dataset.atom_energies
    if labels is None:
        raise UserInputError(
            f"{where}: role {plan.role!r} needs teacher labels (labels/atom_energies.h5)"
        )
    if labels.shape != dataset.species.shape:
        raise UserInputError(
            f"{where}: labels have shape {labels.shape}, dataset species {dataset.species.shape}"
        )
    bad = ~np.isfinite(labels) & (dataset.species > 0)
    if bad.any():
        i = int(np.argwhere(bad)[0, 0])
        raise UserInputError(f"{where}: teacher labels of configuration {i} contain NaN or inf")
    return labels


# --------------------------------------------------------------------------- training


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
    from hippynn.experiment.assembly import assemble_for_training, precompute_pairs
    from hippynn.pretraining import hierarchical_energy_initialization

    _quiet_hippynn()
    plan = plan_role(config, role)
    arch = role_arch(config, role, arch)
    eps = _labels_for(plan, dataset, labels, where)
    spec = ModelSpec.from_config(config, arch)
    graph = build_training_graph(spec, seed)
    terms = build_loss(graph, plan, float(config["loss"]["w_L2"]), float(config["loss"]["w_R"]))
    with contextlib.redirect_stdout(_LogStream()):
        modules, db_info = assemble_for_training(terms.train, terms.validation)
        db = make_database(dataset, split, eps, db_info["inputs"], db_info["targets"])
        hierarchical_energy_initialization(
            graph.henergy, db, energy_name=DB_ENERGY, species_name=DB_SPECIES, decay_factor=1e-2
        )
        initial = state_dict_of(graph)
        # hippynn sizes the sparse pair cache by n_images and relies on torch to refuse
        # image indices beyond it; torch skips that check by default, and cells needing
        # more images then silently get summed (wrong, even zero-length) pair offsets.
        # With the invariant check on, too few images raise and we retry with more.
        for n_images in (1, 2, 3, 4, 6, 8, 12):
            try:
                with torch.sparse.check_sparse_tensor_invariants(enable=True):
                    precompute_pairs(modules.model, db, n_images=n_images)
                break
            except ValueError as exc:
                if "n_images" not in str(exc):
                    raise
        else:
            raise UserInputError(f"{where}: a cell is too small for the pair cutoff (> 12 images)")
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


class _Stop(Exception):
    """Raised by callbacks to leave hippynn's loop without its 'finish up' handling."""


def _controller_class():
    from hippynn.experiment.controllers import PatienceController

    class MinEpochPatienceController(PatienceController):
        """hippynn's PatienceController that never stops before ``min_epochs`` epochs."""

        _state_vars = PatienceController._state_vars + ("min_epochs",)

        def __init__(self, *args, min_epochs: int = 0, **kwargs):
            super().__init__(*args, **kwargs)
            self.min_epochs = int(min_epochs)

        @property
        def max_epochs(self):
            return max(min(self.min_epochs, self._max_epochs), super().max_epochs)

    return MinEpochPatienceController


@dataclass
class TrainResult:
    metrics: dict[str, Any]
    history: pd.DataFrame
    model_path: Path


def _finite_or_nan(x: float) -> float:
    return float(x) if x is not None else float("nan")


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
    from hippynn.experiment import SetupParams, setup_training
    from hippynn.experiment.routines import training_loop

    # absolute: the epoch loop runs inside a scratch directory (hippynn writes into the cwd),
    # and history.csv / checkpoint.pt must land in out_dir, not in that scratch
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(".hippynn-*"):  # scratch of a killed run
        shutil.rmtree(stale, ignore_errors=True)
    arch_obj = role_arch(config, role, arch)
    where = str(out)
    setup = prepare_training(config, role, arch_obj, seed, dataset, split, labels, where)
    plan = setup.plan
    tr = config["training"]
    n_epochs = int(max_epochs or plan.max_epochs)

    modules = setup.training_modules
    params = [p for p in modules.model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=float(tr["learning_rate"]))
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=float(tr["lr_factor"]), patience=int(tr["lr_patience"])
    )
    n_train = len(split.train)
    controller = _controller_class()(
        optimizer=optimizer,
        scheduler=scheduler,
        batch_size=int(tr["batch_size"]),
        eval_batch_size=max(int(tr["batch_size"]), 64),
        max_epochs=n_epochs,
        termination_patience=int(tr["termination_patience"]),
        stopping_key=STOP_KEY,
        fraction_train_eval=min(1.0, max(0.1, 50.0 / max(n_train, 1))),
        min_epochs=min(plan.min_epochs, n_epochs),
        quiet=True,
    )
    with contextlib.redirect_stdout(_LogStream()):
        modules, controller, tracker = setup_training(
            modules, SetupParams(controller=controller, device=torch.device("cpu"))
        )
    tracker.quiet = True

    ckpt_path = out / "checkpoint.pt"
    identity = {
        "role": role,
        "arch": arch_obj.slug,
        "seed": int(seed),
        "n_train": n_train,
        "spec": setup.spec.to_dict(),
        "plan": repr((plan.weights, plan.stop_weights, plan.labels, plan.schedule)),
        "training": repr(
            {k: v for k, v in sorted(tr.items()) if k not in _RESUMABLE_TRAINING_KEYS}
        ),
        "loss": repr(sorted(config["loss"].items())),
    }
    state = _TrainState(
        plan=plan,
        setup=setup,
        controller=controller,
        tracker=tracker,
        ckpt_path=ckpt_path,
        identity=identity,
        checkpoint_every=int(tr["checkpoint_every"]),
        max_wall_s=None if tr["max_wall_minutes"] is None else 60.0 * float(tr["max_wall_minutes"]),
        history_path=out / "history.csv",
        user_callbacks=list(callbacks),
        max_epochs=n_epochs,
    )
    resumed = state.try_resume()
    if not resumed:
        set_loss_weights(modules.loss, plan.weights_at(1))
        state.lr = optimizer.param_groups[0]["lr"]
    log.info(
        "%s %s seed %d: %d weights, %d train / %d valid / %d test configurations, up to %d epochs%s",
        role,
        arch_obj.slug,
        seed,
        sum(p.numel() for p in setup.graph.modules.parameters()),
        len(split.train),
        len(split.valid),
        len(split.test),
        n_epochs,
        f" (resumed after epoch {state.epochs_done})" if resumed else "",
    )

    if state.epochs_done < controller.max_epochs and not state.finished:
        scratch = Path(tempfile.mkdtemp(prefix=".hippynn-", dir=out))
        try:
            with contextlib.chdir(scratch), contextlib.redirect_stdout(_LogStream()):
                # hippynn's epoch loop; its train_model wrapper would add a test pass over
                # every split and plots that we do not use (we test the saved model below)
                try:
                    training_loop(
                        modules,
                        setup.database,
                        controller,
                        tracker,
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
    train_time_s = state.wall_s
    # best-on-validation weights
    if state.best_state is not None:
        setup.graph.modules.load_state_dict(state.best_state)
    model_path = out / "model.pt"
    save_model(model_path, setup.spec, setup.graph, extra={"role": role, "seed": int(seed)})
    history = state.history_frame()
    write_csv(state.history_path, history)
    metrics = evaluate_model(
        model_path,
        dataset,
        split.test,
        labels=setup.labels if plan.labels is not None else labels,
        batch_size=max(int(tr["batch_size"]), 64),
    )
    metrics.update(
        {
            "run": run or str(config.get("run_name", "")),
            "role": role,
            "arch": arch_obj.slug,
            **arch_obj.to_dict(),
            "seed": int(seed),
            "epochs": int(state.epochs_done),
            "best_epoch": int(state.best_epoch) if state.best_epoch else 0,
            "train_time_s": round(train_time_s, 3),
            "stop_reason": state.stop_reason or "max_epochs_or_patience",
        }
    )
    write_json(out / "metrics.json", metrics)
    ckpt_path.unlink(missing_ok=True)
    log.info(
        "done after %d epochs (best %s): test F-RMSE %.4f eV/Å, E-RMSE %.2f meV/atom",
        state.epochs_done,
        state.best_epoch,
        metrics["test_f_rmse"],
        1000 * metrics["test_e_rmse"],
    )
    return TrainResult(metrics, history, model_path)


@dataclass
class _TrainState:
    plan: RolePlan
    setup: TrainingSetup
    controller: Any
    tracker: Any
    ckpt_path: Path
    identity: dict[str, Any]
    checkpoint_every: int
    max_wall_s: float | None
    history_path: Path
    user_callbacks: list
    max_epochs: int
    rows: list[dict[str, float]] = field(default_factory=list)
    best_state: dict[str, Any] | None = None
    best_epoch: int = 0
    wall_prev: float = 0.0
    t_start: float = field(default_factory=time.perf_counter)
    lr: float = float("nan")
    stop_reason: str | None = None
    finished: bool = False

    @property
    def epochs_done(self) -> int:
        return len(self.rows)

    @property
    def wall_s(self) -> float:
        return self.wall_prev + time.perf_counter() - self.t_start

    def history_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=HISTORY_COLUMNS)

    def epoch_callback(self, hepoch: int, better: bool) -> None:
        epoch = hepoch + 1  # hippynn counts from 0; our tables from 1
        loss_mod = self.setup.training_modules.loss
        w = get_loss_weights(loss_mod)
        metrics = self.tracker.epoch_metric_values[-1]
        for split_name in ("train", "valid"):
            bad = [f"'{k}'={v}" for k, v in metrics[split_name].items() if not math.isfinite(v)]
            if bad:
                raise UserInputError(
                    f"training diverged at epoch {epoch}: {split_name} loss terms "
                    f"{', '.join(bad)} (check the data for NaN/inf, or lower "
                    "training.learning_rate)"
                )
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
        # weights and learning rate for the next epoch
        set_loss_weights(loss_mod, self.plan.weights_at(epoch + 1))
        self.lr = self.controller.optimizer.param_groups[0]["lr"]
        write_csv(self.history_path, self.history_frame())
        if epoch % self.checkpoint_every == 0:
            self.save_checkpoint()
        for cb in self.user_callbacks:
            cb(epoch)
        if self.max_wall_s is not None and self.wall_s > self.max_wall_s:
            self.stop_reason = "max_wall_minutes"
            log.info("wall-time limit reached after epoch %d; stopping", epoch)
            self.save_checkpoint(finished=True)
            raise KeyboardInterrupt  # caught around hippynn's training loop

    def save_checkpoint(self, finished: bool = False) -> None:
        payload = {
            "format": CHECKPOINT_FORMAT,
            "identity": self.identity,
            "model": state_dict_of(self.setup.training_modules.model),
            "controller": self.controller.state_dict(),
            "loss_weights": get_loss_weights(self.setup.training_modules.loss),
            "tracker": {
                "best_metric_values": self.tracker.best_metric_values,
                "epoch_metric_values": self.tracker.epoch_metric_values,
                "epoch_best_metric_values": self.tracker.epoch_best_metric_values,
                "epoch_times": list(self.tracker.epoch_times),
            },
            "rows": self.rows,
            "best_state": self.best_state,
            "best_epoch": self.best_epoch,
            "wall_s": self.wall_s,
            "lr": self.lr,
            "rng_torch": torch.get_rng_state(),
            "finished": finished,
            "stop_reason": self.stop_reason,
        }
        with atomic_path(self.ckpt_path) as tmp:
            torch.save(payload, tmp)

    def try_resume(self) -> bool:
        if not self.ckpt_path.exists():
            return False
        try:
            ck = torch.load(self.ckpt_path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001
            log.warning("ignoring unreadable checkpoint %s (%s)", self.ckpt_path, exc)
            return False
        if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
            log.warning("ignoring checkpoint %s of another format", self.ckpt_path)
            return False
        if ck["identity"] != self.identity:
            log.warning("ignoring checkpoint %s of another model/config", self.ckpt_path)
            return False
        mods = self.setup.training_modules
        mods.model.load_state_dict(ck["model"])
        self.controller.load_state_dict(ck["controller"])
        for m in mods.loss.modules():
            if isinstance(m, LossWeightMod):
                m.value.fill_(ck["loss_weights"][m.key])
        t = ck["tracker"]
        self.tracker.best_metric_values = t["best_metric_values"]
        self.tracker.epoch_metric_values = list(t["epoch_metric_values"])
        self.tracker.epoch_best_metric_values = list(t["epoch_best_metric_values"])
        self.tracker.epoch_times = list(t["epoch_times"])
        self.rows = list(ck["rows"])
        self.best_state = ck["best_state"]
        # hippynn's own best_model (a state dict of its training GraphModule) starts empty;
        # the best weights are restored from best_state after training.
        self.tracker.best_model = None
        self.best_epoch = int(ck["best_epoch"])
        self.wall_prev = float(ck["wall_s"])
        self.t_start = time.perf_counter()
        self.lr = float(ck["lr"])
        self.finished = bool(ck["finished"])
        self.stop_reason = ck["stop_reason"]
        torch.set_rng_state(ck["rng_torch"])
        # limits come from the current config (a rerun may allow more epochs)
        self.controller._max_epochs = self.max_epochs
        self.controller.min_epochs = min(self.plan.min_epochs, self.max_epochs)
        return True


# --------------------------------------------------------------------------- evaluation


def _rmse(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else float("nan")


def _mae(x: np.ndarray) -> float:
    return float(np.mean(np.abs(x))) if x.size else float("nan")


def evaluate_model(
    model_path: str | os.PathLike[str],
    dataset,
    idx: np.ndarray,
    labels: np.ndarray | None = None,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Test metrics of a saved model on configurations ``idx`` (numpy, real atoms only).

    Returns n_weights, test_e_rmse/test_e_mae (eV/atom), test_f_rmse/test_f_mae (eV/Å,
    force components), test_eps_rmse (ε vs ``labels``, eV; NaN without labels),
    test_eps_true_rmse (ε vs the dataset's exact ε; NaN without them).
    """
    loaded = load_model(model_path)
    sub = dataset.subset(np.asarray(idx))
    pred = loaded.predict(sub, batch_size=batch_size)
    mask = sub.species > 0
    n_atoms = sub.n_atoms
    de = (pred["energy"] - sub.energy) / n_atoms
    df = (pred["forces"] - sub.forces)[mask]
    out = {
        "n_weights": loaded.n_weights,
        "test_e_rmse": _rmse(de),
        "test_e_mae": _mae(de),
        "test_f_rmse": _rmse(df),
        "test_f_mae": _mae(df),
        "test_eps_rmse": float("nan"),
        "test_eps_true_rmse": float("nan"),
    }
    if labels is not None:
        out["test_eps_rmse"] = _rmse((pred["atom_energies"] - np.asarray(labels)[idx])[mask])
    if sub.atom_energies is not None:
        out["test_eps_true_rmse"] = _rmse((pred["atom_energies"] - sub.atom_energies)[mask])
    return out


# --------------------------------------------------------------------------- workflow entry


def run(
    config: Mapping[str, Any],
    role: str,
    arch: str,
    seed: int,
    dataset_path: str | os.PathLike[str],
    split_path: str | os.PathLike[str],
    model_path: str | os.PathLike[str],
    labels_path: str | os.PathLike[str] | None = None,
) -> TrainResult:
    """Load the canonical dataset, split and (students) labels; train into model_path's dir."""
    from aedistill.data.canonical import load_dataset
    from aedistill.data.split import load_split
    from aedistill.labels import load_labels

    ds = load_dataset(dataset_path)
    split = load_split(split_path, n_conf=ds.n_conf)
    labels = None
    if labels_path is not None:
        labels = load_labels(labels_path, ds, target=config["labels"]["target"])
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


def summarize_models(
    metrics_paths: Sequence[str | os.PathLike[str]],
    history_paths: Sequence[str | os.PathLike[str]],
    models_csv: str | os.PathLike[str],
    histories_csv: str | os.PathLike[str],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per model (``tables/models.csv``) and all learning curves (``histories.csv``)."""
    import json

    columns = [
        "run", "role", "arch", "atom_layers", "width", "sensitivities", "seed", "n_weights",
        "epochs", "best_epoch", "train_time_s", "test_e_rmse", "test_e_mae", "test_f_rmse",
        "test_f_mae", "test_eps_rmse", "test_eps_true_rmse",
    ]  # fmt: skip
    rows = [json.loads(Path(p).read_text()) for p in metrics_paths]
    models = pd.DataFrame(rows)
    extra = [c for c in models.columns if c not in columns]
    models = models.reindex(columns=columns + extra).sort_values(["role", "arch", "seed"])
    frames = []
    for mp, hp in zip(metrics_paths, history_paths, strict=True):
        m = json.loads(Path(mp).read_text())
        h = pd.read_csv(hp)
        h.insert(0, "seed", m["seed"])
        h.insert(0, "arch", m["arch"])
        h.insert(0, "role", m["role"])
        frames.append(h)
    hist_cols = ["role", "arch", "seed", *HISTORY_COLUMNS]
    histories = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=hist_cols)
    write_csv(models_csv, models)
    write_csv(histories_csv, histories[hist_cols])
    return models, histories
