"""The published ANI-Al potential as a reference labeller, checked against physics.

Reads the model files from ``../shared/data/ani-al-model`` (the project must not ship them:
the repository has no licence); reference values: fcc lattice constant 4.049 Å (Smith et al.
2021; PBE ≈ 4.04 Å), Σε = E, F = −∇E by central differences, small member spread in the
crystal and a large one for a dimer (out of the training domain).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from aedistill.data import ani_al_model as am
from aedistill.data.canonical import load_dataset, save_dataset
from aedistill.errors import UserInputError
from tests.helpers import assert_forces_are_minus_gradient

SHARED_MODEL = Path(__file__).resolve().parents[3] / "shared" / "data" / "ani-al-model"


@pytest.fixture(scope="module")
def model_dir() -> Path:
    if not (SHARED_MODEL / am.MODEL_NAME).is_dir():
        pytest.fail(f"{SHARED_MODEL}: the ANI-Al model files the tests read are missing")
    return SHARED_MODEL


@pytest.fixture(scope="module")
def calc(model_dir):
    root = am.model_files({"local_dir": str(model_dir)}, "unused")
    return am.AniAlCalculator(am.load_ensemble(root))


def _energy(calc, atoms: Atoms) -> float:
    atoms = atoms.copy()
    atoms.calc = calc
    return atoms.get_potential_energy()


def test_fcc_lattice_constant_is_the_published_one(calc):
    """Minimum of E(a) of fcc Al (parabola through 7 points) within 0.01 Å of 4.049 Å."""
    a = np.linspace(4.00, 4.10, 7)
    e = [_energy(calc, bulk("Al", "fcc", a=x, cubic=True).repeat(2)) / 32 for x in a]
    c2, c1, _ = np.polyfit(a, e, 2)
    assert c2 > 0
    assert -c1 / (2 * c2) == pytest.approx(4.049, abs=0.01)


def test_atom_energies_sum_to_energy_and_forces_are_minus_gradient(calc):
    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat(2)
    del atoms[5]  # a vacancy
    atoms.rattle(0.08, seed=3)
    atoms.calc = calc
    energy = atoms.get_potential_energy()
    eps = atoms.get_potential_energies()
    forces = atoms.get_forces()
    assert eps.sum() == pytest.approx(energy, abs=1e-8 * len(atoms))
    assert eps.std() > 1e-3  # the per-atom energies differ (vacancy neighbours)
    assert np.abs(forces).max() > 0.1  # rattled: forces worth checking
    assert_forces_are_minus_gradient(atoms, [(0, 0), (4, 1), (17, 2), (30, 0)], abs=1e-6)


def test_member_spread_small_in_the_crystal_large_for_a_dimer(calc):
    crystal = bulk("Al", "fcc", a=4.05, cubic=True).repeat(2)
    crystal.rattle(0.05, seed=0)
    _energy(calc, crystal)
    crystal_std = np.std(calc.results["member_energies"]) / len(crystal)
    dimer = Atoms("Al2", positions=[[0, 0, 0], [2.7, 0, 0]], cell=[20, 20, 20], pbc=False)
    _energy(calc, dimer)
    dimer_std = np.std(calc.results["member_energies"]) / 2
    assert crystal_std < 0.005  # eV/atom, in domain
    assert dimer_std > 0.01  # above the default out-of-domain limit
    assert dimer_std > 10 * crystal_std


def _copy_model(model_dir: Path, dest: Path) -> Path:
    shutil.copytree(model_dir, dest)
    return dest


def test_corrupted_or_missing_model_file_is_refused(model_dir, tmp_path):
    copy = _copy_model(model_dir, tmp_path / "model")
    bad = copy / "model-Al-75" / "train3" / "networks" / "ANN-Al.nnf-l2.wparam"
    data = bytearray(bad.read_bytes())
    data[100] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(UserInputError, match=r"train3/networks/ANN-Al\.nnf-l2\.wparam: git blob"):
        am.model_files({"local_dir": str(copy)}, tmp_path)
    bad.unlink()
    with pytest.raises(UserInputError, match=r"ANN-Al\.nnf-l2\.wparam: ANI-Al model file missing"):
        am.model_files({"local_dir": str(copy)}, tmp_path)


def test_download_into_cache_checks_each_file_and_is_reused(model_dir, tmp_path, monkeypatch):
    """The real download code, fed by a file:// copy of the repository layout."""
    repo = tmp_path / "repo"
    _copy_model(model_dir, repo / "model")
    calls = []
    real_download = am.download

    def counting_download(url, dest, retries=3):
        calls.append(url)
        real_download(url, dest, retries=retries)

    monkeypatch.setattr(am, "download", counting_download)
    settings = {"base_url": repo.as_uri() + "/", "retries": 1}
    root = am.model_files(settings, tmp_path / "cache")
    assert len(calls) == len(am.read_manifest())
    assert calls[0].endswith("/model/" + am.read_manifest()[0][1])
    assert (root / am.MODEL_NAME / "train7" / "networks" / "ANN-Al.nnf").is_file()
    calls.clear()
    am.model_files(settings, tmp_path / "cache")  # all cached and valid: nothing downloaded
    assert calls == []

    # a wrong file on the server: refused, and nothing that looks cached is left behind
    target = root / am.MODEL_NAME / "sae_linfit.dat"
    target.unlink()
    (repo / "model" / am.MODEL_NAME / "sae_linfit.dat").write_text("Al,0=-1.0\n")
    with pytest.raises(UserInputError, match="sae_linfit.dat: git blob id"):
        am.model_files(settings, tmp_path / "cache")
    assert not target.exists()


def test_dataset_source_labels_families_and_drops_out_of_domain(
    tiny_config, model_dir, tmp_path, caplog
):
    from aedistill.data.build import run

    config = {**tiny_config, "dataset": {**tiny_config["dataset"], "source": "ani-al-model"}}
    settings = {**tiny_config["dataset"]["ani_al_model"], "local_dir": str(model_dir)}
    config["dataset"]["ani_al_model"] = settings
    out = tmp_path / "data"
    run(config, out / "dataset.h5", out / "split.json", out / "summary.json", out / "cache")
    ds = load_dataset(out / "dataset.h5")
    assert ds.source == "ani-al-model"
    n = ds.n_atoms
    np.testing.assert_allclose(ds.atom_energies.sum(axis=1), ds.energy, atol=1e-8 * n.max())
    # fcc Al near equilibrium: E/atom of the ani-al energy zero (−74.5 + 72 eV), in domain
    assert np.all((ds.energy / n > -2.6) & (ds.energy / n < -2.0))
    assert ds.energy_member_std.shape == (ds.n_conf,)
    assert np.all(ds.energy_member_std / n < settings["max_member_std_per_atom"])
    import json

    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_out_of_domain_dropped"] == 0
    assert summary["md_driver"] == "model"

    # a stricter limit drops the widest-spread configurations, logged with their count
    limit = float(np.median(ds.energy_member_std / n))
    config["dataset"]["ani_al_model"] = {**settings, "max_member_std_per_atom": limit}
    with caplog.at_level(logging.WARNING):
        from aedistill.data.build import build_dataset

        strict = build_dataset(config, out / "cache")
    assert 0 < ds.n_conf - strict.n_conf < ds.n_conf
    assert f"dropped {ds.n_conf - strict.n_conf} of {ds.n_conf}" in caplog.text
    config["dataset"]["ani_al_model"] = {**settings, "max_member_std_per_atom": 1e-9}
    with pytest.raises(UserInputError, match="max_member_std_per_atom"):
        build_dataset(config, out / "cache")


def test_member_spread_survives_the_canonical_file(tmp_path):
    from aedistill.data.emt import rattled_fcc_emt

    ds = rattled_fcc_emt(4)
    ds.energy_member_std = np.array([0.1, 0.2, 0.3, 0.4])
    save_dataset(tmp_path / "d.h5", ds)
    back = load_dataset(tmp_path / "d.h5")
    np.testing.assert_array_equal(back.energy_member_std, ds.energy_member_std)
    np.testing.assert_array_equal(back.subset(np.array([2, 0])).energy_member_std, [0.3, 0.1])
