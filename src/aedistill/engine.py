"""Which engine trains a model, and on which device: the one place that decides.

Two engines train the same HIPNN with the same loss (:mod:`aedistill.training` runs both):

* ``fast`` (:mod:`aedistill.fast`): CPU only, several models of one architecture as one
  stack; supports one interaction layer (``model.interaction_layers: 1``);
* ``hippynn``: hippynn's own training graph and loop, on the CPU or a CUDA GPU.

:func:`choose_engine` gives the engine of one model: the configured one, except that a
model the fast engine cannot train (on a GPU, or an architecture it does not support) falls
back to hippynn. Per-model jobs, stack jobs and the rules (:func:`grid_in_stacks`) ask it;
:func:`check_engine_config` refuses contradictory settings at config check. Torch-free at
import: the rules import this module.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from aedistill.errors import UserInputError

log = logging.getLogger(__name__)

ENGINES = ("fast", "hippynn")

#: the ``engine`` value of metrics.json (the run record) for each configured engine
RECORDED_NAME = {"fast": "fasttrain", "hippynn": "hippynn"}


def fast_unsupported(config: Mapping[str, Any]) -> str | None:
    """Why the fast engine cannot train the models of ``config`` (None: it can). What the
    config can vary; :class:`aedistill.fast.StackLayout` checks the built modules as well."""
    n = int(config["model"]["interaction_layers"])
    if n != 1:
        return f"model.interaction_layers is {n} (the fast engine supports 1)"
    return None


def choose_engine(config: Mapping[str, Any], arch: Any, device: str) -> str:
    """The engine ("fast" or "hippynn") that trains ``arch`` on the resolved ``device``
    (cpu | cuda): ``training.engine``, or hippynn where the fast engine cannot (a GPU, an
    unsupported model; logged)."""
    engine = config["training"]["engine"]
    if engine == "hippynn":
        return "hippynn"
    why = "it runs on the CPU only" if device != "cpu" else fast_unsupported(config)
    if why is not None:
        log.info(
            "training.engine fast cannot train %s on %s (%s): using hippynn", arch, device, why
        )
        return "hippynn"
    return "fast"


def grid_in_stacks(config: Mapping[str, Any]) -> bool:
    """Whether the rules train each grid architecture as one stack job (``training.stack_grid``
    with the fast engine). Decided without torch, so ``device: auto`` counts as the CPU: a
    stack job that finds a GPU trains its members on it with hippynn, one after another."""
    tr = config["training"]
    return bool(tr["stack_grid"]) and tr["engine"] == "fast" and tr["device"] != "cuda"


def check_engine_config(config: Mapping[str, Any], where: str = "config") -> None:
    """Refuse contradictory engine settings in one line (:func:`aedistill.config.check_semantics`)."""
    tr = config["training"]
    if tr["engine"] == "fast" and tr["device"] == "cuda":
        raise UserInputError(
            f"{where}: key 'training': engine 'fast' runs on the CPU only but device is 'cuda' "
            "(use engine hippynn on a GPU, or device auto: fast on a CPU, hippynn on a GPU)"
        )
    if tr["stack_grid"] and tr["engine"] != "fast":
        raise UserInputError(
            f"{where}: key 'training': stack_grid trains the grid in stacks of the fast engine "
            f"but engine is {tr['engine']!r} (set stack_grid: false, or engine: fast)"
        )
