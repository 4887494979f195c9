"""LAMMPS stage: ML-IAP export equals the ASE calculator; liquid-Al RDF physics.

Needs the LAMMPS Python module with ML-IAP + PYTHON + MEAM (scripts/install_lammps.sh);
under CI=true a missing module fails these tests instead of skipping them.
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest
from ase.build import bulk

from aedistill.arch import Arch
from aedistill.errors import UserInputError
from tests.helpers import LIQUID

pytestmark = [pytest.mark.lammps, pytest.mark.usefixtures("lammps_module")]


def _model(tmp_path, name: str, arch: Arch, l_max: int = 1, interaction_layers: int = 1):
    from aedistill.models import ModelSpec, build_training_graph, save_model

    spec = ModelSpec(arch=arch, species=(13,), l_max=l_max, interaction_layers=interaction_layers)
    path = tmp_path / f"{name}.pt"
    save_model(path, spec, build_training_graph(spec, seed=0))
    return path


def _structures():
    rng = np.random.default_rng(0)
    cubic = bulk("Al", "fcc", a=4.05, cubic=True).repeat(3)
    cubic.set_cell(cubic.cell[:] @ (np.eye(3) + 0.03 * rng.normal(size=(3, 3))), scale_atoms=True)
    cubic.positions += rng.normal(0, 0.15, cubic.positions.shape)
    # primitive (triclinic) cell, rotated away from LAMMPS' orientation
    prim = bulk("Al", "fcc", a=4.1).repeat((4, 4, 4))
    prim.rotate(30, "z", rotate_cell=True)
    prim.positions += rng.normal(0, 0.15, prim.positions.shape)
    return {"cubic_strained": cubic, "primitive_rotated": prim}


@pytest.mark.parametrize(
    "arch,l_max",
    [(Arch(3, 32, 16), 1), (Arch(1, 8, 4), 1), (Arch(1, 8, 4), 0)],
    ids=["teacher-like", "student-like", "student-like-lmax0"],
)
@pytest.mark.parametrize(
    "implementation,attach,comm",
    [
        ("fast", True, True),
        ("fast", False, True),
        ("fast", True, False),
        ("fast", False, False),
        ("hippynn", True, None),
    ],
    ids=["fast-attached", "fast-from-file", "fast-owners", "fast-full-list", "hippynn"],
)
def test_lammps_equals_ase_calculator(
    tmp_path, monkeypatch, arch, l_max, implementation, attach, comm
):
    """The three neighbour-list paths of the fast model (aedistill.mliap_model): the patched
    ML-IAP's half list, attached (one process: ghost owners from the atom tags,
    ``fast-attached``) or loaded by LAMMPS from the file as in a user's input script (ghost
    communication, ``fast-from-file``); without the communication (the model declares no
    ``comm_columns``, as with a LAMMPS patched without it) the half list with ghost owners
    (``fast-owners``) or, loaded from the file, a full list with each pair to a ghost
    evaluated from both sides."""
    from aedistill.lammps import export_mliap, lammps_energy_forces
    from aedistill.mliap_model import FastMLIAPModel
    from aedistill.models import make_calculator

    lists = []  # the kind of neighbour list each fast-model call got
    compute = FastMLIAPModel.compute_forces

    def spy(self, data):
        lists.append(("half" if self.half_list else "full", self.ghost_comm))
        compute(self, data)

    monkeypatch.setattr(FastMLIAPModel, "compute_forces", spy)
    if comm is False:
        monkeypatch.setattr(FastMLIAPModel, "comm_columns", 0)

    model = _model(tmp_path, "m", arch, l_max)
    mliap = export_mliap(model, tmp_path / "m.mliap.pt", implementation)
    calc = make_calculator(model)
    for name, atoms in _structures().items():
        e_lmp, f_lmp = lammps_energy_forces(mliap, atoms, attach=attach)
        ref = atoms.copy()
        ref.calc = calc
        e_ase, f_ase = ref.get_potential_energy(), ref.get_forces()
        assert np.abs(f_ase).max() > 0.05, "forces too small for a meaningful comparison"
        assert np.abs(f_lmp - f_ase).max() <= 1e-4, name
        assert abs(e_lmp - e_ase) / len(atoms) <= 1e-5, name
    if implementation == "fast":
        assert set(lists) == {("half" if comm or attach else "full", comm)}


def test_fast_model_asks_for_a_half_list_where_it_is_correct(tmp_path):
    """A half list is correct where ghosts' environment sums reach their owners (the patched
    ML-IAP's communication: any number of MPI processes) or, without it, where every ghost's
    owner is local (one process, owners from the atom tags); the request and LAMMPS' answers
    are per run, never saved with the model."""
    import torch

    from aedistill.lammps import export_mliap

    class FakeLammps:
        def __init__(self, world_size):
            self.world_size = world_size

        def extract_setting(self, name):
            assert name == "world_size"
            return self.world_size

    path = export_mliap(_model(tmp_path, "m", Arch(1, 8, 4)), tmp_path / "m.mliap.pt", "fast")
    model = torch.load(path, weights_only=False)
    # environment sum per atom: 1 species x 4 sensitivities x (scalar + 3 vector components)
    assert model.comm_columns == 16
    assert not model.request_half_list and not model.half_list  # loaded from the file alone
    model.attach(FakeLammps(1))
    assert model.request_half_list and not model.half_list  # until LAMMPS answers
    model.attach(FakeLammps(4))
    assert not model.request_half_list and not model.half_list
    model.ghost_comm = True  # what the patched ML-IAP says when it loads the model
    assert model.request_half_list
    model.half_list = True
    model.interface = lambda: None  # ML-IAP's handle of a run: not picklable
    again = pickle.loads(pickle.dumps(model))  # a model used in a run can still be saved
    assert again.interface is None and not again.request_half_list and not again.half_list
    assert not again.ghost_comm


@pytest.mark.parametrize("implementation", ["fast", "hippynn"])
def test_two_interaction_layers_are_refused(tmp_path, implementation):
    from aedistill.lammps import export_mliap

    model = _model(tmp_path, "deep", Arch(1, 8, 4), interaction_layers=2)
    with pytest.raises(UserInputError, match="interaction layers"):
        export_mliap(model, tmp_path / "deep.mliap.pt", implementation)
    assert not (tmp_path / "deep.mliap.pt").exists()


def test_meam_liquid_rdf_physics(tmp_path):
    """Liquid Al at 1200 K (MEAM reference potential): first peak 2.7-2.9 Å (experiment
    ≈ 2.8 Å), g → 1 at large r, a liquid (no crystalline order: first minimum well above 0)."""
    from aedistill.data.meam import meam_pair_commands
    from aedistill.rdf import first_peak, read_rdf
    from aedistill.rdf_run import run_rdf

    timing = run_rdf(
        None,
        LIQUID,
        tmp_path / "rdf.csv",
        tmp_path / "timing.json",
        pair_commands=meam_pair_commands(),
    )
    r, g = read_rdf(tmp_path / "rdf.csv")
    assert len(r) == 100 and r.max() < 7.0
    assert 2.7 <= first_peak(r, g) <= 2.9
    assert abs(g[r >= 4.0].mean() - 1.0) < 0.05
    assert np.abs(g[r >= 6.0] - 1.0).max() < 0.35 < g.max() - 1.0
    peak = int(np.argmax(g))
    assert g[peak : peak + 20].min() > 0.2  # liquid: the first minimum is not empty
    assert np.all(g[r < 2.0] == 0.0)  # no atoms closer than 2 Å
    on_disk = json.loads((tmp_path / "timing.json").read_text())
    assert on_disk["n_atoms"] == 256 and on_disk["steps"] == 600 and on_disk["threads"] == 1
    assert on_disk["time_per_step_per_atom_s"] > 0
    assert abs(timing["temperature_mean_K"] - 1200) < 100


def test_mliap_rdf_run_writes_outputs(tmp_path):
    """The pipeline path: an exported (untrained) model through the whole melt/NVT protocol."""
    from aedistill.lammps import export_mliap
    from aedistill.rdf_run import run_rdf

    mliap = export_mliap(_model(tmp_path, "s", Arch(1, 8, 4)), tmp_path / "s.mliap.pt")
    settings = {
        **LIQUID,
        "supercell": 3,
        "rdf_rmax": 5.0,
        "rdf_bins": 50,
        "melt_steps": 5,
        "equilibration_steps": 5,
        "production_steps": 10,
        "rdf_every": 5,
        "timestep": 0.5,
    }
    timing = run_rdf(mliap, settings, tmp_path / "rdf.csv", tmp_path / "timing.json")
    df = pd.read_csv(tmp_path / "rdf.csv")
    assert list(df.columns) == ["r_A", "g", "g_even", "g_odd"] and len(df) == 50
    assert np.all(np.isfinite(df["g"])) and df["g"].max() > 0
    # two frames: g is the mean of the even (first) and odd (second) frame's g
    np.testing.assert_allclose(0.5 * (df["g_even"] + df["g_odd"]), df["g"])
    assert timing["n_atoms"] == 108 and timing["frames"] == 2


@pytest.mark.slow
def test_default_teacher_liquid_first_peak(tmp_path, repo):
    """The default config's teacher (seed 0, trained exactly as `make run` trains it on the
    default EMT data) melts into liquid Al at 1200 K with the first g(r) peak at 2.7-2.9 Å,
    run through LAMMPS with the default LAMMPS settings and the default (fast) export."""
    from aedistill.config import load_config
    from aedistill.data.build import run as build
    from aedistill.lammps import export_mliap
    from aedistill.rdf import LIQUID_AL_FIRST_PEAK_A, first_peak, read_rdf
    from aedistill.rdf_run import run_rdf
    from aedistill.training import run as train

    config = load_config(repo / "config" / "config.yaml")
    data = tmp_path / "data"
    build(config, data / "dataset.h5", data / "split.json", data / "summary.json", data / "cache")
    slug = Arch(**config["teachers"]["arch"]).slug
    model = tmp_path / "teacher" / "model.pt"
    res = train(config, "teacher", slug, 0, data / "dataset.h5", data / "split.json", model)
    # the default teacher converges: stopped by the termination patience, under the ceiling
    tr = config["training"]
    assert res.metrics["stop_reason"] == "termination_patience" and res.metrics["converged"]
    assert res.metrics["epochs"] < (tr["teacher_max_epochs"] or tr["max_epochs"])
    mliap = export_mliap(model, tmp_path / "teacher.mliap.pt", config["lammps"]["implementation"])
    timing = run_rdf(mliap, config["lammps"], tmp_path / "rdf.csv", tmp_path / "timing.json")
    r, g = read_rdf(tmp_path / "rdf.csv")
    lo, hi = LIQUID_AL_FIRST_PEAK_A
    assert lo <= first_peak(r, g) <= hi, first_peak(r, g)
    assert abs(g[r >= 5.0].mean() - 1.0) < 0.05  # g(r) -> 1 at large r
    assert abs(timing["temperature_mean_K"] - config["lammps"]["temperature"]) < 100


def _nve_positions(mliap, atoms, steps: int, virial: bool, extra=(), runs: int = 1) -> np.ndarray:
    """Positions after ``steps`` NVE steps in LAMMPS; ``virial``: per-atom virials on every
    step (compute stress/atom, summed into the thermo output, thermo 1), so that every force
    call tallies a virial pair by pair; ``extra``: commands before the run; ``runs``: the
    steps as that many ``run`` commands (each a new setup: list build, LAMMPS' count of
    list builds from 0 again)."""
    from ase.data import atomic_masses

    from aedistill.lammps import (
        box_commands,
        gather_by_id,
        lammps_box,
        mliap_pair_commands,
        new_lammps,
        wrapped_lammps_positions,
    )

    lcell, rot = lammps_box(atoms.cell[:])
    lmp = new_lammps()
    try:
        cmds = ["units metal", "atom_style atomic", "atom_modify map array sort 0 0.0"]
        cmds += box_commands(lcell, 1)
        cmds += [f"mass 1 {atomic_masses[13]}", *mliap_pair_commands(lmp, mliap, ["Al"])]
        lmp.commands_string("\n".join(cmds))
        n = len(atoms)
        x = wrapped_lammps_positions(atoms.positions, rot, lcell)
        lmp.create_atoms(n, list(range(1, n + 1)), [1] * n, x.ravel().tolist())
        thermo = (
            [
                "compute sa all stress/atom NULL virial",
                "compute sv all reduce sum c_sa[1]",
                "thermo_style custom step pe c_sv",
                "thermo 1",
            ]
            if virial
            else ["thermo 0", "thermo_style custom step pe"]
        )
        lmp.commands_string(
            "\n".join(
                ["velocity all create 600 7 loop geom", "timestep 0.002", "fix 1 all nve"]
                + thermo
                + list(extra)
                + [f"run {steps // runs}"] * runs
            )
        )
        return gather_by_id(lmp, "x", n)
    finally:
        lmp.close()


def _spy_evaluate(monkeypatch, keyword: str) -> list[bool]:
    """Record, for every FastPairModel.evaluate call, whether ``keyword`` was passed (not
    None); the list is filled as LAMMPS calls the model."""
    from aedistill.fastpair import FastPairModel

    calls: list[bool] = []
    evaluate = FastPairModel.evaluate

    def spy(self, *args, **kwargs):
        calls.append(kwargs.get(keyword) is not None)
        return evaluate(self, *args, **kwargs)

    monkeypatch.setattr(FastPairModel, "evaluate", spy)
    return calls


def test_lammps_direct_forces_equal_pair_forces(tmp_path, monkeypatch):
    """On steps without a virial to tally pair by pair the fast model adds its pair forces to
    LAMMPS' forces itself (FastPairModel.evaluate(forces=...)) instead of ML-IAP's
    update_pair_forces: the same NVE trajectory as with per-atom virials on every step
    (update_pair_forces throughout)."""
    from aedistill.lammps import export_mliap

    direct = _spy_evaluate(monkeypatch, "forces")
    mliap = export_mliap(_model(tmp_path, "m", Arch(1, 8, 4)), tmp_path / "m.mliap.pt", "fast")
    atoms = _structures()["cubic_strained"]
    x_pair = _nve_positions(mliap, atoms, 20, virial=True)
    assert direct and not any(direct)
    direct.clear()
    x_direct = _nve_positions(mliap, atoms, 20, virial=False)
    assert sum(direct) >= 19
    assert np.abs(x_direct - x_pair).max() <= 1e-9


def test_one_process_owners_equal_ghost_communication(tmp_path, monkeypatch):
    """Attached on one process, the fast model maps each ghost to its local owner (atom
    tags) instead of communicating ghost rows (FastMLIAPModel.owners_over_comm): the same
    energy and forces as the ghost-communication path to 1e-10, and the same NVE trajectory
    across neighbour-list rebuilds and atom sorts, which renew the cached owner map."""
    from aedistill.lammps import export_mliap, lammps_energy_forces
    from aedistill.mliap_model import FastMLIAPModel

    comm_calls = _spy_evaluate(monkeypatch, "ghost_comm")
    owners = FastMLIAPModel._owners
    computed = []

    def count(self, data, iatoms, list_key=None):
        cached = self.__dict__.get("_owner_cache")
        out = owners(self, data, iatoms, list_key)
        computed.append(self.__dict__.get("_owner_cache") is not cached)
        return out

    monkeypatch.setattr(FastMLIAPModel, "_owners", count)
    mliap = export_mliap(_model(tmp_path, "m", Arch(1, 8, 4)), tmp_path / "m.mliap.pt", "fast")
    results = {}
    for over in (True, False):
        monkeypatch.setattr(FastMLIAPModel, "owners_over_comm", over)
        comm_calls.clear()
        for name, atoms in _structures().items():
            results[over, name] = lammps_energy_forces(mliap, atoms, attach=True)
        assert comm_calls and set(comm_calls) == {not over}
    for name in _structures():
        (e_own, f_own), (e_comm, f_comm) = results[True, name], results[False, name]
        assert abs(e_own - e_comm) <= 1e-10 * abs(e_comm), name
        assert np.abs(f_own - f_comm).max() <= 1e-10 * np.abs(f_comm).max(), name

    # a short skin and frequent sorting: the ghosts and the atom order change during the run
    atoms = _structures()["cubic_strained"]
    extra = ["neighbor 0.2 bin", "neigh_modify every 1 delay 0 check yes", "atom_modify sort 3 2.0"]
    trajectories = {}
    for over in (True, False):
        monkeypatch.setattr(FastMLIAPModel, "owners_over_comm", over)
        computed.clear()
        trajectories[over] = _nve_positions(mliap, atoms, 30, virial=False, extra=extra)
        if over:
            assert 3 <= sum(computed) < len(computed)  # renewed on rebuilds, kept between
    assert np.abs(trajectories[True] - trajectories[False]).max() <= 1e-9


def test_raw_pairs_equal_mliap_pair_arrays(tmp_path, monkeypatch):
    """With the patched ML-IAP the fast model takes LAMMPS' whole neighbour list and the
    positions (``request_raw_pairs``: r_ij from the positions in its geometry kernel, pairs
    beyond the cutoff dropped there, the list's arrays refilled only after a list build)
    instead of ML-IAP's pair arrays within the cutoff: the same NVE trajectory to 1e-9 Å
    across list rebuilds, atom sorts and three ``run`` commands (each counts list builds from
    0 again), with the ghosts mapped to their owners and with ghost communication; steps
    with per-atom virials take ML-IAP's arrays."""
    from aedistill.fastpair import FastPairModel
    from aedistill.lammps import export_mliap
    from aedistill.mliap_model import FastMLIAPModel

    keys: list = []
    evaluate = FastPairModel.evaluate

    def spy(self, *args, **kwargs):
        keys.append(kwargs.get("list_key") if kwargs.get("positions") is not None else None)
        return evaluate(self, *args, **kwargs)

    monkeypatch.setattr(FastPairModel, "evaluate", spy)
    mliap = export_mliap(_model(tmp_path, "m", Arch(1, 8, 4)), tmp_path / "m.mliap.pt", "fast")
    atoms = _structures()["cubic_strained"]
    extra = ["neighbor 0.2 bin", "neigh_modify every 1 delay 0 check yes", "atom_modify sort 3 2.0"]
    runs = {}
    for raw in (True, False):
        asks = property(lambda self, raw=raw: raw and self.pair_model.direct_forces)
        monkeypatch.setattr(FastMLIAPModel, "request_raw_pairs", asks)
        for over in (True, False):
            monkeypatch.setattr(FastMLIAPModel, "owners_over_comm", over)
            keys.clear()
            runs[raw, over] = _nve_positions(mliap, atoms, 30, virial=False, extra=extra, runs=3)
            raw_keys = [k for k in keys if k is not None]
            if raw:  # every step and each run's setup, several list builds
                assert len(raw_keys) == len(keys) >= 33
                assert len(set(raw_keys)) >= 3
            else:
                assert not raw_keys
        keys.clear()
        _nve_positions(mliap, atoms, 5, virial=True)
        assert keys and not any(k is not None for k in keys)  # per-atom virials every step
    for over in (True, False):
        assert np.abs(runs[True, over] - runs[False, over]).max() <= 1e-9, over


@pytest.mark.parametrize("owners", [True, False], ids=["owners", "ghost-comm"])
def test_raw_pairs_pressure_equals_the_per_atom_virials(tmp_path, monkeypatch, owners):
    """With raw pairs the fast model adds its pair forces to LAMMPS' f (a ghost's to the
    ghost's own row, also where its owner is known) and the pressure is LAMMPS' F·r of those
    forces (ghosts included); it equals minus the trace of the per-atom virials (compute
    stress/atom: ML-IAP's arrays, r_ij ⊗ f_ij tallied pair by pair) / 3V, and the pressure of
    the same step through ML-IAP's arrays, to 1e-10; with the ghosts mapped to their owners
    and with ghost communication."""
    from aedistill.mliap_model import FastMLIAPModel

    monkeypatch.setattr(FastMLIAPModel, "owners_over_comm", owners)
    from ase.data import atomic_masses

    from aedistill.lammps import (
        box_commands,
        export_mliap,
        lammps_box,
        mliap_pair_commands,
        new_lammps,
        wrapped_lammps_positions,
    )

    keys: list = []
    from aedistill.fastpair import FastPairModel

    evaluate = FastPairModel.evaluate

    def spy(self, *args, **kwargs):
        keys.append(kwargs.get("positions") is not None)
        return evaluate(self, *args, **kwargs)

    monkeypatch.setattr(FastPairModel, "evaluate", spy)
    mliap = export_mliap(_model(tmp_path, "m", Arch(1, 8, 4)), tmp_path / "m.mliap.pt", "fast")
    atoms = _structures()["cubic_strained"]
    lcell, rot = lammps_box(atoms.cell[:])
    lmp = new_lammps()
    try:
        cmds = ["units metal", "atom_style atomic", *box_commands(lcell, 1)]
        cmds += [f"mass 1 {atomic_masses[13]}", *mliap_pair_commands(lmp, mliap, ["Al"])]
        lmp.commands_string("\n".join(cmds))
        n = len(atoms)
        x = wrapped_lammps_positions(atoms.positions, rot, lcell)
        lmp.create_atoms(n, list(range(1, n + 1)), [1] * n, x.ravel().tolist())
        lmp.commands_string(
            "compute p all pressure NULL virial\nthermo_style custom step c_p\nrun 0"
        )
        p_raw = lmp.extract_compute("p", 0, 0)
        assert keys == [True]  # the global virial alone: raw pairs
        keys.clear()
        lmp.commands_string(
            "compute sa all stress/atom NULL virial\n"
            "compute sv all reduce sum c_sa[1] c_sa[2] c_sa[3]\n"
            "thermo_style custom step c_p c_sv[1] c_sv[2] c_sv[3]\nrun 0"
        )
        p_pairs = lmp.extract_compute("p", 0, 0)
        trace = sum(lmp.extract_compute("sv", 0, 1)[k] for k in range(3))
        assert keys == [False]  # per-atom virials: ML-IAP's arrays
        volume = lmp.get_thermo("vol")
    finally:
        lmp.close()
    assert abs(p_raw) > 1.0  # bar: a strained cell is under stress
    assert abs(p_raw - p_pairs) <= 1e-10 * abs(p_pairs)
    assert abs(p_raw - (-trace / (3 * volume))) <= 1e-10 * abs(p_raw)
