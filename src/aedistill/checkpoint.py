"""``checkpoint.pt``: the progress of an interrupted training, written and read by one pair.

A checkpoint holds a training's state (its epoch loop's ``state_dict``: :mod:`aedistill.training`)
and an *identity* (role, architecture, seed, model spec, loss and the training settings that
must not change between an interruption and its resumption). :func:`load_checkpoint` returns
the state only for the same identity and format; anything else is ignored (with a warning)
and the training starts again.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch

from aedistill.io import atomic_path

log = logging.getLogger(__name__)

FORMAT = "aedistill-checkpoint-1"


def save_checkpoint(
    path: str | os.PathLike[str], identity: dict[str, Any], state: dict[str, Any]
) -> None:
    """Write ``state`` under ``identity`` to ``path`` (atomically: temp file + rename)."""
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "identity": identity, **state}, tmp)


def load_checkpoint(
    path: str | os.PathLike[str], identity: dict[str, Any]
) -> dict[str, Any] | None:
    """The state :func:`save_checkpoint` wrote to ``path`` under the same ``identity``; None
    when there is no such file, or it is unreadable, of another format or another identity."""
    if not os.path.exists(path):
        return None
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        log.warning("ignoring unreadable checkpoint %s (%s)", path, exc)
        return None
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        log.warning("ignoring checkpoint %s of another format", path)
        return None
    if ck["identity"] != identity:
        log.warning("ignoring checkpoint %s of another model/config", path)
        return None
    return {k: v for k, v in ck.items() if k not in ("format", "identity")}
