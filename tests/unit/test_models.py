"""HIPNN models: weight count by hand, safe model files, Σε = E, F = −∇E, ASE calculator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aedistill.arch import Arch
from aedistill.data.emt import rattled_fcc_emt
from aedistill.errors import UserInputError
from aedistill.models import (
    ModelSpec,
    build_training_graph,
    count_weights,
    load_model,
    make_calculator,
    save_model,
)
from tests.helpers import assert_forces_are_minus_gradient

SPEC = dict(cutoff_soft_min=1.5, cutoff_soft_max=3.5, cutoff_hard_max=4.0)


def hand_count(n_species: int, f: int, s: int, layers: int, l_max: int) -> int:
    """Trainable parameters of a one-interaction-layer HIPNN + hierarchical energy head.

    Interaction layer: sensitivity weights s·f·n_sp, (l_max=1: f vector scales), μ and σ of
    the s sensitivities, self-interaction f·n_sp + f, residual f·f + f, adjust f·n_sp.
    Each atom layer: two f×f linear layers with biases. Energy head: E0 per species (n_sp)
    and one linear readout per interaction layer (f + 1).
    """
    interaction = s * f * n_species + (f if l_max == 1 else 0) + 2 * s
    interaction += f * n_species + f + f * f + f + f * n_species
    atom_layers = layers * 2 * (f * f + f)
    head = n_species + f + 1
    return interaction + atom_layers + head


@pytest.mark.parametrize("l_max", [0, 1])
@pytest.mark.parametrize("species", [(13,), (13, 29)])
def test_weight_count_matches_hand_count(tmp_path, l_max, species):
    spec = ModelSpec(Arch(2, 5, 3), species, l_max=l_max, **SPEC)
    g = build_training_graph(spec, seed=0)
    save_model(tmp_path / "m.pt", spec, g)
    assert count_weights(tmp_path / "m.pt") == hand_count(len(species), 5, 3, 2, l_max)


def test_pilot_model_size():
    # pilot_emt_kd.md: 1 atom layer x 8, 4 sensitivities (HipnnVec) has 298 parameters
    g = build_training_graph(ModelSpec(Arch(1, 8, 4), (13,)), seed=0)
    assert sum(p.numel() for p in g.modules.parameters()) == 298


def test_corrupt_or_foreign_model_file_is_a_user_error(tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(UserInputError, match="model.pt"):
        load_model(bad)
    torch.save({"something": torch.zeros(2)}, bad)
    with pytest.raises(UserInputError, match="not an aedistill model file"):
        load_model(bad)
    with pytest.raises(UserInputError, match="not found"):
        load_model(tmp_path / "missing.pt")


def test_saved_model_roundtrip_and_sum_of_atom_energies(tmp_path):
    ds = rattled_fcc_emt(6)
    spec = ModelSpec(Arch(1, 6, 4), (13,), **SPEC)
    g = build_training_graph(spec, seed=3)
    with torch.no_grad():  # make the per-atom energies non-trivial
        for p in g.modules.parameters():
            p.add_(0.1 * torch.randn_like(p))
    save_model(tmp_path / "m.pt", spec, g)
    m = load_model(tmp_path / "m.pt")
    for a, b in zip(g.modules.state_dict().values(), m.modules.state_dict().values(), strict=True):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b)
    pred = m.predict(ds, batch_size=4)
    assert pred["atom_energies"].shape == ds.species.shape
    assert np.all(pred["atom_energies"][ds.species == 0] == 0)
    np.testing.assert_allclose(pred["atom_energies"].sum(axis=1), pred["energy"], atol=1e-4)


def test_calculator_forces_are_minus_gradient_and_match_predict(tmp_path):
    ds = rattled_fcc_emt(6)
    spec = ModelSpec(Arch(1, 6, 4), (13,), **SPEC)
    g = build_training_graph(spec, seed=1)
    with torch.no_grad():
        for p in g.modules.parameters():
            p.add_(0.1 * torch.randn_like(p))
    save_model(tmp_path / "m.pt", spec, g)
    loaded = load_model(tmp_path / "m.pt")
    pred = loaded.predict(ds)
    calc = make_calculator(loaded)
    atoms = ds.to_atoms(1)
    atoms.calc = calc
    # independent paths: ASE neighbour list vs hippynn's periodic pair finder
    assert atoms.get_potential_energy() == pytest.approx(pred["energy"][1], abs=1e-4)
    np.testing.assert_allclose(atoms.get_forces(), pred["forces"][1][: len(atoms)], atol=1e-4)
    # finite differences in double precision
    calc.to(torch.float64)
    assert_forces_are_minus_gradient(atoms, [(0, 0), (3, 2), (5, 1)], abs=1e-6)
