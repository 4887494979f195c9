"""Shared test helpers: physics checks, the Snakemake runner of the workflow tests, and small
synthetic inputs (tables, an ANI-style archive, a short LAMMPS liquid).

Tests import these by name; fixtures built on them live in the ``conftest.py`` files.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterable
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

#: The Snakemake (and ``aedistill``) executables of the interpreter running the tests.
BIN = Path(sys.executable).parent


def assert_forces_are_minus_gradient(
    atoms, components: Iterable[tuple[int, int]], h: float = 1e-4, **tolerance
) -> None:
    """F = −∇E: the forces of ``atoms.calc`` at (atom, direction) ``components`` equal the
    central finite difference of its energy with step ``h`` (Å); ``tolerance`` as for
    ``pytest.approx`` around the force."""
    calc = atoms.calc
    forces = atoms.get_forces()
    for i, k in components:
        e = []
        for sign in (1, -1):
            probe = atoms.copy()
            probe.positions[i, k] += sign * h
            probe.calc = calc
            e.append(probe.get_potential_energy())
        assert -(e[0] - e[1]) / (2 * h) == pytest.approx(forces[i, k], **tolerance), (i, k)


# --------------------------------------------------------------------------- the workflow
def copy_workflow(repo: Path, dest: Path) -> Path:
    """A private copy of the workflow in ``dest`` so tests never touch the user's results/."""
    dest.mkdir(parents=True, exist_ok=True)
    for item in ("Snakefile", "workflow", "config", "envs", "profiles", "src"):
        src = repo / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / item)
    return dest


def run_snakemake(workdir: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """``snakemake *args`` in ``workdir``, killed (with its jobs) after ``timeout`` seconds
    (return code 124). Targets go before ``--configfile``, which takes several values."""
    env = os.environ | {"HIPPYNN_USE_CUSTOM_KERNELS": "_pytorch_raw", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        ["timeout", "-k", "5", str(timeout), str(BIN / "snakemake"), *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=env,
    )


def job_stats(r: subprocess.CompletedProcess) -> dict[str, int]:
    """{rule: number of jobs} of Snakemake's "Job stats" table ({} when nothing is to do)."""
    out = r.stdout + r.stderr
    if "Job stats:" not in out:
        return {}
    block = out.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m[0]: int(m[1]) for m in re.findall(r"^(\w+)\s+(\d+)$", block, re.M)}


# --------------------------------------------------------------------------- synthetic inputs
#: A short liquid-Al LAMMPS run (``lammps`` settings of :func:`aedistill.lammps.run_rdf`).
LIQUID = {
    "supercell": 4,
    "density": 2.375,
    "temperature": 1200.0,
    "timestep": 2.0,
    "melt_steps": 300,
    "equilibration_steps": 300,
    "production_steps": 600,
    "rdf_every": 20,
    "rdf_bins": 100,
    "rdf_rmax": 7.0,
}


ARCHS = [("L1-W8-S8", 1, 8, 8), ("L1-W16-S8", 1, 16, 8), ("L2-W32-S16", 2, 32, 16)]
TEACHER = ("L4-W128-S40", 4, 128, 40)


def synthetic_tables(
    seeds=(0, 1, 2, 3),
    roles=("student", "control"),
    epochs=12,
    rng_seed=0,
    archs=ARCHS,
    teacher=TEACHER,
) -> dict[str, pd.DataFrame]:
    """Small models/histories/efficiency/rdf tables with the contract's columns.

    Students are ~15 % more accurate than controls; cost grows with the number of weights.
    """
    rng = np.random.default_rng(rng_seed)
    models, hist, eff, rdf = [], [], [], []
    entries = [(r, a) for r in roles for a in archs]
    entries += [("teacher", teacher), ("born_again", teacher)]
    for role, (slug, L, W, S) in entries:
        n_w = 200 * W * L + 30 * W * S
        base_f = 0.02 + 2.0 / np.sqrt(n_w)
        factor = {"student": 0.85, "born_again": 0.9, "teacher": 1.0}.get(role, 1.0)
        for seed in seeds:
            f = base_f * factor * (1 + 0.03 * rng.standard_normal())
            e = 0.1 * f * (1 + 0.05 * rng.standard_normal())
            models.append(
                dict(
                    run="synthetic",
                    role=role,
                    arch=slug,
                    atom_layers=L,
                    width=W,
                    sensitivities=S,
                    seed=seed,
                    n_weights=n_w,
                    epochs=epochs,
                    best_epoch=epochs - 1,
                    train_time_s=10.0,
                    test_e_rmse=e,
                    test_e_mae=0.8 * e,
                    test_f_rmse=f,
                    test_f_mae=0.8 * f,
                    test_eps_rmse=np.nan,
                    test_eps_true_rmse=np.nan,
                )
            )
            for ep in range(1, epochs + 1):
                tr = f * (1 + 3.0 / ep)
                hist.append(
                    dict(
                        role=role,
                        arch=slug,
                        seed=seed,
                        epoch=ep,
                        lr=1e-3,
                        train_f_rmse=tr,
                        valid_f_rmse=tr * 1.1,
                        train_e_rmse=0.1 * tr,
                        valid_e_rmse=0.11 * tr,
                    )
                )
            if seed == 0:
                eff.append(
                    dict(
                        role=role,
                        arch=slug,
                        seed=seed,
                        n_weights=n_w,
                        time_per_step_per_atom_s=1e-6 * (5 + n_w / 2000),
                        bytes_per_atom=2000 + 0.5 * n_w,
                        lammps_time_per_step_per_atom_s=0.5e-6 * (5 + n_w / 2000),
                    )
                )
                if role != "teacher":
                    rdf.append(
                        dict(
                            role=role,
                            arch=slug,
                            seed=seed,
                            reference=f"teacher/{teacher[0]}/seed0",
                            rdf_error_A=5 * f,
                            rdf_error_vs_exp_A=0.3 + 5 * f,
                            first_peak_A=2.75,
                        )
                    )
    return dict(
        models=pd.DataFrame(models),
        histories=pd.DataFrame(hist),
        efficiency=pd.DataFrame(eff),
        rdf_errors=pd.DataFrame(rdf),
    )


def write_ani_h5(path, rng):
    """Two leaf groups in pyanitools layout; energies in Hartree, forces in Hartree/Å."""
    truth = []
    with h5py.File(path, "w") as f:
        for g, n_atoms in (("Al/conf_a", 8), ("Al/conf_b", 12)):
            n = 3
            grp = f.create_group(g)
            a = 4.05 * (2 if n_atoms == 8 else 3)
            coords = rng.uniform(0, a, size=(n, n_atoms, 3))
            cell = np.repeat(np.eye(3)[None] * a, n, axis=0)
            e_ha = -2.7058640291888105 * n_atoms + rng.normal(0, 0.01, n)
            f_ha = rng.normal(0, 0.01, size=(n, n_atoms, 3))
            grp.create_dataset("coordinates", data=coords)
            grp.create_dataset("cell", data=cell)
            grp.create_dataset("energy", data=e_ha)
            grp.create_dataset("force", data=f_ha)
            grp.create_dataset("species", data=np.array([b"Al"] * n_atoms))
            truth.append((n_atoms, e_ha, f_ha))
    return truth


def make_ani_archive(tmp_path, rng):
    src = tmp_path / "src"
    (src / "data").mkdir(parents=True)
    truth = write_ani_h5(src / "data" / "Al-data.h5", rng)
    archive = tmp_path / "Al-data.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "data", arcname="data")
    return archive, truth
