"""What each role trains: loss weights, schedule, labels and epochs (torch-free).

The Snakefile reads this module while it builds the DAG (which roles need teacher labels,
which role names are valid), so it must not import torch or hippynn.

Roles (the ``<role>`` directory of :mod:`aedistill.paths`):

* ``teacher`` — ``loss.teacher`` weights; ``control`` — ``loss.control``;
* ``student`` — ``loss.student``, learns the teacher labels (ensemble mean or one member);
* ``matched_control`` — control weights but the student's w_F (isolates the ε term);
* ``oracle`` — a student learning the dataset's exact per-atom energies;
* ``student_wA<x>`` — a student with w_A = x (``x`` as ``f"{x:g}"`` writes it);
* ``augmented`` — a student that also trains on configurations the teacher generated and
  labelled itself (teacher MD, ensemble-mean E, F and ε: :mod:`aedistill.augment`); its
  control (``control``) cannot see them, having no ground truth for them;
* ``born_again`` — teacher architecture, weights following ``born_again.schedule``
  (switched at epoch boundaries; epochs are 1-based).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aedistill.errors import UserInputError

#: Roles with a fixed name; ``student_wA<x>`` is the one family of names.
NAMED_ROLES = (
    "teacher",
    "student",
    "control",
    "matched_control",
    "oracle",
    "born_again",
    "augmented",
)
#: What the energy term of the loss compares (``loss.energy``): E/N or the total E.
ENERGY_SCALES = ("per_atom", "total")
#: The ``x`` of ``student_wA<x>``: a non-negative number as ``f"{x:g}"`` writes it.
WA_VALUE_PATTERN = r"[0-9]+(?:\.[0-9]*)?(?:e[+-]?[0-9]+)?"


def role_pattern(*exclude: str) -> str:
    """Regular expression of the role names (Snakemake ``wildcard_constraints``), without
    the named roles in ``exclude``."""
    named = [r for r in NAMED_ROLES if r not in exclude]
    return "|".join([*named, f"student_wA{WA_VALUE_PATTERN}"])


#: Every role name (the ``role`` wildcard).
ROLE_PATTERN = role_pattern()
_STUDENT_WA = re.compile(f"^student_wA({WA_VALUE_PATTERN})$")


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
    ``augmented``: the role also trains on the teacher-generated augmentation set.
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
    augmented: bool = False

    def weights_at(self, epoch: int) -> LossWeights:
        """Weights used during 1-based ``epoch``."""
        if not self.schedule:
            return self.weights
        current = self.schedule[0][1]
        for first, w in self.schedule:
            if epoch >= first:
                current = w
        return current


def loss_energy(config: Mapping[str, Any]) -> str:
    """``loss.energy`` of ``config``: ``per_atom`` (E/N, eV/atom; absent = this) or ``total``
    (E, eV: the authors' scripts), for every role alike."""
    value = str(config["loss"].get("energy", "per_atom"))
    if value not in ENERGY_SCALES:
        raise UserInputError(f"loss.energy: {value!r} is not one of {', '.join(ENERGY_SCALES)}")
    return value


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
    if role == "augmented":
        return RolePlan(role, student, student, "teacher", max_epochs, augmented=True)
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
        f"unknown role {role!r} (expected {', '.join(NAMED_ROLES)} or student_wA<value>)"
    )
