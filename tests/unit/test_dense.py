"""The numpy dense path of the fast calculator (aedistill.densekernels) against physics and
an independent path: energies and forces equal the torch-autograd path to ~1e-12 relative
(float64), forces equal −finite differences of the energy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk

from aedistill import models
from aedistill.arch import Arch
from aedistill.densekernels import dense_supported
from aedistill.fastcalc import FastHipnnCalculator
from tests.helpers import assert_forces_are_minus_gradient


def _graph(slug, l_max=1, interaction_layers=1, species=(13,)):
    spec = models.ModelSpec(
        arch=Arch.from_slug(slug),
        species=species,
        l_max=l_max,
        interaction_layers=interaction_layers,
    )
    return models.build_training_graph(spec, 0)


def _atoms(species=(13,)):
    atoms = bulk("Al", "fcc", a=4.05).repeat((3, 2, 2))
    atoms.cell[0, 1] += 0.4  # triclinic: the cutoff reaches several periodic images
    atoms.rattle(0.15, seed=3)
    rng = np.random.default_rng(1)
    atoms.numbers = rng.choice(np.asarray(species), len(atoms))
    return atoms


CASES = [
    ("L1-W8-S4", 1, 1, (13,)),
    ("L2-W16-S8", 1, 2, (13,)),
    ("L2-W16-S8", 0, 2, (13,)),
    ("L1-W8-S4", 1, 2, (13, 29)),
]


@pytest.mark.parametrize("slug,l_max,n_int,species", CASES)
def test_dense_equals_torch_autograd(slug, l_max, n_int, species):
    g = _graph(slug, l_max, n_int, species)
    assert dense_supported(g.modules["network"], g.modules["henergy"])
    out = []
    for dense in (False, True):
        atoms = _atoms(species)
        atoms.calc = FastHipnnCalculator.from_modules(g.modules, dense=dense)
        assert (atoms.calc.dense is not None) == dense
        out.append(
            (atoms.get_potential_energy(), atoms.get_potential_energies(), atoms.get_forces())
        )
    (e0, eps0, f0), (e1, eps1, f1) = out
    assert e1 == pytest.approx(e0, rel=1e-12)
    np.testing.assert_allclose(eps1, eps0, rtol=0, atol=1e-12 * np.abs(eps0).max())
    np.testing.assert_allclose(f1, f0, rtol=0, atol=1e-12 * np.abs(f0).max())
    assert eps1.sum() == pytest.approx(e1, rel=1e-12)


@pytest.mark.parametrize("slug,l_max,n_int,species", CASES[1:])
def test_dense_forces_are_minus_gradient(slug, l_max, n_int, species):
    atoms = _atoms(species)
    atoms.calc = FastHipnnCalculator.from_modules(_graph(slug, l_max, n_int, species).modules)
    assert atoms.calc.dense is not None
    scale = np.abs(atoms.get_forces()).max()
    assert_forces_are_minus_gradient(atoms, [(0, 0), (5, 1), (11, 2)], h=1e-4, abs=1e-6 * scale)


def test_dense_is_float64_only():
    g = _graph("L1-W8-S4")
    assert FastHipnnCalculator.from_modules(g.modules, dtype=torch.float32).dense is None
    with pytest.raises(ValueError, match="float64"):
        FastHipnnCalculator.from_modules(g.modules, dtype=torch.float32, dense=True)


def test_dense_refuses_other_activations():
    g = _graph("L1-W8-S4")
    net = g.modules["network"]
    act = net.activation
    try:
        net.activation = torch.nn.Tanh()
        assert not dense_supported(net, g.modules["henergy"])
        assert FastHipnnCalculator.from_modules(g.modules).dense is None
    finally:
        net.activation = act
