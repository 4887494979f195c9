"""The RDF reference as Snakemake chooses it (config/test.yaml, fake liquids, no LAMMPS):
when teacher seed 0's liquid fused, rdf_errors asks for seed 1's liquid (lammps_rdf is a
checkpoint) and measures every model against it; an unfused seed 0 stays the reference and
seed 1's liquid is never asked for. Only rdf_errors runs (--allowed-rules; the liquids are
written beforehand)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"
    cmd = [exe, "results/test/tables/rdf_errors.csv", *args]
    cmd += ["-s", str(REPO / "Snakefile"), "-d", str(workdir), "-c1"]
    cmd += ["--configfile", str(REPO / "config" / "test.yaml"), "--allowed-rules", "rdf_errors"]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)


def _slug(a: dict) -> str:
    return "L{atom_layers}-W{width}-S{sensitivities}".format(**a)


def _write_liquids(workdir: Path, fused_teachers: set[int], teachers=(0,)) -> str:
    """rdf.csv of every RDF model of config/test.yaml (seed 0 of teacher, Born-Again,
    student and control) and of the teacher seeds ``teachers``; the teachers in
    ``fused_teachers`` have pairs at 0.25 Å. Returns the teacher's arch slug."""
    cfg = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    teacher, grid = _slug(cfg["teachers"]["arch"]), _slug(cfg["grid"]["architectures"][0])
    r = np.linspace(0.05, 4.95, 50)
    liquid = np.where(r < 2.0, 0.0, 1 + np.exp(-((r - 2.8) ** 2) / 0.05))
    models = [("teacher", teacher, s) for s in teachers]
    models += [("born_again", teacher, 0), ("student", grid, 0), ("control", grid, 0)]
    for role, arch, seed in models:
        g = liquid.copy()
        if role == "teacher" and seed in fused_teachers:
            g[2] = 30.0  # r = 0.25 Å
        if role == "student":
            g[g > 0] += 0.2
        d = workdir / "results" / cfg["run_name"] / "lammps" / role / arch / f"seed{seed}"
        d.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"r_A": r, "g": g}).to_csv(d / "rdf.csv", index=False)
        (d / "timing.json").write_text("{}")  # the RDF run's other output
    return teacher


@pytest.mark.slow
def test_a_fused_reference_teacher_is_replaced_by_the_next_member(tmp_path):
    teacher = _write_liquids(tmp_path, fused_teachers={0})
    # seed 1's liquid is needed and missing: Snakemake plans its LAMMPS run (and what that
    # needs; the checkpoint's new jobs are not held to --allowed-rules)
    res = _snakemake(tmp_path, "-n")
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"LAMMPS liquid-Al g(r): teacher {teacher} seed 1" in res.stdout
    _write_liquids(tmp_path, fused_teachers={0}, teachers=(1,))
    res = _snakemake(tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    table = pd.read_csv(tmp_path / "results" / "test" / "tables" / "rdf_errors.csv")
    table = table.set_index(["role", "seed"])
    assert set(table["reference"]) == {f"teacher/{teacher}/seed1"}
    assert set(table["skipped_references"]) == {f"teacher/{teacher}/seed0 (0.25 Å)"}
    assert table.loc[("teacher", 0), "fused"] and not table.loc[("teacher", 1), "fused"]
    assert table.loc[("student", 0), "rdf_error_A"] == pytest.approx(0.2 * 30 * 0.1)
    log = (tmp_path / "logs" / "test" / "tables" / "rdf_errors.csv.log").read_text()
    assert f"reference teacher/{teacher}/seed1: the liquid of teacher/{teacher}/seed0" in log


@pytest.mark.slow
def test_an_unfused_reference_teacher_needs_no_other_member(tmp_path):
    teacher = _write_liquids(tmp_path, fused_teachers=set())
    res = _snakemake(tmp_path, "-n")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "LAMMPS liquid-Al g(r)" not in res.stdout
    res = _snakemake(tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    table = pd.read_csv(tmp_path / "results" / "test" / "tables" / "rdf_errors.csv")
    assert set(table["reference"]) == {f"teacher/{teacher}/seed0"}
    assert ("teacher", 1) not in set(zip(table["role"], table["seed"], strict=True))
