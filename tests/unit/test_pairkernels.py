"""The pair kernels of the fast calculator (aedistill.pairkernels) against independent
paths: the polynomial exp/sin/cos (aedistill.fastmath) against numpy's libm within 2 ulp,
and the one-feature environment kernels against the general ones (and their backward
against finite differences of the forward)."""

from __future__ import annotations

import numpy as np
import pytest

from aedistill import fastmath
from aedistill import pairkernels as pk
from aedistill.neighbours import half_pairs


def _ulp(a, b):
    return np.abs(a - b) / np.spacing(np.abs(b))


def test_polynomial_exp_within_2_ulp():
    x = np.concatenate(
        [-np.geomspace(1e-300, 700.0, 100001), np.linspace(-700.0, 0.0, 100001), [0.0, -0.0]]
    )
    y, t = x.copy(), np.empty_like(x)
    fastmath._exp_poly(y, y.view(np.int64), t, t.view(np.int64), len(y))
    assert _ulp(y, np.exp(x)).max() <= 2.0


def test_polynomial_sin_cos_within_2_ulp():
    x = np.concatenate(
        [np.linspace(0.0, np.pi / 2, 200001), np.geomspace(1e-300, np.pi / 2, 50001)]
    )
    s, c = np.empty_like(x), np.empty_like(x)
    fastmath._sin_cos_poly(x, s, c, len(x))
    assert _ulp(s, np.sin(x)).max() <= 2.0
    assert _ulp(c, np.cos(x)).max() <= 2.0


def _pairs(n_cell=3, seed=0):
    from ase.build import bulk

    atoms = bulk("Al", "fcc", a=4.05).repeat((n_cell, n_cell, n_cell))
    atoms.rattle(0.2, seed=seed)
    pi, pj, shifts = half_pairs(atoms.positions, atoms.cell.array, atoms.pbc, 6.0)
    return atoms.positions.copy(), np.ascontiguousarray(shifts @ atoms.cell.array, float), pi, pj


@pytest.mark.parametrize("vec", [True, False])
def test_single_species_kernels_equal_general(vec):
    r, shiftvec, pi, pj = _pairs()
    rng = np.random.default_rng(0)
    mu_inv = 1.0 / np.array([1.7, 2.5, 3.6, 5.0])
    sigma = np.array([3.0, 4.0, 5.0, 6.0])
    n, nc = len(r), 4 if vec else 1
    sel, unit, sens, dsens, m = pk.pair_terms(r, shiftvec, pi, pj, mu_inv, sigma, 5.5)
    z = np.ones((n, 1))  # one species' one-hot
    env = np.zeros((n, 1, 4, nc))
    pk.env_forward(pi, pj, sel, unit, sens, m, z, vec, env)
    env_single = np.zeros((n, nc, 4))  # component-major
    pk.env_forward_single(pi, pj, sel, unit, sens, m, vec, env_single)
    np.testing.assert_allclose(env_single, env[:, 0].transpose(0, 2, 1), rtol=1e-13, atol=1e-13)
    g = rng.normal(size=(n, 1, 4, nc))
    grad_r, grad_z = np.zeros((n, 3)), np.zeros((1, 1))
    pk.env_backward(pi, pj, sel, unit, sens, dsens, m, z, vec, g, False, grad_r, grad_z)
    g_single = np.ascontiguousarray(g[:, 0].transpose(0, 2, 1))
    grad_single = np.zeros((n, 3))
    pk.env_backward_single(pi, pj, sel, unit, sens, dsens, m, vec, g_single, grad_single)
    np.testing.assert_allclose(grad_single, grad_r, rtol=0, atol=1e-12 * np.abs(grad_r).max())

    # and the backward is the gradient of <g, env>: central differences in one coordinate
    def inner(rr):
        terms = pk.pair_terms(rr, shiftvec, pi, pj, mu_inv, sigma, 5.5)
        e = np.zeros((n, nc, 4))
        pk.env_forward_single(pi, pj, terms[0], terms[1], terms[2], terms[4], vec, e)
        return float((g_single * e).sum())

    h = 1e-5
    for a, k in [(0, 0), (7, 2)]:
        rp, rm = r.copy(), r.copy()
        rp[a, k] += h
        rm[a, k] -= h
        fd = (inner(rp) - inner(rm)) / (2 * h)
        assert fd == pytest.approx(grad_single[a, k], rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("module", ["pairkernels", "directedkernels", "fastmath"])
def test_kernels_do_not_import_torch(module):
    import subprocess
    import sys

    code = f"import sys, aedistill.{module}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
