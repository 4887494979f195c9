"""The roles: one registry (:data:`ROLES`) of what each role is — family, baselines, legend
and verdict order, style, the loss keys it reads — and what it trains (:func:`plan_role`:
loss weights, schedule, labels and epochs). Torch-free.

The Snakefile reads this module while it builds the DAG (which roles need teacher labels,
which role names are valid, which roles the ``students`` and ``controls`` targets train),
so it must not import torch or hippynn. The paired tables (:mod:`aedistill.analysis`,
:mod:`aedistill.study`), the figures (:mod:`aedistill.plots`) and the config check ask
here too: a new role is one :class:`RoleSpec` added to :data:`ROLES`
(tests/integration/test_new_role.py).

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

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aedistill.errors import UserInputError

#: What the energy term of the loss compares (``loss.energy``): E/N or the total E.
ENERGY_SCALES = ("per_atom", "total")
#: The ``x`` of ``student_wA<x>``: a non-negative number as ``f"{x:g}"`` writes it.
WA_VALUE_PATTERN = r"[0-9]+(?:\.[0-9]*)?(?:e[+-]?[0-9]+)?"
#: Prefix of the one family of role names, ``student_wA<x>`` (``grid.w_A_sweep``).
WA_PREFIX = "student_wA"
_STUDENT_WA = re.compile(f"^{WA_PREFIX}({WA_VALUE_PATTERN})$")


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
    return check_energy_scale(str(config["loss"].get("energy", "per_atom")))


def check_energy_scale(value: str) -> str:
    """``value`` if it is one of :data:`ENERGY_SCALES`, else a one-line error naming
    ``loss.energy``."""
    if value not in ENERGY_SCALES:
        raise UserInputError(f"loss.energy: {value!r} is not one of {', '.join(ENERGY_SCALES)}")
    return value


# --------------------------------------------------------------------------- the registry
#: What a weights function gets: the ``loss`` section and the role name.
WeightsFn = Callable[[Mapping[str, Any], str], LossWeights]


def _section(name: str) -> WeightsFn:
    """Weights read from ``loss.<name>`` (w_A 0 where the section has none)."""

    def weights(loss: Mapping[str, Any], role: str) -> LossWeights:
        w = loss[name]
        return LossWeights(float(w["w_E"]), float(w["w_F"]), float(w.get("w_A", 0.0)))

    return weights


def _matched(loss: Mapping[str, Any], role: str) -> LossWeights:
    return LossWeights(float(loss["control"]["w_E"]), float(loss["student"]["w_F"]))


def _swept(loss: Mapping[str, Any], role: str) -> LossWeights:
    st = loss["student"]
    return LossWeights(float(st["w_E"]), float(st["w_F"]), wa_value(role))


@dataclass(frozen=True)
class RoleSpec:
    """Everything the pipeline knows about one role (or the ``student_wA<x>`` family): the
    one place a role lives. The rules, the training, the tables and the figures ask here.

    * ``family``: ``teacher``, ``born_again``, ``student`` (roles of the ``students`` target)
      or ``control`` (the ``controls`` target; in a study, every grid role is compared with
      each control-family role);
    * ``grid``: trained on ``grid.architectures`` (else on the teacher's architecture);
    * ``baselines``: the roles this one is compared with in the paired tables, when present;
    * ``order``: legend order and the order of the paired comparisons; ``verdict_order``: the
      rows of the study verdict (baselines first); the w_A family sorts by w_A inside;
    * ``label``, ``marker``, ``colour`` (index in seaborn's colour-blind palette; None:
      black, or for the w_A family: colours by w_A rank, :mod:`aedistill.plots`);
    * ``loss``: the ``loss`` keys the role's weights read (``{section: keys}``), so that a
      training job gets only those (:mod:`aedistill.settings`); ``weights`` builds them;
    * ``labels``: None, ``teacher`` (teacher ε labels) or ``exact``; ``augmented``: also
      trains on the teacher-generated configurations.
    """

    name: str
    family: str
    label: str
    marker: str
    colour: int | None
    order: int
    verdict_order: int
    loss: Mapping[str, tuple[str, ...]]
    weights: WeightsFn | None = None
    grid: bool = True
    baselines: tuple[str, ...] = ()
    labels: str | None = None
    augmented: bool = False

    @property
    def sweep(self) -> bool:
        """The ``student_wA<x>`` family (one spec for every w_A value)."""
        return self.name == WA_PREFIX


_WEF = ("w_E", "w_F")
#: Every role, by name (``student_wA`` stands for the family ``student_wA<x>``).
ROLES: dict[str, RoleSpec] = {
    s.name: s
    for s in (
        RoleSpec(
            "teacher", "teacher", "teacher", "*", None, 0, 5, {"teacher": _WEF},
            _section("teacher"), grid=False,
        ),
        RoleSpec(
            "born_again", "born_again", "Born-Again", "P", 3, 1, 5, {}, grid=False,
            labels="teacher",
        ),
        RoleSpec(
            "student", "student", "student", "o", 0, 2, 2, {"student": (*_WEF, "w_A")},
            _section("student"), baselines=("control", "matched_control"), labels="teacher",
        ),
        RoleSpec("control", "control", "control", "s", 1, 3, 0, {"control": _WEF}, _section("control")),
        RoleSpec(
            "matched_control", "control", "matched control", "^", 2, 4, 1,
            {"control": ("w_E",), "student": ("w_F",)}, _matched, baselines=("control",),
        ),
        RoleSpec(
            "oracle", "student", "oracle (exact ε)", "D", 4, 5, 4,
            {"student": (*_WEF, "w_A")}, _section("student"), baselines=("control", "student"),
            labels="exact",
        ),
        RoleSpec(
            WA_PREFIX, "student", "student, w_A = {w_A}", "v", None, 7, 3, {"student": _WEF},
            _swept, baselines=("control",), labels="teacher",
        ),
        RoleSpec(
            "augmented", "student", "augmented (teacher MD data)", "h", 9, 6, 5,
            {"student": (*_WEF, "w_A")}, _section("student"), baselines=("control", "student"),
            labels="teacher", augmented=True,
        ),
    )
}  # fmt: skip


def named_roles() -> tuple[str, ...]:
    """Role names without the ``student_wA<x>`` family."""
    return tuple(name for name in ROLES if name != WA_PREFIX)


def grid_roles() -> tuple[str, ...]:
    """The names ``grid.roles`` may list."""
    return tuple(name for name, s in ROLES.items() if s.grid and name != WA_PREFIX)


def role_spec(role: str) -> RoleSpec:
    """The :class:`RoleSpec` of ``role`` (raises for unknown roles)."""
    if role in ROLES and role != WA_PREFIX:
        return ROLES[role]
    if _STUDENT_WA.match(role):
        return ROLES[WA_PREFIX]
    raise UserInputError(
        f"unknown role {role!r} (expected {', '.join(named_roles())} or {WA_PREFIX}<value>)"
    )


def is_known(role: str) -> bool:
    """Whether ``role`` names a role of :data:`ROLES`."""
    return (role in ROLES and role != WA_PREFIX) or bool(_STUDENT_WA.match(role))


def wa_value(role: str) -> float:
    """The w_A of a ``student_wA<x>`` name (inf for other names: they sort last)."""
    m = _STUDENT_WA.match(role)
    return float(m.group(1)) if m else math.inf


def wa_role(w_A: float) -> str:
    """The role name of the w_A sweep value ``w_A`` (``grid.w_A_sweep``)."""
    return f"{WA_PREFIX}{w_A:g}"


def role_pattern(*exclude: str) -> str:
    """Regular expression of the role names (Snakemake ``wildcard_constraints``), without
    the named roles in ``exclude``."""
    named = [r for r in named_roles() if r not in exclude]
    return "|".join([*named, f"{WA_PREFIX}{WA_VALUE_PATTERN}"])


def in_family(roles: Iterable[str], family: str) -> list[str]:
    """The roles of ``roles`` (in their order) whose family is ``family``."""
    return [r for r in roles if role_spec(r).family == family]


def ordered_roles(roles: Iterable[str]) -> list[str]:
    """Legend order: by :attr:`RoleSpec.order`, the w_A family by value, unknown names last
    (sorted)."""
    present = list(dict.fromkeys(roles))
    known = sorted(
        (r for r in present if is_known(r)), key=lambda r: (role_spec(r).order, wa_value(r))
    )
    return known + sorted(r for r in present if not is_known(r))


def verdict_key(role: str) -> tuple[int, float, str]:
    """Order of the study's verdict rows: :attr:`RoleSpec.verdict_order`, w_A by value."""
    if not is_known(role):
        return (max(s.verdict_order for s in ROLES.values()), 0.0, role)
    s = role_spec(role)
    return (s.verdict_order, wa_value(role) if s.sweep else 0.0, role)


def comparisons(roles: Iterable[str]) -> list[tuple[str, str]]:
    """(role, baseline) pairs among the roles present: every role against its first
    baseline (in legend order), then against its other baselines."""
    present = ordered_roles(r for r in roles if is_known(r))
    out = []
    for rank in (0, 1):
        for role in present:
            bases = role_spec(role).baselines
            chosen = bases[:1] if rank == 0 else bases[1:]
            out += [(role, b) for b in chosen if b in present]
    return out


def plan_role(config: Mapping[str, Any], role: str) -> RolePlan:
    """The :class:`RolePlan` of ``role`` under ``config`` (raises for unknown roles).

    Reads only the keys the role's :class:`RoleSpec` names (``config`` may be the role's
    settings, :func:`aedistill.settings.train_settings`)."""
    spec = role_spec(role)
    tr = config["training"]
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
    assert spec.weights is not None, role
    w = spec.weights(config["loss"], role)
    max_epochs = int(tr["max_epochs"])
    if role == "teacher":
        max_epochs = int(tr["teacher_max_epochs"] or max_epochs)
    return RolePlan(role, w, w, spec.labels, max_epochs, augmented=spec.augmented)
