"""What a stack is made of: its members, their shared settings and what each one's training
gives; :func:`member_for_role` builds a member as the hippynn engine would start it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from aedistill.roles import RolePlan, loss_energy


@dataclass
class StackMember:
    """One model of a stack.

    ``modules``: hippynn ModuleDict (``network``, ``henergy``) holding the initial weights
    (after the E0 initialisation); ``plan``: the role's loss weights/schedule/stopping;
    ``labels``: per-atom energy labels (n_conf, n_max) eV for roles with an ε term, else
    None; ``max_epochs``: the epoch limit of this model.
    """

    name: str
    modules: Any
    plan: RolePlan
    labels: np.ndarray | None
    max_epochs: int


@dataclass(frozen=True)
class StackSettings:
    """Training settings shared by a stack (``training`` and ``loss`` of the config)."""

    learning_rate: float
    lr_factor: float
    lr_patience: int
    termination_patience: int
    batch_size: int
    w_L2: float
    w_R: float
    fraction_train_eval: float
    eval_atoms_slots: int = 2_000_000  # evaluation chunk: atoms × slots × n·K × models
    energy: str = "per_atom"  # loss.energy: the energy term on E/N (per_atom) or E (total)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], n_train: int) -> StackSettings:
        tr, loss = config["training"], config["loss"]
        return cls(
            learning_rate=float(tr["learning_rate"]),
            lr_factor=float(tr["lr_factor"]),
            lr_patience=int(tr["lr_patience"]),
            termination_patience=int(tr["termination_patience"]),
            batch_size=int(tr["batch_size"]),
            w_L2=float(loss["w_L2"]),
            w_R=float(loss["w_R"]),
            fraction_train_eval=min(1.0, max(0.1, 50.0 / max(n_train, 1))),
            energy=loss_energy(config),
        )


@dataclass
class MemberResult:
    """What a stack member's training gives: per-epoch ``history`` (columns
    :data:`aedistill.tables.HISTORY_COLUMNS`; ``wall_s`` = the stack's wall time, ``valid_loss`` the
    validation Lerr that selects the best epoch),
    ``best_state`` (hippynn state dict of the best validation epoch), ``best_epoch``
    (1-based), ``epochs`` run, ``stop_reason`` (``termination_patience`` or ``max_epochs``).
    """

    name: str
    history: pd.DataFrame
    best_state: dict[str, Any] | None
    best_epoch: int
    epochs: int
    stop_reason: str


def member_for_role(
    config: Mapping[str, Any],
    role: str,
    arch,
    seed: int,
    dataset,
    split,
    labels: np.ndarray | None = None,
    max_epochs: int | None = None,
) -> tuple[Any, StackMember]:
    """(ModelSpec, StackMember) of ``role``/``arch``/``seed`` with the same initial weights,
    plan, labels and epoch limit as :class:`aedistill.hippynn_train.HippynnLoop` would use."""
    from aedistill.arch import Arch
    from aedistill.database import role_labels
    from aedistill.initial import initial_graph
    from aedistill.loss import check_plan_weights
    from aedistill.roles import plan_role

    plan = plan_role(config, role)
    check_plan_weights(plan, torch.get_default_dtype())
    arch_obj = Arch.parse(arch)
    eps = role_labels(plan, dataset, labels, f"{role} {arch_obj.slug} seed {seed}")
    spec, graph = initial_graph(config, arch_obj, seed, dataset, split)
    n_epochs = int(max_epochs or plan.max_epochs)
    name = f"{role}/{arch_obj.slug}/seed{seed}"
    return spec, StackMember(name, graph.modules, plan, eps, n_epochs)
