"""The training loss of the paper (eq 2 / eq 5) as hippynn graph nodes, with Lerr = RMSE + MAE::

    L = w_E Lerr(E/N) + w_F Lerr(F) [+ w_A Lerr(ε_S, ε_T)] + w_L2 L2 + w_R R

E/N is energy per atom (eV/atom; with ``loss.energy: total`` the total energy E in eV, as
the authors' example scripts train, :func:`aedistill.roles.loss_energy`), F forces (eV/Å, components of real atoms), ε per-atom
energies (eV, real atoms), L2 hippynn's weight regulariser of the network, R HIPNN's
hierarchicality per atom (mean over configurations).

w_E, w_F and w_A live in buffers of the loss module (:class:`LossWeightMod`), so that a
schedule can change them between epochs (:func:`set_loss_weights`) and a checkpoint can
save and restore them (:func:`get_loss_weights`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from aedistill.errors import UserInputError
from aedistill.models import DB_ATOM_ENERGIES, TrainingGraph
from aedistill.roles import LossWeights, RolePlan, check_energy_scale

#: Unit of the energy errors of the validation metrics, in meV, by ``loss.energy``.
ENERGY_UNIT_MEV = {"per_atom": "meV/atom", "total": "meV"}
#: Validation metric of early stopping and of the best model (the role's stop weights).
STOP_KEY = "Lerr"


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
    energy: str = "per_atom"  # loss.energy: the unit of the E errors (eV/atom or eV)


def build_loss(
    graph: TrainingGraph, plan: RolePlan, w_L2: float, w_R: float, energy: str = "per_atom"
) -> LossTerms:
    """Loss nodes of eq 2 / eq 5 for ``graph`` (see module docstring); ``energy``: the energy
    term on E/N (``per_atom``) or E (``total``). Its errors are the E-RMSE / E-MAE of the
    validation metrics (eV/atom or eV)."""
    from hippynn.graphs import loss as hloss
    from hippynn.graphs.indextypes import db_form

    LossWeightNode, MaskedErrNode = _nodes()
    check_energy_scale(energy)
    e = graph.energy_per_atom if energy == "per_atom" else graph.energy
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
    return LossTerms(train, validation, keys, energy)


def check_loss_weight(key: str, value: float, dtype: torch.dtype) -> float:
    """``value`` if it is finite in ``dtype``; else a :class:`UserInputError` naming ``key``."""
    v = float(value)
    if not math.isfinite(v) or abs(v) > torch.finfo(dtype).max:
        raise UserInputError(
            f"loss weight {key} = {v:g} does not fit the model's {dtype} (the loss would overflow)"
        )
    return v


def check_plan_weights(plan, dtype: torch.dtype) -> None:
    """Every loss weight ``plan`` (a :class:`aedistill.roles.RolePlan`) will use fits ``dtype``."""
    for weights in [plan.weights, plan.stop_weights, *(w for _, w in plan.schedule)]:
        for key, value in asdict(weights).items():
            check_loss_weight(key, value, dtype)


def set_loss_weights(module: torch.nn.Module, weights: LossWeights) -> None:
    """Set every :class:`LossWeightMod` in ``module`` (in place, between epochs)."""
    values = asdict(weights)
    for m in module.modules():
        if isinstance(m, LossWeightMod):
            m.value.fill_(check_loss_weight(m.key, values[m.key], m.value.dtype))


def get_loss_weights(module: torch.nn.Module) -> dict[str, float]:
    """The current weights of ``module``'s :class:`LossWeightMod` by key (``w_E``, ...)."""
    return {m.key: float(m.value) for m in module.modules() if isinstance(m, LossWeightMod)}
