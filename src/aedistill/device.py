"""Which device a job's torch code runs on, and hippynn's kernels for it.

``training.device`` (auto | cpu | cuda) and ``efficiency.device`` (cpu | cuda) name a device;
:func:`resolve_device` turns one into ``cpu`` or ``cuda``: ``auto`` takes CUDA when torch sees
a device, and **warns** when it falls back to the CPU in a job that SLURM or the user gave a
GPU (``CUDA_VISIBLE_DEVICES``, ``SLURM_*GPUS*``): a CPU-only torch build or a driver that
does not match the build trains on the CPU for days without that line. ``cuda`` without a
device stops the job with one line.

hippynn's custom kernels (``HIPPYNN_USE_CUSTOM_KERNELS``, read once when hippynn is imported):
``_pytorch_raw`` for jobs on the CPU, where it measured 20x faster than hippynn's default
there (numba): one force call of hippynn's ASE calculator on 256 atoms, 1 thread, 61 vs
1,404 ms (L1-W8-S4) and 77 vs 1,672 ms (L2-W64-S20) (``OMP_NUM_THREADS=1 python
bench/hippynn_kernels.py``, a loaded 2-core machine, 2026-12-02). Jobs on CUDA get hippynn's
own choice (its GPU kernels; unmeasured here: no GPU). A value the user exported wins either
way.

Torch is imported only when the answer needs it (``auto``), so that jobs without torch
(tables, figures) stay fast.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from aedistill.errors import UserInputError

log = logging.getLogger(__name__)

KERNELS_VAR = "HIPPYNN_USE_CUSTOM_KERNELS"
#: hippynn's kernels where a job runs on the CPU (measured faster there)
CPU_KERNELS = "_pytorch_raw"
#: variables that say this process was given a GPU (SLURM sets the SLURM_* ones with --gpus)
GPU_ENV_VARS = (
    "CUDA_VISIBLE_DEVICES",
    "SLURM_GPUS",
    "SLURM_GPUS_ON_NODE",
    "SLURM_JOB_GPUS",
    "SLURM_STEP_GPUS",
    "SLURM_GPUS_PER_NODE",
)
#: those that hold a GPU count (0 = none); the others hold device indices ("0" = GPU 0)
_COUNT_VARS = {"SLURM_GPUS", "SLURM_GPUS_ON_NODE", "SLURM_GPUS_PER_NODE"}
_NO_GPU_VALUES = {"", "-1", "none", "nodevfiles"}


def assigned_gpu(env: Mapping[str, str] | None = None) -> str | None:
    """``VAR=value`` of the first variable saying this process was given a GPU, else None."""
    env = os.environ if env is None else env
    for var in GPU_ENV_VARS:
        value = env.get(var)
        if value is None or value.strip().lower() in _NO_GPU_VALUES:
            continue
        if var in _COUNT_VARS and value.strip().rsplit(":", 1)[-1] == "0":
            continue
        return f"{var}={value}"
    return None


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _torch_build() -> str:
    import torch

    cuda = torch.version.cuda
    return f"torch {torch.__version__}, " + (
        f"built for CUDA {cuda}" if cuda else "a CPU-only build"
    )


def resolve_device(
    requested: str,
    cuda_available: bool | None = None,
    key: str = "training.device",
    env: Mapping[str, str] | None = None,
    announce: bool = True,
) -> str:
    """``requested`` (auto | cpu | cuda, the value of config ``key``) as ``cpu`` or ``cuda``.

    auto = cuda when torch sees a CUDA device, else cpu, with a warning in the job's log when
    the job was given a GPU all the same (:func:`assigned_gpu`); cuda without a device is a
    :class:`UserInputError` naming ``key``. With ``announce`` the choice is logged (INFO: the
    job's log says where it ran).
    """
    if requested not in ("auto", "cpu", "cuda"):
        raise UserInputError(f"{key}: {requested!r} is not one of auto, cpu, cuda")
    if cuda_available is None and requested != "cpu":
        cuda_available = _cuda_available()
    device = _choose(requested, bool(cuda_available), key, env)
    if announce:
        log.info("%s %s: running on %s", key, requested, _describe(device))
    return device


def _describe(device: str) -> str:
    if device != "cuda":
        return device
    try:
        import torch

        return f"cuda ({torch.cuda.get_device_name(0)})"
    except Exception:  # a name is a nicety; the device was already chosen
        return "cuda"


def _choose(requested: str, cuda_available: bool, key: str, env: Mapping[str, str] | None) -> str:
    if requested == "cpu":
        return "cpu"
    if cuda_available:
        return "cuda"
    if requested == "cuda":
        raise UserInputError(
            f"{key} is 'cuda' but torch sees no CUDA device (run on a GPU node, use auto or "
            "cpu, or a CUDA build of torch: TORCH_SPEC)"
        )
    given = assigned_gpu(env)
    if given:
        log.warning(
            "%s is auto and torch sees no CUDA device although this job was given a GPU (%s; "
            "%s): running on the CPU. Check `aedistill gpu-check` on this node.",
            key,
            given,
            _torch_build(),
        )
    return "cpu"


def requested_device(params_config: Mapping[str, Any] | None) -> str:
    """The device a job's config sections ask for: ``training.device`` for training jobs,
    ``efficiency.device`` for timing and memory jobs, else ``cpu`` (every other job runs on
    the CPU)."""
    params_config = params_config or {}
    for section in ("training", "efficiency"):
        value = (params_config.get(section) or {}).get("device")
        if value is not None:
            return str(value)
    return "cpu"


def set_kernels(device: str, env: dict[str, str] | None = None) -> str | None:
    """Set ``HIPPYNN_USE_CUSTOM_KERNELS`` for a job on ``device`` (before hippynn is imported):
    ``_pytorch_raw`` on the CPU unless the user set it; on CUDA leave hippynn's choice.
    Returns the value now in effect (None = hippynn's default)."""
    env = os.environ if env is None else env
    if device == "cpu":
        env.setdefault(KERNELS_VAR, CPU_KERNELS)
    return env.get(KERNELS_VAR)


def job_device(params_config: Mapping[str, Any] | None) -> str:
    """``cpu`` or ``cuda``: where a job with these config sections runs its torch code. An
    unusable request (cuda without a device) answers ``cpu`` here; the job itself stops on it
    with its one line."""
    requested = requested_device(params_config)
    if requested == "cpu":
        return "cpu"
    try:
        # no warning or log line here: the job resolves its device itself and says so
        return resolve_device(requested, env={}, announce=False)
    except UserInputError:
        return "cpu"
