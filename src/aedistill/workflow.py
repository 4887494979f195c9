"""Helpers for the ``workflow/scripts`` shims: logging, threads, user-error reporting."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

from aedistill.device import job_device, set_kernels
from aedistill.errors import UserInputError


def set_threads(threads: int, device: str = "cpu") -> None:
    """Pin BLAS/OpenMP/torch threads to the job's Snakemake ``threads``; hippynn's kernels for
    a job on ``device`` (:func:`aedistill.device.set_kernels`: ``_pytorch_raw`` on the CPU,
    hippynn's own on CUDA)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    set_kernels(device)
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(threads)


@contextlib.contextmanager
def script_logging(smk: Any) -> Iterator[logging.Logger]:
    """Log to the rule's log file (and stderr); turn a UserInputError into one line + exit 1.

    Threads are pinned from ``smk.threads``, and hippynn's kernels chosen for the device the
    job's config sections ask for (``params.config``), before the job imports hippynn.
    """
    config = getattr(getattr(smk, "params", None), "config", None)
    set_threads(int(getattr(smk, "threads", 1) or 1), job_device(config))
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    log_files = list(getattr(smk, "log", []) or [])
    if log_files:
        os.makedirs(os.path.dirname(os.path.abspath(log_files[0])), exist_ok=True)
        handlers.append(logging.FileHandler(log_files[0], mode="w"))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    logger = logging.getLogger("aedistill")
    try:
        yield logger
    except UserInputError as exc:
        logger.error("%s", exc)
        raise SystemExit(f"error: {exc}") from None
