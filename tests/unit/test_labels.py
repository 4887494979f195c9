"""Teacher labels: Σε = E per configuration, alignment with the dataset, teacher vs true."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest

from aedistill.data.emt import rattled_fcc_emt
from aedistill.errors import UserInputError
from aedistill.io import read_json
from aedistill.labels import load_labels, make_labels


def test_labels_sum_to_energy_and_are_aligned(tmp_path, members):
    ds = rattled_fcc_emt(6)
    out = make_labels(
        members, ds, tmp_path / "l.h5", tmp_path / "check.csv", tmp_path / "vs.json", 4
    )
    with h5py.File(tmp_path / "l.h5") as f:
        mean, std, mem, energy = (f[k][()] for k in ("mean", "std", "members", "energy"))
    assert mean.shape == ds.species.shape and mem.shape == (2, *ds.species.shape)
    assert np.all(mean[ds.species == 0] == 0) and np.all(std[ds.species == 0] == 0)
    # Σε = E_pred of each member (energy from the same predictor's mol_energy output)
    np.testing.assert_allclose(mem.sum(axis=2), energy, atol=1e-4)
    np.testing.assert_allclose(mean, mem.mean(axis=0), atol=1e-12)
    assert not np.allclose(mem[0], mem[1])  # two different members
    check = pd.read_csv(tmp_path / "check.csv")
    assert len(check) == 2 * ds.n_conf and (check.abs_diff <= check.tolerance).all()
    vs = read_json(tmp_path / "vs.json")
    mask = ds.species > 0
    assert vs["rmse_eV"] == pytest.approx(
        np.sqrt(np.mean((mean[mask] - ds.atom_energies[mask]) ** 2))
    )
    assert -1 <= vs["pearson_r"] <= 1
    np.testing.assert_array_equal(load_labels(tmp_path / "l.h5", ds), out["mean"])
    np.testing.assert_array_equal(load_labels(tmp_path / "l.h5", ds, target=1), mem[1])


def test_misaligned_labels_are_refused(tmp_path, members):
    ds = rattled_fcc_emt(6)
    make_labels(members, ds, tmp_path / "l.h5", tmp_path / "c.csv", tmp_path / "v.json")
    other = rattled_fcc_emt(5)
    with pytest.raises(UserInputError, match="rebuild the labels"):
        load_labels(tmp_path / "l.h5", other)
    with pytest.raises(UserInputError, match="only 2 members"):
        load_labels(tmp_path / "l.h5", ds, target=5)


def test_no_exact_energies_gives_a_note(tmp_path, members):
    ds = rattled_fcc_emt(6)
    ds.atom_energies = None
    make_labels(members, ds, tmp_path / "l.h5", tmp_path / "c.csv", tmp_path / "v.json")
    vs = read_json(tmp_path / "v.json")
    assert vs["rmse_eV"] is None and "no exact" in vs["note"]
